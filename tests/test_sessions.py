"""Bounded, per-caller agent sessions (issue 13): the turn store keeps compact turns within its caps
and age, sessions belong to the caller's key, a request without a session id gets a fresh session,
the OpenAI-compatible route uses the history the client sends, and store failures are 507/503."""

from __future__ import annotations

import json
import stat

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from _agent_support import (  # noqa: F401  (fixtures)
    ScriptedChatModel, agent_embedder, copy_tables, make_settings, no_real_llm, offline_service,
)
from _tools_data import serve_in_thread
from agent.memory import SessionStore, owner_for_key, sessions_path
from agent.service import AgentService
from agent.turns import turn_record
from tools.deps import ToolDeps
from tools.registry import ToolRegistry
from valuedesk.server import build_app

KEY_A = "key-of-app-a-123"
KEY_B = "key-of-app-b-456"
GERMANY = "top customers in Germany"
GOLD = "and which of them are Gold?"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return copy_tables(tmp_path_factory.mktemp("sessions-data"))


@pytest.fixture(scope="module")
def registry(data_dir):
    return ToolRegistry(ToolDeps(make_settings(data_dir)))


def fresh_dir(tmp_path, data_dir):
    """A data dir of its own (own session store) over the module's tables."""
    target = tmp_path / "data"
    target.mkdir()
    for name in ("customers.parquet", "transactions.parquet"):
        (target / name).symlink_to(data_dir / name)
    return target


def client(url, key):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=120)


def is_gold_follow_up(reply: dict) -> bool:
    calls = reply["tool_calls"]
    args = calls[0]["arguments"] if calls else {}
    return (reply["kind"] == "answer" and len(calls) == 1 and calls[0]["name"] == "find_customers"
            and args.get("countries") == ["Germany"] and args.get("tiers") == ["Gold"])


def record(i: int, answer_chars: int = 500) -> dict:
    return turn_record(f"question {i}", "x" * answer_chars, "answer",
                       [{"name": "find_customers", "arguments": {"countries": ["Germany"]},
                         "result": {"total_matching": 3, "customers": [{"customer_id": str(c)} for c in range(3)]},
                         "error": None}])


# ---------------------------------------------------------------- bounded


def test_session_stays_bounded_in_turns_and_bytes_and_follow_ups_still_work(tmp_path, data_dir, registry,
                                                                             agent_embedder):
    settings = make_settings(fresh_dir(tmp_path, data_dir), agent_session_max_turns=5)
    service = offline_service(settings, agent_embedder, registry)
    cycle = [GERMANY, GOLD, "break down my customers by tier", "Who are my top 5 customers?", GERMANY]
    sizes = {}
    for turn in range(1, 41):
        reply = service.chat(cycle[(turn - 1) % len(cycle)], "long")
        assert reply.kind == "answer" and reply.session_id == "long"
        if turn in (20, 40):
            sizes[turn] = service.memory.stats()
    # Only the last five turns are kept, so turn 40 stores exactly what turn 20 stored (same questions).
    assert sizes[20]["turns"] == sizes[40]["turns"] == 5
    assert sizes[20]["stored_bytes"] == sizes[40]["stored_bytes"] < 5 * 8000
    assert sizes[40]["file_bytes"] < 2_000_000  # the LangGraph checkpointer: 164 MB after 80 such turns
    # What is kept is compact: ids and counts of a customer list, not its rows.
    kept = service.memory.load("local", "long", 5)
    call = next(r for r in kept if r["q"] == GERMANY)["calls"][0]
    assert set(call["summary"]["customers"]) == {"count", "customer_ids"}
    assert call["summary"]["total_matching"] >= call["summary"]["customers"]["count"] > 0
    # ... and enough for a follow-up after 40 turns.
    assert is_gold_follow_up(service.chat(GOLD, "long").model_dump())


def test_byte_cap_drops_oldest_turns_but_keeps_the_newest(tmp_path):
    store = SessionStore(make_settings(tmp_path, agent_session_max_bytes=8192, agent_session_max_turns=100))
    for i in range(30):
        store.append("o", "s", record(i, answer_chars=1500))
    kept = store.load("o", "s", 100)
    sizes = [len(json.dumps(r, ensure_ascii=False)) for r in kept]
    assert 1 < len(kept) < 8 and sum(sizes) <= 8192
    assert [r["q"] for r in kept] == [f"question {i}" for i in range(30 - len(kept), 30)]
    # A turn larger than the whole cap is shrunk to fit (the newest turn is always kept).
    small = SessionStore(make_settings(tmp_path / "small", agent_session_max_bytes=4096))
    small.append("o", "big", turn_record("q" * 4000, "y" * 50_000, "answer", [
        {"name": "find_customers", "arguments": {}, "error": None,
         "result": {"customers": [{"customer_id": str(c)} for c in range(50)]}}]))
    [kept_big] = small.load("o", "big", 5)
    assert small.stats()["stored_bytes"] <= 4096 and kept_big["a"].startswith("yyy") and kept_big["q"].startswith("qqq")


def test_turns_past_the_age_limit_are_forgotten_and_pruned_on_schedule(tmp_path):
    now = [1_000_000.0]
    settings = make_settings(tmp_path, agent_session_max_age_days=30, agent_session_prune_every=3)
    store = SessionStore(settings, clock=lambda: now[0])
    for i in range(4):
        store.append("o", "old", record(i))
    now[0] += 20 * 86400
    store.append("o", "recent", record(9))
    now[0] += 11 * 86400  # "old" is 31 days old, "recent" 11
    assert store.load("o", "old", 10) == []  # never read back, even before the prune runs
    assert [r["q"] for r in store.load("o", "recent", 10)] == ["question 9"]
    assert store.stats()["turns"] == 5
    store.append("o", "recent", record(10))  # the 6th write: the scheduled prune runs
    assert store.stats()["turns"] == 2 and store.stats()["sessions"] == 1
    # The prune at start does the same for a store reopened later.
    now[0] += 31 * 86400
    store.close()
    assert SessionStore(settings, clock=lambda: now[0]).stats()["turns"] == 0


def test_store_cap_drops_least_recently_used_sessions(tmp_path):
    size = len(json.dumps(record(10, answer_chars=2000), ensure_ascii=False).encode())  # every record(10..99)
    cap_mb = 9.5 * size / 1024 / 1024
    store = SessionStore(make_settings(tmp_path, agent_session_store_max_mb=cap_mb, agent_session_prune_every=1))
    for i, session in enumerate(["s0"] * 3 + ["s1"] * 3 + ["s2"] * 3, start=10):
        store.append("o", session, record(i, answer_chars=2000))
    assert store.stats()["turns"] == 9  # 9 records: under the cap
    store.append("o", "s0", record(20, answer_chars=2000))  # 10 > 9.5: s1, used least recently, goes
    assert store.load("o", "s1", 10) == []
    assert len(store.load("o", "s0", 10)) == 4 and len(store.load("o", "s2", 10)) == 3
    assert store.stats()["stored_bytes"] == 7 * size


def test_store_files_are_private_and_the_old_checkpoint_file_is_removed(tmp_path):
    folder = tmp_path / "agent"
    folder.mkdir(mode=0o755)
    (folder / "sessions.sqlite").write_bytes(b"old checkpoints")
    store = SessionStore(make_settings(tmp_path))
    store.append("o", "s", record(1))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = [p for p in folder.iterdir()]
    assert {p.name for p in files} >= {"sessions.db"} and not (folder / "sessions.sqlite").exists()
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)


# ---------------------------------------------------------------- what the LLM sees of earlier turns


def test_llm_gets_earlier_turns_as_compact_messages(tmp_path, data_dir, registry):
    def call(name, args, cid):
        return AIMessage("", tool_calls=[{"name": name, "args": args, "id": cid, "type": "tool_call"}])

    def answer(text):
        return lambda _messages: AIMessage(text)

    settings = make_settings(fresh_dir(tmp_path, data_dir), llm_backend="vllm", agent_few_shot=False,
                             agent_history_turns=3, agent_grounding_retries=0)
    steps = [call("find_customers", {"countries": ["Germany"], "limit": 5}, "c1"), answer("Here they are."),
             call("find_customers", {"countries": ["Germany"], "tiers": ["Gold"]}, "c2"), answer("Gold ones."),
             answer("Third."), answer("Fourth.")]
    model = ScriptedChatModel(steps=steps)
    service = AgentService(settings, registry=registry, model=model, backend="vllm")
    service.chat("top 5 customers in Germany", "llm")
    service.chat(GOLD, "llm")
    sent = model.calls[2]["messages"]  # the first model call of turn 2
    human, ai, tool, final, question = [m for m in sent if not m.type == "system"]
    assert isinstance(human, HumanMessage) and human.content == "top 5 customers in Germany"
    assert ai.tool_calls[0]["args"] == {"countries": ["Germany"], "limit": 5}
    summary = json.loads(tool.content)
    assert isinstance(tool, ToolMessage) and summary["customers"]["count"] == 5
    assert len(summary["customers"]["customer_ids"]) == 5 and "churn_risk" not in tool.content
    assert final.content == "Here they are." and question.content == GOLD
    service.chat("third", "llm")
    service.chat("fourth", "llm")
    fourth = [m for m in model.calls[-1]["messages"] if isinstance(m, HumanMessage)]
    assert [m.content for m in fourth] == [GOLD, "third", "fourth"]  # agent_history_turns, this one included


# ---------------------------------------------------------------- over HTTP


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory, data_dir, registry, agent_embedder):
    settings = make_settings(fresh_dir(tmp_path_factory.mktemp("shared"), data_dir))
    return offline_service(settings, agent_embedder, registry)


@pytest.fixture(scope="module")
def apps(shared_service, registry):
    """Servers with API key A, key B and no key, over one agent service and session store."""
    def app(key):
        settings = make_settings(shared_service.settings.data_dir, api_key=key)
        return build_app(settings, shared_service)

    with serve_in_thread(app(KEY_A)) as url_a, serve_in_thread(app(KEY_B)) as url_b, \
            serve_in_thread(app(None)) as url_open:
        yield {"a": url_a, "b": url_b, "open": url_open}


def test_two_keys_with_the_same_session_id_never_see_each_other(apps, shared_service):
    with client(apps["a"], KEY_A) as a, client(apps["b"], KEY_B) as b, client(apps["open"], None) as anon:
        first = a.post("/v1/agent/chat", json={"message": GERMANY, "session_id": "shared"}).json()
        assert first["session_id"] == "shared" and first["kind"] == "answer"
        other = b.post("/v1/agent/chat", json={"message": GOLD, "session_id": "shared"}).json()
        assert other["kind"] == "clarify" and other["tool_calls"] == []  # B has no earlier turn
        assert is_gold_follow_up(a.post("/v1/agent/chat", json={"message": GOLD, "session_id": "shared"}).json())
        # B's reset does not touch A's session.
        assert b.post("/v1/agent/reset", json={"session_id": "shared"}).status_code == 200
        assert is_gold_follow_up(a.post("/v1/agent/chat", json={"message": GOLD, "session_id": "shared"}).json())
        # A server without a key keeps its callers' sessions apart from every key's, as "anonymous".
        assert anon.post("/v1/agent/chat", json={"message": GOLD, "session_id": "shared"}).json()["kind"] == "clarify"
    store = shared_service.memory
    assert [r["q"] for r in store.load(owner_for_key(KEY_A), "shared", 10)] == [GERMANY, GOLD, GOLD]
    assert store.load(owner_for_key(KEY_B), "shared", 10) == []
    assert [r["kind"] for r in store.load("anonymous", "shared", 10)] == ["clarify"]
    raw = b"".join(p.read_bytes() for p in sessions_path(shared_service.settings).parent.iterdir())
    assert KEY_A.encode() not in raw and KEY_B.encode() not in raw  # only a hash of the key is stored


def test_no_session_id_gets_a_fresh_session_each_request(apps, shared_service):
    with client(apps["a"], KEY_A) as a:
        first = a.post("/v1/agent/chat", json={"message": GERMANY}).json()
        second = a.post("/v1/agent/chat", json={"message": GOLD}).json()
        assert first["session_id"] and second["session_id"] and first["session_id"] != second["session_id"]
        assert second["kind"] == "clarify" and second["tool_calls"] == []  # nothing shared between them
        follow = a.post("/v1/agent/chat", json={"message": GOLD, "session_id": first["session_id"]}).json()
        assert is_gold_follow_up(follow) and follow["session_id"] == first["session_id"]
        # Streaming replies carry it too.
        r = a.post("/v1/agent/chat", json={"message": GERMANY, "stream": True})
        answer = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")][-1]
        assert answer["session_id"] not in (first["session_id"], second["session_id"])
        assert a.post("/v1/agent/reset", json={}).status_code == 422  # no shared "default" session to reset
    assert len(shared_service._locks) == 0  # per-session locks go with their turn: fresh ids do not pile up


def test_chat_completions_uses_the_history_the_client_sends(apps, shared_service):
    import openai

    api = openai.OpenAI(base_url=f"{apps['a']}/v1", api_key=KEY_A, timeout=120)
    first = api.chat.completions.create(model="valuedesk", messages=[{"role": "user", "content": GERMANY}])
    history = [{"role": "system", "content": "ignored"}, {"role": "user", "content": GERMANY},
               {"role": "assistant", "content": first.choices[0].message.content}, {"role": "user", "content": GOLD}]
    turns_before = shared_service.memory.stats()["turns"]
    with_history = api.chat.completions.create(model="valuedesk", messages=history)
    assert is_gold_follow_up(with_history.model_extra["valuedesk"])
    # The same follow-up alone, even with the `user` of the earlier call, has nothing to refer to.
    alone = api.chat.completions.create(model="valuedesk", user="app-a", messages=[{"role": "user", "content": GOLD}])
    assert alone.model_extra["valuedesk"]["kind"] == "clarify" and alone.model_extra["valuedesk"]["tool_calls"] == []
    streamed = "".join(c.choices[0].delta.content or "" for c in api.chat.completions.create(
        model="valuedesk", stream=True, messages=history) if c.choices)
    assert "Gold" in streamed and "Germany" in streamed
    assert shared_service.memory.stats()["turns"] == turns_before  # nothing is stored for this route


# ---------------------------------------------------------------- store failures


def _serve(service, key=KEY_A):
    settings = make_settings(service.settings.data_dir, api_key=key)
    return serve_in_thread(build_app(settings, service))


def test_full_store_answers_507_with_a_message(tmp_path, data_dir, registry, agent_embedder):
    service = offline_service(make_settings(fresh_dir(tmp_path, data_dir)), agent_embedder, registry)
    with _serve(service) as url, client(url, KEY_A) as c:
        assert c.post("/v1/agent/chat", json={"message": GERMANY, "session_id": "s"}).status_code == 200
        conn = service.memory._conn  # SQLite's own "database or disk is full", as on a full disk
        conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
        r = c.post("/v1/agent/chat", json={"message": "Who are my top 50 customers?", "session_id": "s"})
        assert r.status_code == 507
        error = r.json()["error"]
        assert error["code"] == "insufficient_storage" and "full" in error["message"] and "Free space" in error["hint"]
        assert "OperationalError" not in r.text and "Traceback" not in r.text
        streamed = c.post("/v1/agent/chat", json={"message": "Who are my top 50 customers?", "session_id": "s",
                                                  "stream": True})
        events = streamed.text.splitlines()
        last = json.loads([e for e in events if e.startswith("data: ")][-1][6:])
        assert events[[i for i, e in enumerate(events) if e.startswith("event: ")][-1]] == "event: error"
        assert last["code"] == "insufficient_storage" and last["status"] == 507
        # Reading still works: the session keeps its first turn.
        assert len(service.memory.load(owner_for_key(KEY_A), "s", 5)) == 1


def test_unwritable_store_answers_503_with_a_message(tmp_path, data_dir, registry, agent_embedder):
    target = fresh_dir(tmp_path, data_dir)
    (target / "agent").write_text("not a folder")  # the store cannot be created
    service = offline_service(make_settings(target), agent_embedder, registry)
    with _serve(service) as url, client(url, KEY_A) as c:
        r = c.post("/v1/agent/chat", json={"message": GERMANY, "session_id": "s"})
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "storage_unavailable" and "could not be opened" in error["message"]
        assert "writable" in error["hint"]
        assert str(target) not in error["message"]  # no server paths in the answer
        assert c.post("/v1/agent/chat", json={"message": GERMANY, "stream": True}).status_code == 503
        assert c.post("/v1/agent/reset", json={"session_id": "s"}).status_code == 503
        # The OpenAI-compatible route keeps no session, so it still answers.
        done = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": GERMANY}]})
        assert done.status_code == 200 and done.json()["valuedesk"]["kind"] == "answer"
        # Once the store can be created the same service recovers.
        (target / "agent").unlink()
        assert c.post("/v1/agent/chat", json={"message": GERMANY, "session_id": "s"}).status_code == 200
    # A store that turns read-only under the server: 503, not an answer with the SQLite error in it.
    service.memory._conn.execute("PRAGMA query_only=1")
    with _serve(service) as url, client(url, KEY_A) as c:
        r = c.post("/v1/agent/chat", json={"message": GERMANY, "session_id": "s"})
        assert r.status_code == 503 and "could not be written" in r.json()["error"]["message"]
