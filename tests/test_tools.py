"""Tool functions and registry on a customers table built from the real Online Retail data."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _tools_data import tools_env, tools_settings
from predictor.customers.audience import CustomerFilter
from predictor.settings import Settings
from tools.deps import ToolDeps
from tools.registry import TOOLS, ToolRegistry

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def settings() -> Settings:
    return tools_settings()


@pytest.fixture(scope="module")
def registry(settings) -> ToolRegistry:
    return ToolRegistry(ToolDeps(settings))


@pytest.fixture(scope="module")
def customers(settings) -> pd.DataFrame:
    return pd.read_parquet(settings.customers_path)


def ok(registry: ToolRegistry, name: str, args: dict) -> dict:
    res = registry.call(name, args)
    assert res.ok, res.error
    return res.result


FILTERS = [
    {},
    {"tiers": ["gold", "Platinum"]},
    {"lifecycle": ["at risk", "lapsing"], "min_churn_risk": 0.4},
    {"segments": ["Champions", "At Risk"], "countries": ["germany", "France"]},
    {"countries": ["United Kingdom"], "min_value": 100, "max_value": 5000},
    {"max_churn_risk": 0.3, "min_recency_days": 10, "max_recency_days": 120},
    {"tiers": ["Bronze"], "countries": ["Atlantis"]},
]


@pytest.mark.parametrize("flt,sort_by", list(itertools.product(FILTERS[:5], ["value_at_risk", "churn_risk",
                                                                               "historical_value"])))
def test_find_customers_ranks_like_pandas(registry, customers, flt, sort_by):
    result = ok(registry, "find_customers", {**flt, "sort_by": sort_by, "limit": 25})
    selected = customers[CustomerFilter(**flt).mask(customers)]
    assert result["total_matching"] == len(selected)
    expected = selected.sort_values(sort_by, ascending=False, kind="stable").head(25)
    assert [r["customer_id"] for r in result["customers"]] == expected["customer_id"].astype(str).tolist()
    values = [r[sort_by] for r in result["customers"]]
    assert values == sorted(values, reverse=True)


def _at_risk_by_hand(customers: pd.DataFrame) -> pd.Series:
    """The documented definition, written out independently of flag_at_risk."""
    floor = customers["churn_risk"].quantile(0.25)
    return customers["lifecycle"].isin(["at risk", "lapsing"]) & (customers["churn_risk"] >= floor)


def test_at_risk_top_customers_are_all_at_risk_and_ranked_by_value_at_risk(registry, customers):
    result = ok(registry, "find_customers", {"tiers": ["Platinum", "Gold", "Silver"], "at_risk": True, "limit": 500})
    expected = customers[customers["tier"].isin(["Platinum", "Gold", "Silver"]) & _at_risk_by_hand(customers)]
    assert result["sort_by"] == "value_at_risk" and 0 < result["total_matching"] == len(expected)
    assert {r["customer_id"] for r in result["customers"]} == set(expected["customer_id"].astype(str))
    assert all(r["at_risk"] and r["lifecycle"] in ("at risk", "lapsing") for r in result["customers"])
    values = [r["value_at_risk"] for r in result["customers"]]
    assert values == sorted(values, reverse=True)
    # The same flag exports exactly the same people, and "not at risk" is the complement.
    export = ok(registry, "export_audience", {"at_risk": True})
    assert export["rows"] == int(_at_risk_by_hand(customers).sum())
    exported = pd.read_csv(Path(export["path"]), dtype={"customer_id": str})
    assert exported["at_risk"].tolist() == [True] * export["rows"]  # the CSV says so per row, for the import
    assert set(exported["lifecycle"]) <= {"at risk", "lapsing"}
    rest = ok(registry, "find_customers", {"at_risk": False})
    assert rest["total_matching"] == len(customers) - export["rows"]
    # An empty list says which step emptied it, counting like pandas.
    empty = ok(registry, "find_customers", {"tiers": ["Platinum"], "at_risk": True, "min_value": 1e12})
    platinum = customers["tier"] == "Platinum"
    assert empty["total_matching"] == 0 and empty["narrowing"] == [
        {"step": "all customers", "customers": len(customers)},
        {"step": "tier in Platinum", "customers": int(platinum.sum())},
        {"step": "predicted value at least 1,000,000,000,000", "customers": 0},
        {"step": "at risk", "customers": 0}]
    assert ok(registry, "find_customers", {"tiers": ["Platinum"]})["narrowing"] is None
    res = registry.call("find_customers", {"at_risk": "maybe"})
    assert not res.ok and res.error.code == "invalid_arguments"


def test_find_customers_rejects_bad_arguments_as_data(registry):
    res = registry.call("find_customers", {"tiers": ["Gld"]})
    assert not res.ok and res.error.code == "invalid_arguments" and "Gold" in res.error.message
    res = registry.call("find_customers", {"limit": 501, "colour": "red"})
    assert not res.ok and res.error.code == "invalid_arguments"
    assert {f["field"] for f in res.error.fields} == {"limit", "colour"}
    res = registry.call("find_customers", {"min_churn_risk": 0.8, "max_churn_risk": 0.2})
    assert not res.ok and res.error.code == "invalid_arguments"
    # JSON true/false is not a number (lax parsing would make `false` a churn ceiling of 0).
    for field, value in (("max_churn_risk", False), ("limit", True)):
        res = registry.call("find_customers", {field: value})
        assert not res.ok and res.error.code == "invalid_arguments" and [f["field"] for f in res.error.fields] == [field]
    res = registry.call("find_customers", ["not", "an", "object"])
    assert not res.ok and res.error.code == "invalid_arguments"
    res = registry.call("no_such_tool", {})
    assert not res.ok and res.error.code == "unknown_tool" and "find_customers" in res.error.hint


def test_get_customer_details_and_recent_orders_from_transactions(registry, settings, customers):
    top = ok(registry, "find_customers", {"sort_by": "historical_value", "limit": 1})["customers"][0]
    detail = ok(registry, "get_customer", {"customer_id": top["customer_id"]})
    row = customers.set_index(customers["customer_id"].astype(str)).loc[top["customer_id"]]
    assert detail["tier"] == row["tier"] and detail["segment"] == row["rfm_segment"]
    for column, field in (("value_p10", "value_p10"), ("value_p90", "value_p90"), ("churn_risk", "churn_risk"),
                          ("value_at_risk", "value_at_risk")):
        assert detail[field] == pytest.approx(row[column], abs=1e-3)
    assert detail["next_order_days"] is None or isinstance(detail["next_order_days"], float)
    assert detail["drivers"] and all(isinstance(d, str) for d in detail["drivers"])
    assert detail["suggested_products"] == list(row["suggested_products"])
    # Next to the customers table, wherever the build put it (the data dir, or the serving build's folder).
    tx = pd.read_parquet(Path(settings.customers_path).parent / "transactions.parquet")
    tx = tx[tx["customer_id"].astype(str) == top["customer_id"]]
    per_order = tx.groupby("order_id").agg(ts=("timestamp", "min"), amount=("amount", "sum"))
    latest = per_order.sort_values("ts", ascending=False, kind="stable").head(5)
    recent = detail["recent_orders"]
    assert [o["date"] for o in recent] == [t.date().isoformat() for t in latest["ts"]]
    for order in recent:
        assert order["amount"] == pytest.approx(round(per_order.loc[order["order_id"], "amount"], 2))


def test_get_customer_unknown_id_is_not_found(registry):
    res = registry.call("get_customer", {"customer_id": "does-not-exist"})
    assert not res.ok and res.error.code == "not_found" and res.error.hint


@pytest.mark.parametrize("group_by,column", [("tier", "tier"), ("segment", "rfm_segment"), ("country", "country")])
def test_segment_summary_matches_pandas_groupby(registry, customers, group_by, column):
    flt = {"min_churn_risk": 0.2}
    result = ok(registry, "segment_summary", {**flt, "group_by": group_by})
    selected = customers[CustomerFilter(**flt).mask(customers)]
    expected = selected.groupby(column).agg(n=("customer_id", "size"), var=("value_at_risk", "sum"),
                                            risk=("churn_risk", "mean"))
    assert result["total_customers"] == len(selected)
    got = {g["group"]: g for g in result["groups"]}
    assert set(got) == set(expected.index)
    for name, e in expected.iterrows():
        assert got[name]["customers"] == e["n"]
        assert got[name]["value_at_risk"] == pytest.approx(e["var"], abs=0.01)
        assert got[name]["mean_churn_risk"] == pytest.approx(e["risk"], abs=1e-4)


def test_export_audience_writes_csv_under_data_dir(registry, settings, customers):
    flt = {"tiers": ["Gold"], "lifecycle": ["active", "at risk"]}
    result = ok(registry, "export_audience", flt)
    path = Path(result["path"])
    assert path.parent == settings.data_dir / "exports" and path.exists()
    csv = pd.read_csv(path, dtype={"customer_id": str})
    assert len(csv) == result["rows"] == int(CustomerFilter(**flt).mask(customers).sum())
    assert csv["customer_id"].tolist()[:5] == [r["customer_id"] for r in result["preview"]]
    assert set(csv["tier"]) == {"Gold"} and list(csv.columns) == result["columns"]
    assert not list(path.parent.glob(".*.tmp"))
    assert result["file"] == f"exports/{path.name}"
    # An unknown country is refused by name (never dropped into "everyone"), and nothing is written.
    before = sorted(path.parent.iterdir())
    res = registry.call("export_audience", {"countries": ["Atlantis"]})
    assert not res.ok and res.error.code == "invalid_arguments"
    assert "No country named 'Atlantis'" in res.error.message and "nothing was exported" in res.error.message
    assert sorted(path.parent.iterdir()) == before
    res = registry.call("export_audience", {"tiers": ["Platinum"], "min_value": 1e12})
    assert not res.ok and res.error.code == "not_found"


def _walk(schema, path="$"):
    yield path, schema
    if isinstance(schema, dict):
        for k, v in schema.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(schema, list):
        for i, v in enumerate(schema):
            yield from _walk(v, f"{path}[{i}]")


def test_openai_tools_follow_strict_mode_rules(registry):
    tools = registry.openai_tools()
    assert [t["function"]["name"] for t in tools] == [t.name for t in TOOLS]
    for tool in tools:
        fn = tool["function"]
        assert tool["type"] == "function" and fn["strict"] is True and len(fn["description"]) > 40
        for path, node in _walk(fn["parameters"]):
            if isinstance(node, dict) and node.get("type") == "object":
                assert node.get("additionalProperties") is False, path
                assert sorted(node.get("required", [])) == sorted(node.get("properties", {})), path
            if isinstance(node, dict):
                assert "default" not in node, path
                assert not isinstance(node.get("title"), str), path  # titles only cost a small model context
        for name, prop in fn["parameters"]["properties"].items():
            assert prop.get("description"), f"{fn['name']}.{name} undocumented"
    names = {t["function"]["name"]: set(t["function"]["parameters"]["properties"]) for t in tools}
    assert {"tiers", "lifecycle", "segments", "countries", "min_churn_risk", "max_churn_risk", "min_value",
            "max_value", "at_risk", "sort_by", "limit"} <= names["find_customers"]
    assert {"goal", "budget"} <= names["recommend_campaigns"]
    assert names["get_customer"] >= {"customer_id"} and "orders" in names["score_customer"]
    assert "group_by" in names["segment_summary"] and "query" in names["search_profiles"]


def test_strict_style_nulls_mean_defaults(registry):
    """A strict-mode model sends every argument, null where it has none: that must equal omitting them."""
    params = next(t for t in registry.openai_tools() if t["function"]["name"] == "find_customers")
    all_null = {k: None for k in params["function"]["parameters"]["properties"]}
    assert ok(registry, "find_customers", all_null) == ok(registry, "find_customers", {})


def test_cli_tool_prints_json(settings):
    env = {**tools_env(), "PATH": "/usr/bin:/bin"}
    exe = str(REPO / ".venv" / "bin" / "valuedesk")
    out = subprocess.run([exe, "tool", "find_customers", '{"tiers": ["Gold"], "limit": 3}'],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["returned"] == 3 and all(r["tier"] == "Gold" for r in result["customers"])
    out = subprocess.run([exe, "tool", "get_customer", '{"customer_id": "nope"}'], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 2 and json.loads(out.stdout)["error"]["code"] == "not_found"
    out = subprocess.run([exe, "tool", "--list"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and len(json.loads(out.stdout)) == len(TOOLS)


def test_next_best_action_matches_the_planners_per_customer_choice(registry, customers):
    """The whole-table precompute must pick what predictor.campaigns.planning.best_campaign_for picks."""
    from predictor.campaigns.next_action import best_campaign_for

    deps = registry.deps
    store = deps.customers
    sample = customers.sample(60, random_state=3)
    with_action = 0
    for _, row in sample.iterrows():
        expected = best_campaign_for(row.to_dict(), deps.catalogue, deps.settings, thresholds=store.tier_floors())
        got = ok(registry, "get_customer", {"customer_id": str(row["customer_id"])})["next_best_action"]
        if expected is None:
            assert got is None
            continue
        with_action += 1
        assert got["campaign"] == expected["campaign"] and got["offer"] == expected["offer"]
        assert got["expected_net_value"] == pytest.approx(expected["expected_net_value"], abs=0.01)
        assert got["reason"] == expected["reason"]
    assert with_action > 0


def test_recommend_campaigns_and_campaign_export(registry, settings):
    plan = ok(registry, "recommend_campaigns", {"tiers": ["Gold", "Platinum"], "budget": 300})
    assert plan["budget"] == 300 and plan["total_cost"] <= 300 and plan["campaigns"]
    ids = [i for c in plan["campaigns"] for i in c["customer_ids"]]
    assert len(ids) == len(set(ids))  # nobody gets two campaigns
    exported = ok(registry, "export_audience", {"tiers": ["Gold", "Platinum"], "budget": 300})
    csv = pd.read_csv(exported["path"], dtype={"customer_id": str})
    assert set(csv["campaign"]) == {c["name"] for c in plan["campaigns"]}
    # The plan's targets, then its control groups flagged control (counted in rows, never as treated).
    treated = csv[csv["group"] == "treatment"]
    assert len(treated) == sum(c["audience_size"] for c in plan["campaigns"]) == plan["targeted"]
    assert len(csv) - len(treated) == (csv["group"] == "control").sum() == plan["control_size"]
    assert len(csv) == exported["rows"]
    res = registry.call("recommend_campaigns", {"countries": ["Atlantis"]})
    assert not res.ok and res.error.code == "invalid_arguments" and res.error.hint
    assert "No country named 'Atlantis'" in res.error.message
    res = registry.call("recommend_campaigns", {"tiers": ["Platinum"], "min_value": 1e12})
    assert not res.ok and res.error.code == "campaign_error" and res.error.hint


def test_model_report_states_the_served_models_horizon(registry, settings):
    """It used to read a top-level key the bundle does not have and always said null."""
    report = ok(registry, "model_report", {})
    bundle_horizon = registry.deps.bundle.metadata["config"]["horizon_days"]
    assert report["horizon_days"] == bundle_horizon == settings.horizon_days
