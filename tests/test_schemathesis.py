"""Property-based fuzzing of the HTTP API from its own OpenAPI document (schemathesis), over a real socket.

Bounded: a few valid and a few invalid examples per operation, so the run stays well under a minute.
Every response must be free of 5xx and pass schemathesis' checks (documented status codes, content
types and response schemas), except "schema-valid data is accepted": domain rules beyond JSON Schema
(an audience that matches nobody, a customer id that does not exist) rightly answer 4xx. The schemathesis pytest plugin's lazy fixture loader breaks on pytest 9
(it reads a private node attribute), so the operations are driven through their Hypothesis strategies.

Schema-driven bodies are always well-formed JSON; tests/test_fuzz.py fuzzes below the schema (raw bytes,
lone surrogates, huge integers, deep nesting, cut-off JSON) on the tool and agent routes and the MCP server.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from schemathesis.specs.openapi.checks import positive_data_acceptance

from _tools_data import serve_in_thread, tools_settings
from tools.api import create_app
from tools.deps import ToolDeps
from tools.registry import ToolRegistry

KEY = "fuzz-key"


@pytest.fixture(scope="module")
def api():
    app_settings = tools_settings(api_key=KEY)
    app = create_app(app_settings, registry=ToolRegistry(ToolDeps(app_settings)))
    with serve_in_thread(app) as url:
        yield url, schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_schema_lists_every_operation(api):
    _, schema = api
    labels = {op.ok().label for op in schema.get_all_operations()}
    assert "POST /v1/tools/find_customers" in labels and "GET /health" in labels and len(labels) == 11


PROBES = {"search_profiles": {"query": "tea"}, "score_customer": {"orders": [{"timestamp": "2011-01-01", "amount": 1}]},
          "model_report": {}}


def unavailable_tools(url: str) -> set[str]:
    """Tools whose artifacts this data directory lacks answer a documented 503 (not_built/index_unavailable)."""
    out = set()
    for name, args in PROBES.items():
        r = httpx.post(f"{url}/v1/tools/{name}", json=args, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        if r.status_code == 503 and r.json()["error"]["code"] in ("not_built", "index_unavailable"):
            out.add(name)
    return out


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_api_fuzz_no_server_errors(api, mode):
    url, schema = api
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.split("/")[-1] in unavailable_tools(url):
            continue
        if mode == schemathesis.GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # nothing to make invalid in a parameterless GET

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {KEY}"},
                                              excluded_checks=[positive_data_acceptance])
            assert response.status_code < 500, f"{case.operation.label}: {response.status_code} {response.text}"
            statuses.append(response.status_code)

        fuzz()
    assert statuses and max(statuses) < 500
