"""The HTTP API over a real socket (uvicorn on 127.0.0.1), with httpx."""

from __future__ import annotations

import httpx
import pytest

from _tools_data import serve_in_thread, tools_settings
from tools.api import ServeError, check_bind, create_app
from tools.deps import ToolDeps
from tools.registry import TOOLS, ToolRegistry
from tools.settings import ServingSettings

KEY = "test-key-7f3a"


@pytest.fixture(scope="module")
def base_url():
    settings = tools_settings()
    app = create_app(settings, registry=ToolRegistry(ToolDeps(settings)))
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_url():
    settings = tools_settings(api_key=KEY, max_body_bytes=4096)
    app = create_app(settings, registry=ToolRegistry(ToolDeps(settings)))
    with serve_in_thread(app) as url:
        yield url


def post(url: str, name: str, body, **kw) -> httpx.Response:
    return httpx.post(f"{url}/v1/tools/{name}", json=body, timeout=60, **kw)


def test_health_and_tool_list(base_url):
    health = httpx.get(f"{base_url}/health", timeout=10).json()
    assert health["status"] == "ok" and health["built"] is True
    tools = httpx.get(f"{base_url}/v1/tools", timeout=10).json()["tools"]
    assert [t["function"]["name"] for t in tools] == [t.name for t in TOOLS]
    assert all(t["function"]["strict"] for t in tools)


def test_find_customers_over_http(base_url):
    r = post(base_url, "find_customers", {"tiers": ["Platinum", "Gold"], "min_churn_risk": 0.3, "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["returned"] == len(body["customers"]) <= 5
    assert all(c["customer_id"] and c["tier"] in ("Platinum", "Gold") for c in body["customers"])


# Arguments for calling every tool once; tools whose backing artifacts are absent in this data
# directory answer with a structured 503 rather than failing.
EVERY_TOOL = {
    "find_customers": {"limit": 3},
    "get_customer": None,  # filled with a real id
    "segment_summary": {"group_by": "lifecycle"},
    "search_profiles": {"query": "buys tea sets and cake stands", "limit": 3},
    "recommend_campaigns": {"tiers": ["Gold"], "budget": 500},
    "export_audience": {"tiers": ["Platinum"]},
    "score_customer": {"orders": [{"timestamp": "2011-03-01", "amount": 120.5},
                                  {"timestamp": "2011-06-10T12:00:00", "amount": 80.0}]},
    "model_report": {},
    "model_health": {},
}


@pytest.mark.parametrize("name", [t.name for t in TOOLS])
def test_every_tool_once(base_url, name):
    args = EVERY_TOOL[name]
    if args is None:
        first = post(base_url, "find_customers", {"limit": 1}).json()["customers"][0]
        args = {"customer_id": first["customer_id"]}
    r = post(base_url, name, args)
    assert r.status_code in (200, 503), r.text
    body = r.json()
    if r.status_code == 503:
        assert body["error"]["code"] in ("not_built", "index_unavailable") and body["error"]["hint"]
    else:
        assert "error" not in body


def test_validation_errors_are_422_with_field_and_reason(base_url):
    r = post(base_url, "find_customers", {"limit": 0, "tiers": "Gold", "unknown_arg": 1})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_arguments"
    assert {"limit", "unknown_arg"} <= {f["field"] for f in err["fields"]}
    assert all(f["reason"] for f in err["fields"])
    r = httpx.post(f"{base_url}/v1/tools/find_customers", content=b"{not json", timeout=10,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["fields"][0]["field"] == "(body)"
    assert r.json()["error"]["code"] == "bad_request" and "invalid JSON" in r.json()["error"]["message"]
    r = post(base_url, "find_customers", [1, 2])
    assert r.status_code == 422


def test_unknown_tool_and_unknown_customer_are_404(base_url):
    r = post(base_url, "drop_tables", {})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_tool"
    r = post(base_url, "get_customer", {"customer_id": "no-such-customer"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_unexpected_failure_is_500_without_stack_trace(base_url, monkeypatch):
    def explode(deps):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ToolDeps, "current", explode)  # a bug inside the call, past argument validation
    r = post(base_url, "find_customers", {"limit": 1})
    assert r.status_code == 500
    text = r.text
    assert r.json()["error"]["code"] == "internal_error"
    assert "Traceback" not in text and "secret" not in text


def test_api_key_required_when_configured(keyed_url):
    assert httpx.get(f"{keyed_url}/health", timeout=10).status_code == 200
    r = post(keyed_url, "find_customers", {"limit": 1})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    assert post(keyed_url, "find_customers", {"limit": 1},
                headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{keyed_url}/v1/tools", timeout=10).status_code == 401
    good = {"Authorization": f"Bearer {KEY}"}
    assert post(keyed_url, "find_customers", {"limit": 1}, headers=good).status_code == 200
    assert httpx.get(f"{keyed_url}/v1/tools", headers=good, timeout=10).status_code == 200


def test_body_size_limit_is_413(keyed_url):
    good = {"Authorization": f"Bearer {KEY}"}
    orders = [{"timestamp": "2011-01-01", "amount": 1.0}] * 400
    r = post(keyed_url, "score_customer", {"orders": orders}, headers=good)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit must hold while streaming too
        for _ in range(10):
            yield b" " * 1000

    r = httpx.post(f"{keyed_url}/v1/tools/find_customers", content=chunks(), headers=good, timeout=10)
    assert r.status_code == 413


def test_refuses_public_bind_without_key():
    with pytest.raises(ServeError, match="VALUEDESK_API_KEY"):
        check_bind("0.0.0.0", ServingSettings(api_key=None))
    check_bind("0.0.0.0", ServingSettings(api_key="k"))
    check_bind("127.0.0.1", ServingSettings(api_key=None))
    check_bind("::1", ServingSettings(api_key=None))
    check_bind("localhost", ServingSettings(api_key=None))


def test_openapi_documents_tool_inputs_and_outputs(base_url):
    spec = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    op = spec["paths"]["/v1/tools/find_customers"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    args = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"tiers", "min_churn_risk", "sort_by", "limit"} <= set(args["properties"])
    assert "422" in op["responses"] and "200" in op["responses"]


def test_registries_are_shared_by_equal_settings_and_bounded(tmp_path):
    """One registry per settings *values* (it was per id(), never freed, and a reused id could hand out
    another settings' registry); only the most recently used are kept."""
    from tools.registry import PerSettings, get_registry

    first = get_registry(ServingSettings(data_dir=tmp_path))
    assert get_registry(ServingSettings(data_dir=tmp_path)) is first  # an equal copy, another object
    assert get_registry(ServingSettings(data_dir=tmp_path / "other")) is not first
    cache = PerSettings(lambda settings: object(), size=3)
    built = [cache.get(ServingSettings(data_dir=tmp_path / str(i))) for i in range(10)]
    assert len(cache) == 3
    assert cache.get(ServingSettings(data_dir=tmp_path / "9")) is built[9]
    assert cache.get(ServingSettings(data_dir=tmp_path / "0")) is not built[0]  # dropped, built afresh
