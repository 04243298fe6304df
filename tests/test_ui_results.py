"""What the chat UI's results column builds on, over a registry on a real build (a 1-in-4 sample of the
Online Retail customers, tests/_tools_data.py): find_customers' `offset`, which the pager pages with,
and model_report's lift chart. The browser tests of both are in tests/test_ui.py.
"""

from __future__ import annotations

import re

import pytest

from _agent_support import agent_embedder, copy_tables, make_settings, no_real_llm, offline_service  # noqa: F401
from _tools_data import tools_settings
from agent import display_answer, display_lift, display_spread
from predictor.campaigns.catalogue import load_catalogue
from predictor.figures import pct
from tools.deps import ToolDeps
from tools.registry import ToolRegistry


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return ToolRegistry(ToolDeps(tools_settings()))


def ok(registry: ToolRegistry, tool: str, args: dict) -> dict:
    envelope = registry.call(tool, args)
    assert envelope.ok, envelope.error
    return envelope.result


@pytest.mark.parametrize("flt,sort_by", [({}, "value_at_risk"), ({"lifecycle": ["lapsed"]}, "historical_value"),
                                         ({"at_risk": True}, "churn_risk")])
def test_pages_of_find_customers_are_the_rows_of_one_big_call(registry, flt, sort_by):
    whole = ok(registry, "find_customers", {**flt, "sort_by": sort_by, "limit": 500})
    total, size = whole["total_matching"], 10  # 500 rows are 50 whole pages
    assert total > 3 * size, "the filter should match several pages on the real sample"
    pages, offset = [], 0
    while offset < min(total, 500):
        page = ok(registry, "find_customers", {**flt, "sort_by": sort_by, "limit": size, "offset": offset})
        assert page["total_matching"] == total and page["returned"] == len(page["customers"]) <= size
        pages += [row["customer_id"] for row in page["customers"]]
        offset += size
    assert pages == [row["customer_id"] for row in whole["customers"]]  # same order, nothing twice or missed
    assert len(set(pages)) == len(pages) == min(total, 500)


def test_an_offset_past_the_end_is_an_empty_page_with_the_same_total(registry):
    total = ok(registry, "find_customers", {"lifecycle": ["lapsed"]})["total_matching"]
    last = ok(registry, "find_customers", {"lifecycle": ["lapsed"], "limit": 10, "offset": total - 3})
    assert last["returned"] == 3 and last["total_matching"] == total
    past = ok(registry, "find_customers", {"lifecycle": ["lapsed"], "limit": 10, "offset": total})
    assert past["customers"] == [] and past["returned"] == 0 and past["total_matching"] == total
    assert past["narrowing"] is None  # customers match; this page is simply beyond them
    bad = registry.call("find_customers", {"offset": -1})
    assert not bad.ok and bad.error.code == "invalid_arguments"


def test_the_pager_walks_every_matching_row_through_the_registry(registry):
    args = {"lifecycle": ["lapsed"], "limit": 20}
    results = display_answer.AnswerResults()
    results.collect("find_customers", args, ok(registry, "find_customers", args))
    total, seen = results.list_call["total"], list(results.rows)
    while (page := results.page_call(1)) is not None:
        results.replace_rows(page["tool"], page["args"], ok(registry, page["tool"], page["args"]))
        seen += list(results.rows)
    assert len(seen) == len(set(seen)) == total
    first, last = int(re.search(r"Rows ([\d,]+)", display_answer.pager_line(results)).group(1)), total
    assert display_answer.pager_line(results) == f"Rows {first:,}–{last:,} of {total:,}"
    back = results.page_call(-1)
    assert back["args"]["offset"] == first - 1 - 20


def test_the_model_answer_shows_the_lift_chart_of_its_report(registry):
    report = ok(registry, "model_report", {})
    lift = report["validation"]["lift_by_decile"]
    results = display_answer.AnswerResults()
    results.collect("model_report", {}, report)
    panel = display_answer.results_panels(results)[12]
    assert panel["visible"]
    html = panel["value"]
    shares = [float(v) for v in re.findall(r"class='vd-lift-bar'[^>]*data-share='([-\d.e]+)'", html)]
    assert shares == [row["revenue_share"] for row in lift]  # the bars are the tool's figures, in decile order
    top, window = lift[0], report["validation"]
    assert (f"The 10% of customers the model ranks highest brought {pct(top['revenue_share'])} of the revenue of "
            f"the {window['label_days']} days after {window['cutoff']}") in html
    assert "Random pick: 10% per decile" in html and "data-share='0.1'" in html
    assert "values from 0% to" in html or min(shares) < 0  # the value axis starts at zero


def test_a_report_from_before_the_lift_shows_no_chart(registry):
    report = ok(registry, "model_report", {})
    older = {**report, "validation": {k: v for k, v in report["validation"].items() if k != "lift_by_decile"}}
    results = display_answer.AnswerResults()
    results.collect("model_report", {}, older)
    panel = display_answer.results_panels(results)[12]
    assert not panel["visible"] and panel["value"] == ""
    results.collect("model_report", {}, {**report, "validation": None})
    assert not display_answer.results_panels(results)[12]["visible"]


def test_a_decile_of_returns_takes_the_axis_below_zero():
    lift = [{"decile": d, "customers": 10, "mean_spend": 5.0, "revenue_share": s, "lift": 1.0}
            for d, s in enumerate([0.5, 0.3, 0.1, 0.1, 0.05, 0.0, 0.0, 0.0, 0.0, -0.05], start=1)]
    html = display_lift.lift_chart(lift)
    assert "values from -10% to 50%" in html and "data-tick='-0.1'" in html
    assert display_lift.lift_chart([]) == ""


def test_the_tier_summary_carries_each_tiers_spread_of_predicted_value(registry):
    """segment_summary's per-group quantiles are the table's own (numpy's linear quantiles), filter applied."""
    from tools.deps import ToolDeps

    frame = ToolDeps(tools_settings()).customers.frame
    for args, rows in (({}, frame), ({"lifecycle": ["lapsed"]}, frame[frame["lifecycle"] == "lapsed"])):
        result = ok(registry, "segment_summary", args)
        for group in result["groups"]:
            values = rows.loc[rows["tier"] == group["group"], "predicted_value"].dropna()
            expected = values.quantile([0.1, 0.25, 0.5, 0.75, 0.9]).round(2).tolist()
            assert list(group["predicted_value_quantiles"].values()) == pytest.approx(expected, abs=0.011)
            assert list(group["predicted_value_quantiles"]) == ["p10", "p25", "p50", "p75", "p90"]
    results = display_answer.AnswerResults()
    results.collect("segment_summary", {}, result)
    html = display_spread.spread_chart(results.groups, results.group_by)
    assert html.count("class='vd-spread-box'") == len(result["groups"])
    assert "values from 0 to" in html and "data-p50=" in html  # a money axis from zero


def test_a_campaign_answer_names_its_campaigns_in_words(agent_embedder, tmp_path):
    """The offline answer words each playbook from the tool's `label` (no snake_case id on screen), and the
    tool result carries the label for an LLM backend too."""
    service = offline_service(make_settings(copy_tables(tmp_path)), agent_embedder)
    reply = service.chat("plan a win-back campaign for lapsed customers with a £2,000 budget", "words")
    plan = next(c for c in reply.tool_calls if c.name == "recommend_campaigns").result
    assert plan["campaigns"] and all(c["label"] and "_" not in c["label"] for c in plan["campaigns"])
    assert "Win-back" in reply.answer and [c["label"] for c in plan["campaigns"]][0] in reply.answer
    ids = [p.name for p in load_catalogue().playbooks if "_" in p.name]
    assert not [i for i in ids if i in reply.answer], reply.answer
