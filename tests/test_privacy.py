"""Privacy and accountability on a real Online Retail cut: contact data that appears only in a scoped export,
scoped keys over a real socket (401, 403, rotation without a restart), the audit trail's hash chain, and
`valuedesk forget` (absent from every store, and after the next build)."""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
from pathlib import Path

import httpx
import pandas as pd
import pytest

from _tiers_data import sample_csv
from _tools_data import serve_in_thread
from agent.settings import AgentSettings
from predictor.layout import BUILDS_DIR, CUSTOMERS, PROFILES, SCORES, TRANSACTIONS, current_version, list_versions
from tools.audit import AuditLog
from tools.principals import KeyStore

PLANTED = {"first_name": "Zebediah", "last_name": "Quuxworthington", "email": "zq.planted@contact-test.example",
           "phone": "+44 7700 900777", "address": "42 Xylophone Mews, Quibbleton"}
TOOL_ARGS = {"find_customers": {"limit": 3, "at_risk": True}, "segment_summary": {"group_by": "tier"},
             "search_profiles": {"query": "tea cups and saucers", "limit": 3},
             "recommend_campaigns": {"tiers": ["Gold"], "budget": 500}, "export_audience": {"tiers": ["Gold"]},
             "score_customer": {"orders": [{"timestamp": "2011-03-01", "amount": 120.5}]}, "model_report": {}}


def _env(settings, monkeypatch):
    from valuedesk.config import load_settings

    for key, value in {"VALUEDESK_DATA_DIR": str(settings.data_dir), "VALUEDESK_TRAINING_PROFILE": "fast",
                       "VALUEDESK_EMBEDDING_MODEL": "hashing", "VALUEDESK_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)
    load_settings.cache_clear()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A build of a quarter of Online Retail with a customers file whose contact data is planted."""
    from valuedesk.cli import main
    from valuedesk.config import load_settings

    root = tmp_path_factory.mktemp("privacy")
    data_dir, log = root / "data", root / "sample.csv.gz"
    source = pd.read_csv(sample_csv(), dtype=str, keep_default_na=False)
    source.to_csv(log, index=False)
    ids = sorted({str(int(float(c))) for c in source["CustomerID"] if c.strip()})[:40]
    contacts = pd.DataFrame({"Customer ID": [f"{c}.0" for c in ids],  # as a spreadsheet exports them
                             "Email": [PLANTED["email"].replace("zq", f"zq{i}") for i in range(len(ids))],
                             "First Name": [PLANTED["first_name"]] * len(ids),
                             "Last Name": [PLANTED["last_name"]] * len(ids),
                             "Phone": [PLANTED["phone"]] * len(ids), "Street": [PLANTED["address"]] * len(ids)})
    contacts.to_csv(root / "customers.csv", index=False)
    mp = pytest.MonkeyPatch()
    settings = AgentSettings(data_dir=data_dir, training_profile="fast", embedding_model="hashing", threads=1)
    _env(settings, mp)
    assert main(["build", "--data", str(log), "--quiet", "--customers", str(root / "customers.csv"),
                 "--customers-map", "customer_id=Customer ID,email=Email,first_name=First Name,"
                                    "last_name=Last Name,phone=Phone,address=Street"]) == 0
    mp.undo()
    load_settings.cache_clear()
    store = KeyStore(data_dir)
    keys = {name: store.add(name, frozenset(scopes)) for name, scopes in
            (("reader", {"read"}), ("marketer", {"read", "export"}), ("crm", {"read", "export", "export:contact"}))}
    return settings, keys, [str(c) for c in ids]


def _planted_in(text: str) -> list[str]:
    return [v for v in (*PLANTED.values(), "contact-test.example") if v in text]


def _files_with_planted(data_dir: Path, allowed: set[Path]) -> list[str]:
    """Every file under the data directory (parquet read as tables) that holds a planted value."""
    found = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file() and p not in allowed):
        if path.suffix == ".parquet":
            text = pd.read_parquet(path).astype(str).to_csv()
        else:
            text = path.read_bytes().decode("utf-8", "replace")
        if _planted_in(text):
            found.append(str(path.relative_to(data_dir)))
    return found


def test_contact_data_reaches_only_the_scoped_export(shop, caplog):
    from agent.service import AgentService

    settings, keys, ids = shop
    caplog.set_level(logging.DEBUG)
    outputs = []
    from tools.api import create_app
    from tools.registry import ToolRegistry
    from tools.deps import ToolDeps

    registry = ToolRegistry(ToolDeps(settings))
    app = create_app(settings, registry=registry)
    with serve_in_thread(app) as url:
        def post(key, tool, args):
            r = httpx.post(f"{url}/v1/tools/{tool}", json=args, headers={"Authorization": f"Bearer {key}"}, timeout=120)
            outputs.append(r.text)
            return r
        for tool, args in {**TOOL_ARGS, "get_customer": {"customer_id": ids[0]}}.items():
            assert post(keys["crm"], tool, args).status_code in (200, 503), tool
        assert post(keys["reader"], "export_audience", {"tiers": ["Gold"]}).status_code == 403
        denied = post(keys["marketer"], "export_audience", {"tiers": ["Gold"], "include_contact": True})
        assert denied.status_code == 403 and "export:contact" in denied.json()["error"]["message"]
        assert httpx.post(f"{url}/v1/tools/find_customers", json={}, timeout=30).status_code == 401
        assert httpx.post(f"{url}/v1/tools/find_customers", json={},
                          headers={"Authorization": "Bearer vd_wrong"}, timeout=30).status_code == 401
        scoped = post(keys["crm"], "export_audience", {"include_contact": True})
    assert scoped.status_code == 200
    export = Path(scoped.json()["path"])
    with export.open(newline="") as fh:
        rows = {row["customer_id"]: row for row in csv.DictReader(fh)}
    contacted = [c for c in ids if c in rows]
    assert contacted and all(rows[c]["last_name"] == PLANTED["last_name"] and rows[c]["phone"] == PLANTED["phone"]
                             for c in contacted)
    assert "email" in scoped.json()["columns"] and not _planted_in(scoped.text)  # the preview leaves it out
    service = AgentService(settings)
    for question in ("who are my at-risk top customers?", f"why is customer {ids[0]} flagged?",
                     "export my gold customers with their email addresses", "what is the email of the customer "
                     f"{ids[1]}?", "plan a win-back campaign for lapsed gold customers with a £2,000 budget"):
        outputs.append(service.chat(question).model_dump_json())
    leaks = [text[:200] for text in outputs if _planted_in(text)]
    assert not leaks
    assert not _planted_in("\n".join(r.getMessage() for r in caplog.records))
    contacts_file = Path(settings.data_dir) / "contacts" / "contacts.parquet"
    assert _files_with_planted(Path(settings.data_dir), {contacts_file, export}) == []
    assert _planted_in(pd.read_parquet(contacts_file).to_csv())  # it is there, apart


def test_keys_are_hashed_scoped_and_rotate_without_a_restart(shop):
    settings, keys, _ = shop
    stored = (Path(settings.data_dir) / "keys.json").read_text()
    assert all(key not in stored for key in keys.values())  # only hashes
    from tools.api import create_app
    from tools.registry import ToolRegistry
    from tools.deps import ToolDeps

    store = KeyStore(settings.data_dir)
    with serve_in_thread(create_app(settings, registry=ToolRegistry(ToolDeps(settings)))) as url:
        def status(key):
            return httpx.post(f"{url}/v1/tools/model_report", json={}, headers={"Authorization": f"Bearer {key}"},
                              timeout=60).status_code
        temp = store.add("temp", frozenset({"read"}))
        assert status(temp) == 200
        new = store.rotate("temp")
        assert status(temp) == 401 and status(new) == 200  # the running server re-read keys.json
        store.revoke("temp")
        assert status(new) == 401


def test_the_audit_trail_records_every_call_and_detects_tampering(shop, capsys, monkeypatch):
    from valuedesk.cli import main

    settings, _, ids = shop
    trail = AuditLog(settings.audit_path)
    records = list(trail.records())
    by = {(r["principal"], r["surface"], r["tool"], r["error"]) for r in records}
    assert ("reader", "http", "export_audience", "forbidden") in by and ("crm", "http", "export_audience", None) in by
    assert ("local", "agent", "find_customers", None) in by
    export = next(r for r in records if r["tool"] == "export_audience" and r.get("export")
                  and "email" in r["export"]["columns"])
    assert export["principal"] == "crm" and export["export"]["rows"] > 0 and len(export["export"]["sha256"]) == 64
    assert all(ids[0] not in json.dumps(r) for r in records)  # ids only as keyed pseudonyms
    _env(settings, monkeypatch)
    assert main(["audit", "--verify"]) == 0 and "intact" in capsys.readouterr().out
    assert main(["audit", "--principal", "crm"]) == 0
    assert {json.loads(line)["principal"] for line in capsys.readouterr().out.splitlines()} == {"crm"}
    lines = trail.path.read_text().splitlines()
    tampered = json.loads(lines[3])
    tampered["principal"] = "someone-else"
    trail.path.write_text("\n".join([*lines[:3], json.dumps(tampered, sort_keys=True), *lines[4:]]) + "\n")
    assert main(["audit", "--verify"]) == 1
    assert "line 4 was modified" in capsys.readouterr().out
    trail.path.write_text("\n".join(lines) + "\n")  # put it back for the tests below
    assert trail.verify()[0]


def test_retention_deletions_are_audited(shop):
    import os
    import time

    from tools.deps import ToolDeps
    from tools.registry import ToolRegistry

    settings, _, _ = shop
    registry = ToolRegistry(ToolDeps(settings))
    old = Path(registry.call("export_audience", {"tiers": ["Platinum"]}).result["path"])
    week_ago = time.time() - 7 * 86400
    os.utime(old, (week_ago, week_ago))  # past export_max_age_hours (24)
    assert registry.call("export_audience", {"tiers": ["Gold"]}).ok and not old.exists()
    retention = [r for r in AuditLog(settings.audit_path).records() if r["tool"] == "exports_retention"]
    assert retention and retention[-1]["deleted"]["files"] >= 1 and retention[-1]["principal"] == "system"


def test_forget_erases_a_customer_from_every_store_and_later_builds(shop, monkeypatch, capsys):
    from agent.service import AgentService
    from valuedesk.cli import main

    settings, keys, ids = shop
    gone = ids[2]
    service = AgentService(settings)
    service.chat(f"why is customer {gone} flagged?")  # a session that mentions them
    service.chat("how many gold customers do we have?")  # one that does not
    from agent.memory import sessions_path

    assert any(gone in r[0] for r in sqlite3.connect(sessions_path(settings)).execute("SELECT data FROM turns"))
    _env(settings, monkeypatch)
    assert main(["forget", gone, "--quiet"]) == 0
    assert "Forgot 1 customer" in capsys.readouterr().out
    assert list_versions(settings.data_dir) == [current_version(settings.data_dir).name]  # older ones held them
    _assert_absent(settings, gone)
    data = json.loads((current_version(settings.data_dir).root / "build.json").read_text())["input_key"]["source"]
    assert main(["build", "--data", data, "--rescore", "--quiet"]) == 0
    _assert_absent(settings, gone)
    assert ids[3] in set(pd.read_parquet(current_version(settings.data_dir).path(CUSTOMERS))["customer_id"].astype(str))
    erasure = [r for r in AuditLog(settings.audit_path).records() if r["tool"] == "forget"]
    assert erasure and erasure[-1]["erased"]["customers"] == 1 and gone not in json.dumps(erasure)


def _assert_absent(settings, customer_id: str) -> None:
    for name in list_versions(settings.data_dir):  # every kept version: rollback cannot bring them back
        root = Path(settings.data_dir) / BUILDS_DIR / name
        for table in (SCORES, CUSTOMERS, PROFILES, TRANSACTIONS):
            frame = pd.read_parquet(root / table)
            assert customer_id not in set(frame["customer_id"].astype(str)), (name, table)
    contacts = pd.read_parquet(Path(settings.data_dir) / "contacts" / "contacts.parquet")
    assert customer_id not in set(contacts["customer_id"])
    assert customer_id not in (Path(settings.data_dir) / "suppression.json").read_text()
    from predictor.build_index import open_profile_index

    index, _ = open_profile_index(settings)
    try:
        collections = index.client.list_collections()
        assert collections  # the serving build's collection, re-indexed without them
        for collection in collections:
            assert not index.client.get_collection(collection.name).get(ids=[customer_id])["ids"]
    finally:
        index.close()
    from agent.memory import sessions_path

    rows = sqlite3.connect(sessions_path(settings)).execute("SELECT data FROM turns").fetchall()
    assert rows and not any(customer_id in r[0] for r in rows)  # other sessions stay
    for export in Path(settings.exports_path).glob("*.csv"):
        assert customer_id not in {row["customer_id"] for row in csv.DictReader(export.open(newline=""))}
    assert not list((Path(settings.data_dir) / BUILDS_DIR).glob(".staging-*"))


def test_the_ui_signs_in_with_the_same_principals(shop):
    import ui
    from agent.service import AgentService
    from valuedesk import bootstrap
    from _ui_page import free_port

    settings, keys, _ = shop
    signed = settings.model_copy(update={"ui_users": "crm,reader"})
    demo = ui.build_app(service=AgentService(signed), settings=signed)
    port = free_port()
    bootstrap.launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True, **bootstrap.ui_auth(signed))
    try:
        def login(user, key):
            return httpx.post(f"http://127.0.0.1:{port}/login", data={"username": user, "password": key},
                              timeout=30).status_code
        assert login("crm", keys["crm"]) == 200 and login("reader", keys["reader"]) == 200
        assert login("crm", keys["reader"]) == 400  # another principal's key
        assert login("marketer", keys["marketer"]) == 400  # a valid key, not a UI user
        assert login("crm", "vd_wrong") == 400
    finally:
        demo.close()


def test_an_export_without_its_audit_record_is_withdrawn(shop, monkeypatch):
    import errno

    from tools.deps import ToolDeps
    from tools.registry import ToolRegistry

    settings, _, _ = shop
    registry = ToolRegistry(ToolDeps(settings))
    before = set(Path(settings.exports_path).glob("*.csv"))

    def read_only(*_a, **_k):  # the disk under audit/ refuses writes (root ignores file modes, so no chmod)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(AuditLog, "append", read_only)
    read = registry.call("find_customers", {"limit": 2})
    export = registry.call("export_audience", {"tiers": ["Gold"]})
    assert read.ok  # reads go on (the failure is logged)
    assert not export.ok and export.error.code == "storage_unavailable" and "withdrawn" in export.error.message
    assert set(Path(settings.exports_path).glob("*.csv")) == before  # no file left without its record


def test_mcp_carries_no_contact_data(shop):
    import asyncio

    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters

    settings, _, ids = shop
    repo = Path(__file__).resolve().parent.parent
    env = {**__import__("os").environ, "VALUEDESK_DATA_DIR": str(settings.data_dir), "VALUEDESK_EMBEDDING_MODEL": "hashing",
           "VALUEDESK_THREADS": "1", "VALUEDESK_TRAINING_PROFILE": "fast"}
    texts = []

    async def run():
        params = StdioServerParameters(command=str(repo / ".venv" / "bin" / "valuedesk"), args=["mcp"], env=env,
                                       cwd=str(repo))
        async with Client(params, read_timeout_seconds=120) as client:
            for tool, args in {**TOOL_ARGS, "get_customer": {"customer_id": ids[0]}}.items():
                texts.append((await client.call_tool(tool, args)).content[0].text)
            contact = await client.call_tool("export_audience", {"tiers": ["Gold"], "include_contact": True})
            assert contact.is_error and contact.structured_content["error"]["code"] == "forbidden"  # stdio: local server

    asyncio.run(asyncio.wait_for(run(), timeout=240))
    assert len(texts) == 8 and not [t[:200] for t in texts if _planted_in(t)]


def test_the_command_line_carries_no_contact_data(shop, monkeypatch, capsys):
    from valuedesk.cli import main

    settings, _, ids = shop
    texts = []
    _env(settings, monkeypatch)
    for tool, args in {**TOOL_ARGS, "get_customer": {"customer_id": ids[0]}}.items():
        main(["tool", tool, json.dumps(args)])
    assert main(["tool", "export_audience", json.dumps({"tiers": ["Gold"], "include_contact": True})]) == 0
    out = capsys.readouterr()  # the owner's export works from the command line; its output shows no contact data
    texts += [out.out, out.err]
    assert '"rows"' in out.out and not [t[:200] for t in texts if _planted_in(t)]


def test_tool_calls_become_genai_execute_tool_spans_when_an_exporter_is_configured(shop):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tools import telemetry
    from tools.deps import ToolDeps
    from tools.registry import ToolRegistry

    settings, _, ids = shop
    registry = ToolRegistry(ToolDeps(settings))
    registry.call("find_customers", {"limit": 2})
    exporter = InMemorySpanExporter()
    telemetry.configure(exporter=exporter)
    try:
        registry.call("get_customer", {"customer_id": ids[0]})
        registry.call("get_customer", {"customer_id": "no-such-customer"})
    finally:
        telemetry.reset()
    registry.call("find_customers", {"limit": 2})  # off again: no span
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["execute_tool get_customer"] * 2
    ok, missing = (dict(s.attributes) for s in spans)
    assert ok["gen_ai.operation.name"] == "execute_tool" and ok["gen_ai.tool.name"] == "get_customer"
    assert ok["gen_ai.tool.type"] == "function" and ok["valuedesk.principal"] == "local" and "error.type" not in ok
    assert missing["error.type"] == "not_found" and spans[1].status.is_ok is False
    assert not any(ids[0] in str(v) for s in spans for v in s.attributes.values())  # no customer in a span
