"""Property-based fuzzing below the OpenAPI schema: arbitrary JSON and arbitrary bytes, sent to every
HTTP route (the tools' and the agent's, on one app over a real socket) and to the MCP stdio server (a
real `valuedesk mcp` subprocess).

tests/test_schemathesis.py fuzzes from the OpenAPI document, so its bodies are always well-formed
JSON. Here the bodies are what a broken or hostile client sends: lone surrogates as raw `\\udXXX`
escapes, integers of thousands of digits, nesting tens of thousands deep, NaN, cut-off JSON, bytes
that are not UTF-8, wrong types. The properties: HTTP never answers 5xx and every error is a JSON
body with a message; MCP answers every line that is not a valid notification or response with a
JSON-RPC reply, within a timeout.

Bounded (derandomized, no example database, ~100 examples a property) so a run takes well under a minute.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import select
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import mcp_types as mtypes
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _agent_support import agent_embedder, no_real_llm, offline_service  # noqa: F401
from _tools_data import serve_in_thread, tools_env, tools_settings
from agent.settings import AgentSettings
from predictor.settings import Settings
from tools.json_guard import max_depth_of
from tools.registry import TOOLS
from valuedesk.server import build_app

REPO = Path(__file__).resolve().parent.parent
SERVER_COMMAND = os.environ.get("VALUEDESK_TEST_MCP_COMMAND", str(REPO / ".venv" / "bin" / "valuedesk"))
KEY = "fuzz-key-5e1"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY_LIMIT = 200_000
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


# ------------------------------------------------------------------------------------------ strategies


class Raw(str):
    """Text spliced into a JSON document verbatim (the nasty tokens a JSON encoder would never write)."""


NASTY = st.one_of(
    st.integers(0xD800, 0xDFFF).map(lambda c: Raw(f'"\\u{c:04x}"')),  # a lone surrogate
    st.integers(0xD800, 0xDBFF).map(lambda c: Raw(f'"x\\u{c:04x}\\u0041"')),  # a high surrogate, no low one
    st.integers(20, 6000).map(lambda n: Raw("9" * n)),  # a huge integer
    st.integers(20, 400).map(lambda n: Raw("-1" + "0" * n + ".5e9")),  # a float literal, many digits
    st.sampled_from([Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e999")]),
    st.integers(65, 60_000).map(lambda n: Raw("[" * n + "]" * n)),  # deep arrays
    st.integers(65, 20_000).map(lambda n: Raw('{"a":' * n + "1" + "}" * n)),  # deep objects
    st.integers(2, 40).map(lambda n: Raw("[" * n + "]" * n)),  # nesting under the limit
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["Gold", "Platinum", "France", "United Kingdom", "at risk", "Champions", "2011-05-01", "tea"]),
)
LEAVES = st.integers(0, 9).flatmap(lambda i: NASTY if i == 0 else SCALARS)  # one nasty leaf in ten
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)

ARG_NAMES = sorted({name for spec in TOOLS for name in spec.args_model.model_fields}
                   | {"message", "session_id", "stream", "messages", "model", "user", "role", "content"})


def encode(value) -> str:
    """JSON text for `value`, with Raw pieces written as they are."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # raw UTF-8; Raw pieces carry the \\udXXX escapes


# Objects whose keys are mostly real argument names, so bodies reach the tools' and agent's own checks.
ARG_OBJECTS = st.dictionaries(st.sampled_from(ARG_NAMES) | st.text(max_size=8), VALUES, max_size=5)


def mostly(good, other=VALUES):
    """`good` four times in five, else anything."""
    return st.integers(0, 4).flatmap(lambda i: other if i == 0 else good)


QUESTIONS = st.sampled_from(["Who are my top 5 customers?", "Break down my customers by tier",
                             "Which Gold customers in France are at risk?", "plan a win-back campaign, budget 500"])
TEXTS = st.text(min_size=1, max_size=120) | QUESTIONS
CHAT_REQUESTS = st.fixed_dictionaries({"message": mostly(TEXTS)}, optional={
    "session_id": mostly(st.text(min_size=1, max_size=12)), "stream": st.booleans()})
CHAT_MESSAGES = st.fixed_dictionaries({"messages": st.lists(st.fixed_dictionaries(
    {"role": mostly(st.sampled_from(["user", "system", "assistant"])), "content": mostly(TEXTS)}),
    min_size=1, max_size=3)}, optional={"stream": st.booleans(), "model": st.just("valuedesk")})


@st.composite
def json_texts(draw) -> str:
    text = encode(draw(st.sampled_from([ARG_OBJECTS, ARG_OBJECTS, CHAT_REQUESTS, CHAT_MESSAGES, VALUES])
                       .flatmap(lambda s: s)))
    cut = draw(st.integers(0, 9))
    if cut == 0 and len(text) > 1:  # a body cut off mid-way
        text = text[: draw(st.integers(1, len(text) - 1))]
    return text


BODIES = st.integers(0, 3).flatmap(lambda i: st.binary(max_size=300) if i == 0 else json_texts().map(str.encode))


# ------------------------------------------------------------------------------------------ HTTP


@pytest.fixture(scope="module")
def api(agent_embedder):
    """Tools and agent routes on one app, over the shared real build (profile index included)."""
    app_settings = AgentSettings(**tools_settings(api_key=KEY, max_body_bytes=BODY_LIMIT).model_dump())
    data_dir = app_settings.data_dir
    service = offline_service(app_settings, agent_embedder)
    app = build_app(app_settings, service)
    routes = sorted((method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
                    if method in ("get", "post") and "{" not in path)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        yield client, routes, data_dir


def assert_answered(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:500]}"
    if r.status_code >= 400:
        error = r.json()["error"]
        assert error["code"] and error["message"], f"{what}: {r.text[:500]}"
        assert "Traceback" not in r.text and "This is a bug" not in r.text, f"{what}: {r.text[:500]}"


def test_every_route_is_fuzzed(api):
    _, routes, _ = api
    paths = {path for _, path in routes}
    assert {f"/v1/tools/{t.name}" for t in TOOLS} <= paths
    assert {"/v1/agent/chat", "/v1/chat/completions"} <= paths


def test_http_fuzz_never_5xx(api):
    client, routes, _ = api
    statuses: Counter[int | str] = Counter()

    @FUZZ
    @given(route=st.sampled_from(routes), body=BODIES)
    def fuzz(route, body):
        method, path = route
        r = client.request(method, path, content=body, headers={"content-type": "application/json"})
        assert_answered(r, f"{method} {path} {body[:200]!r}")
        statuses[r.status_code] += 1
        if path.startswith(("/v1/agent", "/v1/chat")):
            statuses[f"agent {r.status_code}"] += 1

    fuzz()
    print("HTTP fuzz statuses:", dict(statuses))
    # The fuzz reaches past the body checks: into the routes' validation and the tools themselves.
    assert {200, 400, 422} <= set(statuses), statuses


def test_http_fuzz_agent_routes(api):
    """Bodies shaped like the agent's requests, so most reach the (offline) agent itself."""
    client, routes, _ = api
    agent_routes = [path for method, path in routes if method == "POST" and path.startswith(("/v1/agent", "/v1/chat"))]
    statuses: Counter[int] = Counter()

    shapes = {"/v1/agent/chat": CHAT_REQUESTS, "/v1/chat/completions": CHAT_MESSAGES,
              "/v1/agent/reset": st.fixed_dictionaries({"session_id": mostly(st.text(min_size=1, max_size=12))})}

    @settings(FUZZ, max_examples=40)
    @given(case=st.sampled_from(agent_routes).flatmap(
        lambda path: st.tuples(st.just(path), shapes.get(path, VALUES).map(lambda v: encode(v).encode()))))
    def fuzz(case):
        path, body = case
        r = client.post(path, content=body, headers={"content-type": "application/json"})
        assert_answered(r, f"POST {path} {body[:200]!r}")
        statuses[r.status_code] += 1

    fuzz()
    print("agent fuzz statuses:", dict(statuses))
    assert statuses[200] >= 5, statuses


@pytest.mark.parametrize("body, status, says", [
    (b'{"query":"tea","countries":["\\ud800"]}', 400, "lone surrogate"),
    (b'{"message":"hi \\udfff there"}', 400, "lone surrogate"),
    (b'{"limit":' + b"7" * 5000 + b"}", 422, "out of range"),
    (b"[" * 50_000 + b"]" * 50_000, 400, "nest"),
    (b'{"budget": NaN}', 400, "invalid JSON"),
    (b'{"query": "tea"', 400, "invalid JSON"),
    (b'{"query":"t\xe9a"}', 400, "UTF-8"),
])
def test_malformed_bodies_on_every_post_route(api, body, status, says):
    client, routes, _ = api
    for method, path in routes:
        if method == "POST":
            r = client.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == status and says in r.json()["error"]["message"], f"{path}: {r.text[:300]}"


def test_chunked_body_over_the_limit_is_413_on_every_route(api):
    client, routes, _ = api

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        yield b'{"message": "'
        for _ in range(BODY_LIMIT // 10_000 + 2):
            yield b"a" * 10_000
        yield b'"}'

    for method, path in routes:
        if method == "POST":
            r = client.post(path, content=chunks(), headers={"content-type": "application/json"})
            assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", f"{path}: {r.text[:300]}"


def test_export_on_a_full_disk_is_507_and_leaves_nothing(api, monkeypatch):
    """ENOSPC while the CSV is written: 507 insufficient_storage naming the file, no partial file left."""
    import csv

    import predictor.campaigns.export as campaigns

    class FullDisk:
        def __init__(self, fh, **kw):
            self.writer = csv.writer(fh, **kw)

        def writerow(self, row):
            return self.writer.writerow(row)

        def writerows(self, rows):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    client, _, data_dir = api
    before = sorted((data_dir / "exports").glob("*"))
    monkeypatch.setattr(campaigns, "csv", type("csv", (), {"writer": FullDisk}))
    r = client.post("/v1/tools/export_audience", json={"tiers": ["Gold", "Platinum"]})
    assert r.status_code == 507, r.text
    error = r.json()["error"]
    assert error["code"] == "insufficient_storage" and "This is a bug" not in r.text
    assert "exports/audience-" in error["message"] and ".csv" in error["message"] and error["hint"]
    assert sorted((data_dir / "exports").glob("*")) == before  # the temp file was removed, no CSV appeared
    monkeypatch.undo()
    r = client.post("/v1/tools/export_audience", json={"tiers": ["Gold", "Platinum"]})
    assert r.status_code == 200, r.text  # with space again, the same export works
    Path(r.json()["path"]).unlink()


# ------------------------------------------------------------------------------------------ MCP stdio


class StdioServer:
    """`valuedesk mcp` as a subprocess, spoken to line by line (the SDK client would hide what we test)."""

    def __init__(self):
        self.proc = subprocess.Popen([SERVER_COMMAND, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env={**os.environ, **tools_env()}, cwd=str(REPO))
        self.buffer = b""
        self.ids = itertools.count()

    def send(self, line: bytes) -> None:
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def read(self, deadline: float) -> dict | None:
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            assert chunk, "the MCP server closed stdout"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def request(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        rid = f"req-{next(self.ids)}"
        self.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                              **({"params": params} if params is not None else {})}).encode())
        deadline = time.monotonic() + timeout
        while (reply := self.read(deadline)) is not None:
            if reply.get("id") == rid:
                return reply
        raise AssertionError(f"no reply to {method} within {timeout}s")

    def exchange(self, line: bytes, expect: int = 1, timeout: float = 15) -> list[dict]:
        """Send `line`, then a ping; the replies other than the ping's, read until the ping's reply and
        `expect` others have arrived (or `timeout`)."""
        self.send(line)
        sentinel = f"sentinel-{next(self.ids)}"
        self.send(json.dumps({"jsonrpc": "2.0", "id": sentinel, "method": "ping"}).encode())
        deadline = time.monotonic() + timeout
        replies, got_sentinel = [], False
        while not (got_sentinel and len(replies) >= expect) and (reply := self.read(deadline)) is not None:
            if reply.get("id") == sentinel:
                got_sentinel = True
            else:
                replies.append(reply)
        assert got_sentinel, f"no reply to a ping after {line[:200]!r}: the server stopped answering"
        return replies

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def mcp_stdio():
    server = StdioServer()
    try:
        init = server.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                             "clientInfo": {"name": "fuzz", "version": "1"}}, timeout=120)
        assert "result" in init, init
        server.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        yield server
    finally:
        server.close()


def needs_reply(line: bytes) -> bool:
    """False for a blank line or a valid notification/response (JSON-RPC answers neither), unless it
    nests deeper than the server reads."""
    if not line.strip():
        return False
    if max_depth_of(line.decode("utf-8", "replace")) > AgentSettings().max_json_depth:
        return True
    try:
        message = mtypes.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except Exception:  # noqa: BLE001 - anything the SDK cannot read must be answered
        return True
    if isinstance(message, mtypes.JSONRPCNotification):
        try:
            return "id" in json.loads(line)  # an id of the wrong type: a request gone wrong
        except ValueError:
            return True
    return isinstance(message, mtypes.JSONRPCRequest)


TOOL_NAMES = [t.name for t in TOOLS]


@st.composite
def rpc_lines(draw) -> bytes:
    kind = draw(st.sampled_from([0, 1, 2, 2, 2, 3, 3]))  # 2, 3: JSON-RPC envelopes
    if kind == 0:  # arbitrary bytes (no newline: one line each)
        return draw(st.binary(max_size=200)).replace(b"\n", b" ")
    if kind == 1:  # arbitrary JSON-ish text
        return draw(json_texts()).encode()
    # Mostly well-formed envelopes, so the fuzz reaches the SDK's dispatch and the tools, not only our checks.
    rid = draw(st.integers(0, 3).flatmap(lambda i: st.one_of(
        st.booleans(), st.none(), st.floats(allow_nan=False), NASTY) if i == 0 else st.integers(0, 10**6) | st.text(max_size=8)))
    version = draw(st.integers(0, 9).flatmap(lambda i: SCALARS if i == 0 else st.just("2.0")))
    message = {"jsonrpc": version, "id": rid}
    if kind == 2:  # a tool call with fuzzed arguments
        message["method"] = "tools/call"
        message["params"] = {"name": draw(st.sampled_from(TOOL_NAMES) | st.text(max_size=8)),
                             "arguments": draw(ARG_OBJECTS | VALUES)}
    else:  # any method, any params
        message["method"] = draw(st.sampled_from(["tools/list", "ping", "resources/list"]) | st.text(max_size=10)
                                 | SCALARS)
        message["params"] = draw(st.one_of(st.dictionaries(st.text(max_size=8), VALUES, max_size=3), VALUES))
    if draw(st.integers(0, 5)) == 0:
        del message[draw(st.sampled_from(sorted(message)))]
    return encode(message).encode()


def test_mcp_stdio_fuzz_every_line_answered(mcp_stdio):
    kinds: Counter[object] = Counter()

    @FUZZ
    @given(line=rpc_lines())
    def fuzz(line):
        answered = needs_reply(line)
        replies = mcp_stdio.exchange(line, expect=1 if answered else 0)
        if answered:
            assert len(replies) == 1, f"{line[:300]!r} -> {replies}"
            reply = replies[0]
            assert reply["jsonrpc"] == "2.0" and ("result" in reply or reply["error"]["message"]), reply
            kinds["result" if "result" in reply else reply["error"]["code"]] += 1
        else:
            assert replies == [], f"{line[:300]!r} -> {replies}"

    fuzz()
    print("MCP fuzz replies:", dict(kinds))
    # Lines reach the SDK and the tools (results, method-not-found), not only the line checks.
    assert {"result", mtypes.PARSE_ERROR, mtypes.INVALID_REQUEST, mtypes.INVALID_PARAMS} <= set(kinds), kinds


@pytest.mark.parametrize("line, code, rid, says", [
    (b"{not json", mtypes.PARSE_ERROR, None, "not valid JSON"),
    (b'{"jsonrpc":"2.0","id":41,"method":"tools/list"', mtypes.PARSE_ERROR, 41, "not valid JSON"),
    (b'\xff{"jsonrpc":"2.0","id":"u","method":"ping"}', mtypes.PARSE_ERROR, "u", "UTF-8"),
    (b"[" * 50_000 + b"]" * 50_000, mtypes.INVALID_REQUEST, None, "nested"),
    (b'{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"find_customers","arguments":{"a":'
     + b"[" * 5000 + b"]" * 5000 + b"}}}", mtypes.INVALID_PARAMS, 42, "nested"),
    (b'{"jsonrpc":"2.0","id":43,"method":"tools/list","params":{"x":' + b"1" * 5000 + b"}}",
     mtypes.INVALID_PARAMS, 43, "out of range"),
    (b'{"jsonrpc":"2.0","id":44,"method":"tools/call","params":{"name":"find_customers",'
     b'"arguments":{"countries":["\\ud800"]}}}', mtypes.INVALID_PARAMS, 44, "lone surrogate"),
    (b'{"jsonrpc":"2.0","id":45,"method":"ping","params":[1]}', mtypes.INVALID_PARAMS, 45, "params"),
    (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', mtypes.INVALID_REQUEST, None, "id"),
    (b'[{"jsonrpc":"2.0","id":46,"method":"ping"}]', mtypes.INVALID_REQUEST, None, "batches"),
    (b'"hello"', mtypes.INVALID_REQUEST, None, "JSON object"),
    (b'{"id":47,"method":"ping"}', mtypes.INVALID_REQUEST, 47, "jsonrpc"),
    (b"NaN", mtypes.PARSE_ERROR, None, "NaN"),
])
def test_mcp_stdio_malformed_lines_get_specific_errors(mcp_stdio, line, code, rid, says):
    [reply] = mcp_stdio.exchange(line)
    assert reply["id"] == rid and reply["error"]["code"] == code and says in reply["error"]["message"], reply


def test_mcp_stdio_tool_errors_stay_structured(mcp_stdio):
    reply = mcp_stdio.request("tools/call", {"name": "find_customers", "arguments": {"limit": "many", "x": 1}})
    result = reply["result"]
    assert result["isError"] and result["structuredContent"]["error"]["code"] == "invalid_arguments"
    reply = mcp_stdio.request("tools/call", {"name": "find_customers", "arguments": {"limit": 1e400}})
    assert reply["result"]["isError"]


def test_mcp_stdio_oversized_line(mcp_stdio):
    big = b'{"jsonrpc":"2.0","id":48,"method":"tools/call","params":{"name":"score_customer","arguments":{"x":"' \
          + b"a" * 1_100_000 + b'"}}}'
    [reply] = mcp_stdio.exchange(big)
    assert reply["id"] == 48 and reply["error"]["code"] == mtypes.INVALID_REQUEST
    assert "longer than" in reply["error"]["message"]


# ------------------------------------------------------------------------------------------ registry


@pytest.mark.parametrize("number, code", [(errno.ENOSPC, "insufficient_storage"), (errno.EDQUOT, "insufficient_storage"),
                                          (errno.EROFS, "storage_unavailable"), (errno.EACCES, "storage_unavailable")])
def test_registry_maps_disk_failures_for_every_tool(tmp_path, number, code):
    """Any tool, raw or wrapped as internal_error: the disk's code, the file relative to the data directory."""
    from tools.api import STATUS
    from tools.deps import ToolDeps, ToolFailure
    from tools.models import ModelReportArgs, ModelReportResult
    from tools.registry import ToolRegistry, ToolSpec

    def writes(args, deps):
        path = deps.settings.data_dir / "exports" / "out.csv"  # noqa: F841 - named in the message
        raise OSError(number, os.strerror(number))

    def wraps(args, deps):
        try:
            writes(args, deps)
        except OSError as exc:
            raise ToolFailure("internal_error", f"Could not write: {exc}") from None

    specs = tuple(ToolSpec(name, func, ModelReportArgs, ModelReportResult) for name, func in
                  (("writes", writes), ("wraps", wraps)))
    registry = ToolRegistry(ToolDeps(Settings(data_dir=tmp_path)), tools=specs)
    for name in ("writes", "wraps"):
        result = registry.call(name, {})
        assert not result.ok and result.error.code == code, result
        assert "exports/out.csv" in result.error.message and str(tmp_path) not in result.error.message
        assert result.error.hint and "bug" not in result.error.hint
    assert STATUS[code] == (507 if code == "insufficient_storage" else 503)


def test_registry_maps_a_lone_surrogate_failure_to_invalid_arguments(tmp_path):
    from pydantic import BaseModel

    from tools.deps import ToolDeps
    from tools.models import ModelReportResult
    from tools.registry import ToolRegistry, ToolSpec

    class Args(BaseModel):
        text: str = ""

    def encodes(args, deps):
        args.text.encode("utf-8")  # what a library deep inside a tool does with the text

    registry = ToolRegistry(ToolDeps(Settings(data_dir=tmp_path)), tools=(
        ToolSpec("encodes", encodes, Args, ModelReportResult),))
    result = registry.call("encodes", {"text": "tea \ud800"})
    assert result.error.code == "invalid_arguments" and "lone surrogate" in result.error.message
    assert [f["field"] for f in result.error.fields] == ["text"]
