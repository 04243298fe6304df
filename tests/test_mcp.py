"""The MCP server, exercised with the official `mcp` SDK's own client over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pandas as pd
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from _tools_data import serve_in_thread, tools_env, tools_settings
from predictor.customers.audience import CustomerFilter
from tools.deps import ToolDeps
from tools.mcp_server import create_server
from tools.registry import TOOLS, ToolRegistry

REPO = Path(__file__).resolve().parent.parent
# Tests can point at another launcher (e.g. a wrapper script) without editing the test.
SERVER_COMMAND = os.environ.get("VALUEDESK_TEST_MCP_COMMAND", str(REPO / ".venv" / "bin" / "valuedesk"))


async def _exercise(client: Client, customers: pd.DataFrame) -> None:
    listed = await client.list_tools()
    by_name = {t.name: t for t in listed.tools}
    assert list(by_name) == [t.name for t in TOOLS]
    find = by_name["find_customers"]
    assert find.description and "tiers" in find.input_schema["properties"]
    assert find.output_schema["type"] == "object" and "customers" in find.output_schema["properties"]

    args = {"tiers": ["Gold", "Platinum"], "min_churn_risk": 0.3, "limit": 5}
    result = await client.call_tool("find_customers", args)
    assert not result.is_error
    data = result.structured_content
    flt = {k: v for k, v in args.items() if k != "limit"}
    selected = customers[CustomerFilter(**flt).mask(customers)]
    expected = selected.sort_values("value_at_risk", ascending=False, kind="stable").head(5)
    assert data["total_matching"] == len(selected)
    assert [c["customer_id"] for c in data["customers"]] == expected["customer_id"].astype(str).tolist()
    assert result.content[0].type == "text" and '"total_matching"' in result.content[0].text

    missing = await client.call_tool("get_customer", {"customer_id": "no-such-customer"})
    assert missing.is_error and missing.structured_content["error"]["code"] == "not_found"
    bad = await client.call_tool("find_customers", {"tiers": ["Diamond"]})
    assert bad.is_error and bad.structured_content["error"]["code"] == "invalid_arguments"


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return pd.read_parquet(tools_settings().customers_path)


def test_stdio_server_spawned_from_cli(customers):
    params = StdioServerParameters(command=SERVER_COMMAND, args=["mcp"],
                                   env=tools_env(), cwd=str(REPO))

    async def run() -> None:
        async with Client(params, read_timeout_seconds=120) as client:
            await _exercise(client, customers)

    asyncio.run(asyncio.wait_for(run(), timeout=180))


def test_streamable_http_server(customers):
    settings = tools_settings()
    app = create_server(settings, ToolRegistry(ToolDeps(settings))).streamable_http_app(host="127.0.0.1")
    with serve_in_thread(app) as url:
        async def run() -> None:
            async with Client(f"{url}/mcp", read_timeout_seconds=60) as client:
                await _exercise(client, customers)

        asyncio.run(asyncio.wait_for(run(), timeout=120))


def test_streamable_http_requires_the_api_key_when_set():
    import httpx

    from tools.mcp_server import _require_key

    settings = tools_settings(api_key="mcp-key")
    app = create_server(settings, ToolRegistry(ToolDeps(settings))).streamable_http_app(host="127.0.0.1")
    from tools.principals import key_store

    with serve_in_thread(_require_key(app, key_store(settings))) as url:
        r = httpx.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"

        async def run() -> None:
            async with Client(f"{url}/mcp", read_timeout_seconds=60) as client:
                assert len((await client.list_tools()).tools) == len(TOOLS)

        with pytest.raises(Exception):
            asyncio.run(asyncio.wait_for(run(), timeout=60))
