"""Say what was dropped, never rewrite it silently (issue 13, part 6).

Out-of-range amounts are refused with the reason (by the planner and by the tools' validation), an
unknown country is an error naming it instead of an audience of everyone, a path or file name the
request gives is reported as not used, and exports expire, stay private (0600 files, a 0700 folder)
and are named relative to the data directory in results and errors.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import time
from datetime import datetime
from pathlib import Path

import pytest

from _agent_support import agent_data_dir, agent_embedder, make_settings, no_real_llm, offline_service  # noqa: F401
from agent.planner import IntentModel, Planner
from predictor.campaigns.allocation import MAX_BUDGET
from predictor.campaigns.export import export_dir, prune_exports, write_audience_csv
from tools.deps import ToolDeps
from tools.registry import ToolRegistry


def _private_data_dir(target: Path) -> Path:
    """A flat copy of the shared test build's customer tables (these tests write and break exports)."""
    source = make_settings(agent_data_dir())
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source.customers_path, target / "customers.parquet")
    shutil.copy(Path(source.customers_path).parent / "transactions.parquet", target / "transactions.parquet")
    return target


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return _private_data_dir(tmp_path_factory.mktemp("dropped-data"))


@pytest.fixture(scope="module")
def registry(data_dir) -> ToolRegistry:
    return ToolRegistry(ToolDeps(make_settings(data_dir)))


@pytest.fixture(scope="module")
def planner(registry, agent_embedder) -> Planner:
    return Planner.for_registry(registry.settings, registry, intent_model=IntentModel(registry.settings, embedder=agent_embedder))


def _exports(data_dir: Path) -> list[str]:
    folder = data_dir / "exports"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- amounts: the planner


@pytest.mark.parametrize("question,reason", [
    ("Plan a win-back campaign with minus 500 pounds", "negative"),
    ("retention campaign for gold customers, budget of -£500", "negative"),
    ("reactivation campaign with a budget of minus five hundred pounds", "negative"),
    ("Plan a campaign with a budget of 1e308 pounds", "more than the largest budget"),
    ("Plan a campaign with a budget of 1e999 pounds", "more than the largest budget"),
    ("win back campaign, budget two billion pounds", "more than the largest budget"),
    ("plan a retention campaign with a budget of 0 pounds", "zero"),
])
def test_planner_refuses_negative_zero_and_absurd_budgets_with_the_reason(planner, question, reason):
    plan = planner.plan(question, [])
    assert plan.kind == "refuse" and plan.calls == [], plan
    assert reason in plan.text and "I can't plan with" in plan.text
    assert "not changed it into another amount" in plan.text
    assert "one billion" in plan.text or reason != "more than the largest budget"


def test_refused_amount_is_quoted_as_written_never_as_a_rewritten_one(planner):
    assert "a budget of -£500" in planner.plan("Plan a win-back campaign with minus 500 pounds", []).text
    assert "a budget of £1e308" in planner.plan("Plan a campaign with a budget of 1e308 pounds", []).text
    # Written in words: quoted as "that budget", so no figure the user did not write appears.
    text = planner.plan("win back campaign, budget two billion pounds", []).text
    assert "that budget" in text and "2000000000" not in text


def test_follow_up_with_a_negative_budget_is_refused_too(planner):
    first = planner.plan("suggest a win-back campaign for platinum customers", [])
    assert first.kind == "answer"
    history = [{"plan": first.to_dict(), "results": []}]
    plan = planner.plan("and with a budget of minus nine hundred pounds?", history)
    assert plan.kind == "refuse" and plan.calls == [] and "negative" in plan.text
    ok = planner.plan("and with a budget of nine hundred pounds?", history)
    assert ok.kind == "answer" and ok.calls[0]["args"]["budget"] == 900


@pytest.mark.parametrize("question,budget", [
    ("Plan a retention campaign for Platinum customers with a budget of £5,000", 5000),
    ("campaign to push silver customers up to gold, £1.5k budget", 1500),
    ("win-back campaign - 500 pounds budget", 500),  # a dash as punctuation is not a minus sign
    ("retention campaign with a budget of one billion pounds", MAX_BUDGET),
])
def test_valid_budgets_still_plan(planner, question, budget):
    plan = planner.plan(question, [])
    assert plan.kind == "answer" and plan.calls[0]["args"]["budget"] == budget


def test_negative_value_threshold_is_refused(planner):
    plan = planner.plan("customers with predicted value over minus 100 pounds", [])
    assert plan.kind == "refuse" and plan.calls == [] and "never below zero" in plan.text


# ---------------------------------------------------------------- amounts: the tools' validation


@pytest.mark.parametrize("budget,reason", [
    (-500, "Budget must be a positive amount, got -500"),
    ("-500", "Budget must be a positive amount, got -500"),
    (0, "Budget must be a positive amount, got 0"),
    (1e308, "implausibly large"),
    (math.inf, "implausibly large (not finite"),
    pytest.param(10**400, "implausibly large (not finite", id="int-beyond-float"),
    (math.nan, "nan (not a number)"),
    (MAX_BUDGET * 5, "implausibly large (over 1,000,000,000)"),
])
@pytest.mark.parametrize("tool", ["recommend_campaigns", "export_audience"])
def test_tools_refuse_out_of_range_budgets_with_a_specific_error(registry, data_dir, tool, budget, reason):
    before = _exports(data_dir)
    res = registry.call(tool, {"budget": budget, "goal": "win_back"})
    assert not res.ok and res.error.code == "invalid_arguments"
    assert res.error.fields and res.error.fields[0]["field"] == "budget" and reason in res.error.fields[0]["reason"]
    assert reason in res.error.message
    assert _exports(data_dir) == before


def test_tools_take_a_budget_in_range(registry):
    res = registry.call("recommend_campaigns", {"budget": 500, "tiers": ["Gold", "Platinum"]})
    assert res.ok and res.result["budget"] == 500


# ---------------------------------------------------------------- countries and paths


def test_unknown_country_is_an_error_naming_it_and_the_known_ones(registry, customers_countries):
    for tool, args in (("find_customers", {}), ("segment_summary", {}), ("recommend_campaigns", {}),
                       ("export_audience", {}), ("search_profiles", {"query": "tea sets"})):
        res = registry.call(tool, {**args, "countries": ["Atlantis"]})
        assert not res.ok and res.error.code == "invalid_arguments", (tool, res)
        message = res.error.message
        assert "No country named 'Atlantis'" in message and "Known countries include" in message
        assert customers_countries[0] in message  # the most common country is listed first
    res = registry.call("find_customers", {"countries": ["Germny"]})
    assert "Did you mean 'Germany'?" in res.error.message
    # A known country in any case still works, alone or with others.
    res = registry.call("find_customers", {"countries": ["germany", "FRANCE"]})
    assert res.ok and res.result["total_matching"] > 0


@pytest.fixture(scope="module")
def customers_countries(registry) -> list[str]:
    frame = registry.deps.customers.frame
    return frame["country"].value_counts().index.astype(str).tolist()


def test_planner_passes_an_explicit_unknown_country_on_instead_of_dropping_it(planner):
    plan = planner.plan("export gold customers in country Atlantis", [])
    assert plan.calls[0]["name"] == "export_audience" and "Atlantis" in plan.calls[0]["args"]["countries"]
    plan = planner.plan("export customers in country '../../etc/passwd'", [])
    assert plan.calls[0]["args"]["countries"] == ["../../etc/passwd"]
    # Known countries, their aliases and typos are unchanged; "by country" names no country.
    assert planner.plan("export customers in country 'Germany'", []).calls[0]["args"]["countries"] == ["Germany"]
    assert planner.plan("list customers from the country Germny", []).calls[0]["args"]["countries"] == ["Germany"]
    for text in ("now by country instead", "How many customers do we have in each country?",
                 "customers in country 'Ireland'", "customers in country: United Kingdom",
                 "break customers down by country/region", "customers per country Please"):
        assert planner.slots.unknown_countries(text) == [], text


@pytest.mark.parametrize("question,targets", [
    ("export customers in country '../../etc/passwd' to a file named /etc/cron.d/evil", ["/etc/cron.d/evil"]),
    ("Export the Gold tier to /etc/passwd", ["/etc/passwd"]),
    ("save the lapsed customers as vip-list.xlsx", ["vip-list.xlsx"]),
    ("export the champions to a file called 'my list'", ["my list"]),
    ("export the gold customers to C:\\Users\\me\\gold.csv", ["C:\\Users\\me\\gold.csv"]),
    ("Export the lapsing Gold customers to a CSV", []),
    ("Download a file with all customers in Germany", []),
    ("find customers who mention 'gift.txt'", []),
])
def test_paths_and_file_names_in_a_request_are_recorded_as_dropped(planner, question, targets):
    plan = planner.plan(question, [])
    assert plan.kind == "answer" and plan.calls
    assert plan.dropped == targets


def test_path_and_bad_country_export_says_what_was_dropped_and_exports_nothing(data_dir, registry, agent_embedder):
    service = offline_service(registry.settings, agent_embedder, registry=registry)
    before = _exports(data_dir)
    reply = service.chat("export customers in country '../../etc/passwd' to a file named /etc/cron.d/evil", "drop-1")
    assert [t.name for t in reply.tool_calls] == ["export_audience"]
    call = reply.tool_calls[0]
    assert call.arguments["countries"] == ["../../etc/passwd"] and call.result is None
    assert call.error["code"] == "invalid_arguments"
    assert "No country named '../../etc/passwd' in the data, so nothing was exported" in reply.answer
    assert "Known countries include" in reply.answer
    assert "I can't write to /etc/cron.d/evil" in reply.answer and "exports folder" in reply.answer
    assert reply.unverified == []
    assert _exports(data_dir) == before
    assert not Path("/etc/cron.d/evil").exists()


def test_export_to_a_path_says_where_the_file_really_went(data_dir, registry, agent_embedder):
    service = offline_service(registry.settings, agent_embedder, registry=registry)
    reply = service.chat("Export the Gold tier to /etc/passwd", "drop-2")
    result = reply.tool_calls[0].result
    # Named by the tool for the audience, the day and the row count (never by the request).
    assert result and re.fullmatch(rf"exports/gold-customers-\d{{4}}-\d{{2}}-\d{{2}}-{result['rows']}(-v\d+)?\.csv",
                                   result["file"]), result["file"]
    assert "I can't write to /etc/passwd" in reply.answer and f"so this one is {result['file']}" in reply.answer
    assert str(data_dir) not in reply.answer  # the answer names the file relative to the data directory
    assert reply.kind == "answer" and reply.unverified == []
    assert (data_dir / result["file"]).is_file()


def test_budget_refusal_through_the_agent_is_grounded(registry, agent_embedder):
    service = offline_service(registry.settings, agent_embedder, registry=registry)
    reply = service.chat("Plan a win-back campaign with minus 500 pounds", "drop-3")
    assert reply.kind == "refuse" and reply.tool_calls == [] and "negative" in reply.answer
    assert reply.unverified == []


# ---------------------------------------------------------------- exports: expiry, leftovers, modes


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_old_exports_and_tmp_leftovers_are_pruned_on_the_next_export(tmp_path):
    data_dir = _private_data_dir(tmp_path / "data")
    registry = ToolRegistry(ToolDeps(make_settings(data_dir, export_max_age_hours=2.0)))
    folder = data_dir / "exports"
    folder.mkdir()
    old, fresh = folder / "audience-old.csv", folder / "audience-fresh.csv"
    old_tmp, live_tmp = folder / ".audience-x.csv.abc123.tmp", folder / ".audience-y.csv.def456.tmp"
    other, link = folder / "notes.txt", folder / "linked.csv"
    for path in (old, fresh, old_tmp, live_tmp, other):
        path.write_text("customer_id\n1\n")
    link.symlink_to(tmp_path / "outside.csv")
    (tmp_path / "outside.csv").write_text("customer_id\n")
    _age(old, 2.5 * 3600)
    _age(fresh, 1.5 * 3600)
    _age(old_tmp, 3600)  # left by an export that died an hour ago
    _age(other, 10 * 3600)
    os.utime(link, (time.time() - 10 * 3600,) * 2, follow_symlinks=False)

    res = registry.call("export_audience", {"tiers": ["Gold"]})
    assert res.ok, res.error
    names = set(_exports(data_dir))
    assert "audience-old.csv" not in names and old_tmp.name not in names
    assert {"audience-fresh.csv", live_tmp.name, "notes.txt", "linked.csv", Path(res.result["file"]).name} == names
    assert (tmp_path / "outside.csv").exists()  # a link is never followed
    written = data_dir / res.result["file"]
    expires = datetime.fromisoformat(res.result["expires_at"])
    assert expires.utcoffset().total_seconds() == 0
    assert expires.timestamp() == pytest.approx(written.stat().st_mtime + 2 * 3600, abs=1.0)


def test_prune_exports_unit(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    a, b = folder / "a.csv", folder / "b.csv"
    a.write_text("x")
    b.write_text("x")
    now = time.time()
    _age(a, 48 * 3600)
    assert prune_exports(folder, 24, now=now) == ["a.csv"]
    assert prune_exports(folder, 24, now=now + 25 * 3600) == ["b.csv"]
    assert prune_exports(tmp_path / "missing", 24) == []


def test_export_files_are_0600_and_the_folder_0700(tmp_path):
    data_dir = _private_data_dir(tmp_path / "data")
    (data_dir / "exports").mkdir(mode=0o755)
    os.chmod(data_dir / "exports", 0o755)  # as an older version left it
    registry = ToolRegistry(ToolDeps(make_settings(data_dir)))
    res = registry.call("export_audience", {"tiers": ["Gold"]})
    assert res.ok, res.error
    assert stat.S_IMODE((data_dir / "exports").stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / res.result["file"]).stat().st_mode) == 0o600
    fresh = export_dir(tmp_path / "fresh" / "exports")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    path = tmp_path / "new-folder" / "audience.csv"
    write_audience_csv([{"customer_id": "1"}], path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


# ---------------------------------------------------------------- no absolute paths in messages


def _no_absolute_path(text: str, *roots: Path) -> None:
    for root in roots:
        assert str(root) not in text, text
    assert not any(token.startswith("/") for token in text.replace("'", " ").replace('"', " ").split()), text


def test_export_result_and_errors_name_files_relative_to_the_data_dir(tmp_path):
    data_dir = _private_data_dir(tmp_path / "data")
    registry = ToolRegistry(ToolDeps(make_settings(data_dir)))
    res = registry.call("export_audience", {"tiers": ["Gold"]})
    assert res.ok
    # `path` stays absolute: the UI hands it to the download widget; `file` is what messages use.
    assert Path(res.result["path"]) == data_dir / res.result["file"] and Path(res.result["path"]).is_absolute()
    shutil.rmtree(data_dir / "exports")
    (data_dir / "exports").write_text("not a folder")  # the export cannot be written
    res = registry.call("export_audience", {"tiers": ["Gold"]})
    assert not res.ok and res.error.code == "internal_error" and "exports/" in res.error.message
    _no_absolute_path(json.dumps(res.error.model_dump()), data_dir, tmp_path)


def test_catalogue_errors_name_the_file_without_its_absolute_path(tmp_path):
    data_dir = _private_data_dir(tmp_path / "data")
    bad = data_dir / "catalogue.yaml"
    bad.write_text("playbooks: [oops")
    for catalogue, shown in ((bad, "catalogue.yaml"), (tmp_path / "elsewhere" / "missing.yaml", "missing.yaml")):
        registry = ToolRegistry(ToolDeps(make_settings(data_dir, campaign_catalogue=catalogue)))
        res = registry.call("recommend_campaigns", {"tiers": ["Gold"]})
        assert not res.ok and res.error.code == "campaign_error"
        assert shown in res.error.message
        _no_absolute_path(json.dumps(res.error.model_dump()), data_dir, tmp_path)
        cid = str(registry.deps.customers.frame["customer_id"].iloc[0])
        detail = registry.call("get_customer", {"customer_id": cid})
        assert detail.ok and detail.result["next_best_action"] is None and detail.result["notes"]
        _no_absolute_path(" ".join(detail.result["notes"]), data_dir, tmp_path)
