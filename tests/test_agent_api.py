"""The agent routes on the tools' FastAPI app, over a real socket: JSON and SSE chat, the
OpenAI-compatible facade (driven by the openai client), reset, and the API key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from _agent_support import agent_data_dir, agent_embedder, make_settings, no_real_llm, offline_service  # noqa: F401
from _tools_data import free_port, serve_in_thread
from valuedesk.server import build_app

KEY = "test-key-123"


def tables_dir():
    """Where the shared test build keeps its tables (its serving version folder, or the data dir itself)."""
    settings = make_settings(agent_data_dir())
    return getattr(settings, "build_root", settings.data_dir)


@pytest.fixture(scope="module")
def server(tmp_path_factory, agent_embedder):
    data_dir = tmp_path_factory.mktemp("agent-api")
    for name in ("customers.parquet", "transactions.parquet"):
        shutil.copy(tables_dir() / name, data_dir / name)
    settings = make_settings(data_dir, api_key=KEY)
    service = offline_service(settings, agent_embedder)
    app = build_app(settings, service)
    with serve_in_thread(app) as url:
        yield url


def client(url, key=KEY):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=120)


def test_chat_returns_answer_and_tool_trace(server):
    with client(server) as c:
        r = c.post("/v1/agent/chat", json={"message": "Break down my customers by tier", "session_id": "api-1"})
    assert r.status_code == 200
    body = r.json()
    assert body["backend"] == "offline" and body["kind"] == "answer" and body["latency_ms"] > 0
    [trace] = body["tool_calls"]
    assert trace["name"] == "segment_summary" and trace["error"] is None and trace["duration_ms"] > 0
    first = trace["result"]["groups"][0]
    assert first["group"] in body["answer"] and f"{first['customers']:,}" in body["answer"]


def test_follow_up_and_reset_over_http(server):
    with client(server) as c:
        c.post("/v1/agent/chat", json={"message": "show me the gold customers", "session_id": "api-2"})
        r = c.post("/v1/agent/chat", json={"message": "only those in France", "session_id": "api-2"})
        args = r.json()["tool_calls"][0]["arguments"]
        assert args["tiers"] == ["Gold"] and args["countries"] == ["France"] and r.json()["session_id"] == "api-2"
        assert c.post("/v1/agent/reset", json={"session_id": "api-2"}).json()["reset"] is True
        info = c.get("/v1/agent/info").json()
    assert info["backend"] == "offline"


def test_chat_streams_server_sent_events(server):
    events = []
    with client(server) as c, c.stream("POST", "/v1/agent/chat", json={"message": "Who are my top 5 customers?",
                                                                        "session_id": "api-3"},
                                       headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    kinds = [e[0] for e in events]
    assert kinds[:2] == ["tool_start", "tool_end"] and "token" in kinds and kinds[-1] == "answer"
    assert events[-1][1]["tool_calls"][0]["arguments"]["limit"] == 5


def test_openai_compatible_facade(server):
    import openai

    api = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, timeout=120)
    done = api.chat.completions.create(model="valuedesk", messages=[
        {"role": "system", "content": "ignored"}, {"role": "user", "content": "How many customers per lifecycle stage?"}])
    assert done.object == "chat.completion" and done.choices[0].message.role == "assistant"
    assert "lifecycle" in done.choices[0].message.content
    pieces = [chunk.choices[0].delta.content or "" for chunk in api.chat.completions.create(
        model="valuedesk", stream=True, messages=[{"role": "user", "content": "How many customers per tier?"}])]
    assert "tier" in "".join(pieces)


def test_agent_routes_need_the_api_key(server):
    with client(server, key=None) as c:
        r = c.post("/v1/agent/chat", json={"message": "hi"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}).status_code == 401
    with client(server) as c:
        r = c.post("/v1/agent/chat", json={"message": ""})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_arguments"


def test_valuedesk_api_serves_tools_and_agent_on_one_app(tmp_path, agent_embedder):
    """`valuedesk api` (the public subcommand, a real process and socket) mounts the agent routes
    beside the tools (the one server of valuedesk.server)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in ("customers.parquet", "transactions.parquet"):
        shutil.copy(tables_dir() / name, data_dir / name)
    shutil.copytree(agent_embedder.cache_dir, data_dir / "embeddings")
    port = free_port()
    env = {**os.environ, "VALUEDESK_DATA_DIR": str(data_dir), "VALUEDESK_THREADS": "1",
           "VALUEDESK_LLM_BACKEND": "offline", "VALUEDESK_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "valuedesk.cli", "api", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "valuedesk api did not start"
            time.sleep(0.3)
        with client(url) as c:
            paths = c.get("/openapi.json").json()["paths"]
            assert {"/v1/tools/find_customers", "/v1/agent/chat", "/v1/chat/completions"} <= set(paths)
            tool = c.post("/v1/tools/segment_summary", json={"group_by": "tier"}).json()
            r = c.post("/v1/agent/chat", json={"message": "Break down my customers by tier", "session_id": "one-app"})
            assert r.status_code == 200, r.text
            [trace] = r.json()["tool_calls"]
            assert trace["name"] == "segment_summary" and trace["result"]["groups"] == tool["groups"]
        assert httpx.post(f"{url}/v1/agent/chat", json={"message": "hi"}, timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_agent_services_are_shared_by_equal_settings_and_bounded(tmp_path):
    from agent.service import _services, get_agent_service

    service = get_agent_service(make_settings(tmp_path))  # built lazily: no model, graph or store yet
    assert get_agent_service(make_settings(tmp_path)) is service
    for i in range(20):
        get_agent_service(make_settings(tmp_path / str(i)))
    assert len(_services) <= 8
