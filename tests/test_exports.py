"""Audience exports a marketing tool can ingest (issue 16, part 4), on the shared test build's customers
(a real `valuedesk build` of the Online Retail sample, copied so these tests can write and break exports).

One meaning per column across a filter export and a campaign export; a campaign's control group in
the file, flagged `control` and never counted as treated; file names that say the audience, the day
and the row count; a later export never overwriting an earlier one; a failed write leaving the
folder as it was.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from _full_disk import full_disk_csv
from _agent_support import copy_tables, make_settings
from predictor.campaigns.export import AUDIENCE_COLUMNS, SLUG_MAX_CHARS, audience_slug, write_new_export
from tools.deps import ToolDeps
from tools.registry import ToolRegistry

# The columns describing the customer (not the campaign): the same text in every export of them.
CUSTOMER_COLUMNS = ["tier", "lifecycle", "at_risk", "churn_risk", "predicted_value", "value_at_risk",
                    "next_order_date"]
TOP_TIERS = {"tiers": ["Gold", "Platinum"]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return copy_tables(tmp_path_factory.mktemp("exports-data"))


@pytest.fixture(scope="module")
def registry(data_dir) -> ToolRegistry:
    return ToolRegistry(ToolDeps(make_settings(data_dir)))


@pytest.fixture(scope="module")
def customers(data_dir) -> pd.DataFrame:
    frame = pd.read_parquet(data_dir / "customers.parquet")
    return frame.set_index(frame["customer_id"].astype(str))


def ok(registry: ToolRegistry, name: str, args: dict) -> dict:
    res = registry.call(name, args)
    assert res.ok, res.error
    return res.result


def read(result: dict) -> pd.DataFrame:
    """The exported file as text, the way an import tool sees it (empty cells stay empty strings)."""
    return pd.read_csv(result["path"], dtype=str, keep_default_na=False)


def expected_customer_text(customers: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """The customer columns as the export must write them, computed here from the customers table."""
    rows = customers.loc[ids]
    return pd.DataFrame({
        "tier": rows["tier"].astype(str), "lifecycle": rows["lifecycle"].astype(str),
        "at_risk": rows["at_risk"].map({True: "true", False: "false"}),
        "churn_risk": rows["churn_risk"].map(lambda v: f"{v:.4f}"),
        "predicted_value": rows["predicted_value"].map(lambda v: f"{v:.2f}"),
        "value_at_risk": rows["value_at_risk"].map(lambda v: f"{v:.2f}"),
        "next_order_date": rows["expected_next_order"].map(lambda v: "" if pd.isna(v) else v.date().isoformat()),
    }).reset_index(drop=True)


def test_filter_and_campaign_exports_give_each_column_one_meaning(registry, customers):
    by_filter = ok(registry, "export_audience", TOP_TIERS)
    by_plan = ok(registry, "export_audience", {**TOP_TIERS, "source": "campaigns"})
    plain, planned = read(by_filter), read(by_plan)
    for result, frame in ((by_filter, plain), (by_plan, planned)):
        assert list(frame.columns) == list(AUDIENCE_COLUMNS) == result["columns"]
        assert len(frame) == result["rows"] > 0
        # predicted_value is the customer's predicted value (never a campaign's value), and so on.
        got = frame[CUSTOMER_COLUMNS].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected_customer_text(customers, frame["customer_id"].tolist()))
    # A filter export has no campaign and no holdout: everyone is in the treatment group.
    assert set(plain["group"]) == {"treatment"}
    assert (plain[["campaign", "offer", "expected_net_value"]] == "").all().all()
    assert set(plain["customer_id"]) == set(customers.index[customers["tier"].isin(TOP_TIERS["tiers"])])
    # A campaign export: the campaign on every row; offer and net value only where someone is contacted.
    treated = planned["group"] == "treatment"
    assert (planned["campaign"] != "").all() and set(planned["group"]) == {"treatment", "control"}
    assert (planned.loc[treated, ["offer", "expected_net_value"]] != "").all().all()
    assert (planned.loc[~treated, ["offer", "products", "expected_net_value"]] == "").all().all()
    # The same customer reads the same in both files.
    shared = plain[["customer_id", *CUSTOMER_COLUMNS]].merge(
        planned[["customer_id", *CUSTOMER_COLUMNS]], on="customer_id", suffixes=("", "_plan"))
    assert len(shared) == len(planned)
    for column in CUSTOMER_COLUMNS:
        assert (shared[column] == shared[f"{column}_plan"]).all(), column


def test_campaign_export_flags_the_control_group_and_never_counts_it_as_treated(registry):
    args = {**TOP_TIERS, "source": "campaigns"}
    plan = ok(registry, "recommend_campaigns", TOP_TIERS)
    export = ok(registry, "export_audience", args)
    frame = read(export)
    assert plan["control_size"] > 0
    treated, control = frame[frame["group"] == "treatment"], frame[frame["group"] == "control"]
    assert len(treated) == plan["targeted"] and len(control) == plan["control_size"]
    assert len(frame) == export["rows"] == plan["targeted"] + plan["control_size"]
    assert export["control_rows"] == plan["control_size"]
    # The answer says how many rows are control customers, not to be contacted.
    from agent.planner import templates

    text = templates.export_audience(export, args, registry.settings)
    assert f"{plan['control_size']:,} of them (group 'control')" in text and "do not contact them" in text
    assert ok(registry, "export_audience", TOP_TIERS)["control_rows"] == 0  # a filter export has none
    assert not set(treated["customer_id"]) & set(control["customer_id"])
    assert treated["expected_net_value"].astype(float).sum() == pytest.approx(
        sum(c["expected_net_value"] for c in plan["campaigns"]), abs=0.01 * len(treated) + 0.1)
    # Campaign by campaign in the plan's order: its treated customers (best first), then its control group.
    blocks = [(name, group) for name, group in zip(frame["campaign"], frame["group"])]
    expected_blocks = [(c["name"], g) for c in plan["campaigns"] for g, k in
                       (("treatment", c["audience_size"]), ("control", c["control_group_size"])) for _ in range(k)]
    assert blocks == expected_blocks
    for camp in plan["campaigns"]:
        ids = treated.loc[treated["campaign"] == camp["name"], "customer_id"].tolist()
        assert ids[:len(camp["customer_ids"])] == camp["customer_ids"]
    # Deterministic: the same request writes the same rows (to a file of its own).
    again = ok(registry, "export_audience", args)
    assert again["file"] != export["file"]
    assert Path(again["path"]).read_bytes() == Path(export["path"]).read_bytes()


def test_file_names_say_the_audience_the_day_and_the_rows_and_never_overwrite(registry, data_dir):
    today = date.today().isoformat()
    first = ok(registry, "export_audience", {"tiers": ["Gold"]})
    assert first["file"] == f"exports/gold-customers-{today}-{first['rows']}.csv"
    before = Path(first["path"]).read_bytes()
    second = ok(registry, "export_audience", {"tiers": ["Gold"]})
    assert second["file"] == f"exports/gold-customers-{today}-{second['rows']}-v2.csv"
    assert Path(first["path"]).read_bytes() == before == Path(second["path"]).read_bytes()
    plan = ok(registry, "export_audience", {"tiers": ["Gold"], "goal": "win back"})
    assert re.fullmatch(rf"exports/gold-win-back-plan-{today}-{plan['rows']}(-v\d+)?\.csv", plan["file"])
    risky = ok(registry, "export_audience", {"at_risk": True, "lifecycle": ["at risk", "lapsing"]})
    assert re.fullmatch(rf"exports/at-risk-lapsing-customers-{today}-{risky['rows']}(-v\d+)?\.csv", risky["file"])
    assert all(name == name.lower() and " " not in name for name in os.listdir(data_dir / "exports"))


def test_a_failed_export_leaves_the_folder_and_earlier_exports_as_they_were(registry, data_dir, monkeypatch):
    import predictor.campaigns.export as export_module

    args = {"tiers": ["Platinum"], "max_rows": 20}
    first = ok(registry, "export_audience", args)
    folder = data_dir / "exports"
    snapshot = {p.name: p.read_bytes() for p in folder.iterdir()}

    monkeypatch.setattr(export_module, "csv", full_disk_csv)
    res = registry.call("export_audience", args)
    assert not res.ok and res.error.code == "insufficient_storage"
    # The message names the file it tried to write: the same audience, day and rows, as a new version.
    assert first["file"] == f"exports/platinum-customers-{date.today().isoformat()}-{first['rows']}.csv"
    assert first["file"].replace(".csv", "-v2.csv") in res.error.message
    # No claimed name, no temp file, and the earlier export with the same name untouched.
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == snapshot
    monkeypatch.undo()
    again = ok(registry, "export_audience", args)
    assert again["file"] == first["file"].replace(".csv", "-v2.csv") and again["rows"] == first["rows"]


def test_write_new_export_claims_a_free_name_and_never_follows_a_link(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    outside = tmp_path / "outside.csv"
    (folder / "x-2026-01-02-1.csv").symlink_to(outside)  # a dangling link where the name would go
    path, n = write_new_export([{"customer_id": "1", "group": "treatment"}], folder / "x-2026-01-02-1.csv")
    assert (path.name, n) == ("x-2026-01-02-1-v2.csv", 1) and not outside.exists()
    assert path.read_text().splitlines() == [",".join(AUDIENCE_COLUMNS), "1,treatment" + "," * 11]


@pytest.mark.parametrize("flt,plan,slug", [
    ({}, None, "all-customers"),
    ({}, "reactivate", "reactivate-plan"),
    ({"tiers": ["Gold"], "at_risk": True}, None, "at-risk-gold-customers"),
    ({"at_risk": True, "lifecycle": ["at risk"], "segments": ["At Risk"]}, None, "at-risk-customers"),
    ({"tiers": ["Gold", "Platinum"]}, "win_back", "gold-platinum-win-back-plan"),
    ({"countries": ["Côte d'Ivoire"], "min_churn_risk": 0.5}, None, "customers-in-cote-d-ivoire-churn-over-50pct"),
    ({"min_value": 100, "max_value": 5000}, None, "customers-value-100-to-5000"),
    ({"max_recency_days": 30}, None, "customers-last-order-under-30-days-ago"),
    ({}, "../../etc/passwd", "etc-passwd-plan"),
])
def test_audience_slug_says_the_audience_in_marketer_words(flt, plan, slug):
    assert audience_slug(flt, plan=plan) == slug


def test_audience_slug_is_short_and_safe_for_any_filter():
    slug = audience_slug({"countries": ["United Kingdom", "Germany", "France", "EIRE", "Spain", "Netherlands"],
                          "tiers": ["Gold", "Silver"], "lifecycle": ["lapsed"]})
    assert len(slug) <= SLUG_MAX_CHARS and slug.startswith("lapsed-gold-silver-customers-in-united-kingdom")
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
