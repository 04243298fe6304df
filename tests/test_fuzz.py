"""Property-based fuzzing of every HTTP route (the tools' and the agent's, on one app over a real socket)
below the OpenAPI schema: arbitrary JSON and bytes never get a 5xx, and every error is a JSON body with a message.
Strategies: tests/_fuzz_strategies.py; the MCP stdio half: tests/test_fuzz_mcp.py."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _full_disk import full_disk_csv
from _agent_support import agent_embedder, no_real_llm, offline_service  # noqa: F401
from _fuzz_strategies import (AUTH, BODIES, BODY_LIMIT, CHAT_MESSAGES, CHAT_REQUESTS, FUZZ, KEY, VALUES, encode,
                              mostly)
from _tools_data import serve_in_thread, tools_settings
from agent.settings import AgentSettings
from tools.registry import TOOLS
from valuedesk.server import build_app


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
    import predictor.campaigns.export as campaigns

    client, _, data_dir = api
    before = sorted((data_dir / "exports").glob("*"))
    monkeypatch.setattr(campaigns, "csv", full_disk_csv)
    r = client.post("/v1/tools/export_audience", json={"tiers": ["Gold", "Platinum"]})
    assert r.status_code == 507, r.text
    error = r.json()["error"]
    assert error["code"] == "insufficient_storage" and "This is a bug" not in r.text
    assert "exports/gold-platinum-customers-" in error["message"] and ".csv" in error["message"] and error["hint"]
    assert sorted((data_dir / "exports").glob("*")) == before  # the temp file was removed, no CSV appeared
    monkeypatch.undo()
    r = client.post("/v1/tools/export_audience", json={"tiers": ["Gold", "Platinum"]})
    assert r.status_code == 200, r.text  # with space again, the same export works
    Path(r.json()["path"]).unlink()
