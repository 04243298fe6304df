"""Numbers a marketer reads (issue 15): percentages at the ends ("under 1%", never "0%"), one name per
figure in answers, tables, profiles and drivers, value at risk above predicted value explained, the
ordering rhythm in words, and the model's quality in words with its figures. On a real build of the
Online Retail data (one customer in four) and a held-out evaluation of the same data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from _tiers_data import fast_config, loaded_sample, make_settings
from _tools_data import tools_settings
from agent import display, grounding
from agent.eval.groundedness import Evidence, groundedness
from agent.planner import templates
from predictor.customers import profiles
from predictor.figures import GLOSSARY, money, name, pct, whole_money
from predictor.model import explain
from predictor.model.evaluation import evaluate
from predictor.model.metrics import churn_metrics, held_out_quality
from tools.deps import ToolDeps
from tools.functions.report import quality_words
from tools.registry import ToolRegistry


@pytest.fixture(scope="module")
def settings():
    return tools_settings()


@pytest.fixture(scope="module")
def registry(settings) -> ToolRegistry:
    return ToolRegistry(ToolDeps(settings))


@pytest.fixture(scope="module")
def customers(settings) -> pd.DataFrame:
    frame = pd.read_parquet(settings.customers_path)
    return frame.set_index(frame["customer_id"].astype(str), drop=False)


def answer(registry: ToolRegistry, tool: str, args: dict) -> tuple[dict, str]:
    """The tool's result and the offline planner's answer for it, checked grounded by both checkers."""
    envelope = registry.call(tool, args)
    assert envelope.ok, envelope.error
    result = envelope.result
    text = getattr(templates, tool)(result, args, registry.deps.settings)
    assert groundedness(text, Evidence().add(result).add(args)).ungrounded == []
    assert grounding.unverified(text, grounding.evidence_from([result, args])) == []
    return result, text


# ------------------------------------------------------------------ percentages


@pytest.mark.parametrize("value,shown", [
    (0.005, "under 1%"), (0.0099, "under 1%"), (0.01, "1%"), (0.284, "28%"), (0.99, "99%"), (0.9951, "over 99%"),
    (0.0, "0%"), (1.0, "100%"), (None, "n/a"), (float("nan"), "n/a")])
def test_percentages_read_under_1_and_over_99_at_the_ends(value, shown):
    assert pct(value) == shown


def test_every_surface_formats_percentages_with_the_one_function():
    assert templates.pct is pct and display.pct is pct and profiles.pct is pct and explain.pct is pct


def test_low_churn_customers_read_under_1_percent_in_answers_tables_and_profiles(registry, customers):
    low = customers[customers["churn_risk"] < 0.01]
    assert len(low) >= 1, "the real data has customers the model is almost sure will order again"
    result, text = answer(registry, "find_customers", {"max_churn_risk": 0.0099, "limit": 10})
    assert result["total_matching"] == len(low)
    assert not re.search(r"(?<![\d.])0%", text)
    assert text.count("churn risk under 1%") == len(result["customers"])
    table = display.customer_frame(result["customers"])
    assert set(table["churn_risk"]) == {"under 1%"}
    assert np.allclose(display.scatter_frame(table)["churn_risk"], [c["churn_risk"] for c in result["customers"]])
    for text in low["profile_text"]:
        assert "Churn risk under 1% over the next" in text
    one = low.index[0]
    _, text = answer(registry, "get_customer", {"customer_id": one, "recent_orders": 0})
    assert "Churn risk under 1%;" in text


def test_small_groups_read_under_1_percent_in_a_summary(registry, customers):
    result, text = answer(registry, "segment_summary", {"group_by": "country"})
    small = [g for g in result["groups"][:25] if g["share"] < 0.01]
    assert small, "most countries hold under 1% of the customers"
    for g in small:
        assert f"- {g['group']}: {g['customers']:,} customer" in text
        assert re.search(rf"- {re.escape(g['group'])}: [\d,]+ customers? \(under 1%\)", text)
    assert "(0%)" not in text


# ------------------------------------------------------------------ one name per figure

# Names the answers used to give these figures (or never should): one figure, one name.
OTHER_NAMES = [r"(?<!gross )lifetime spend", r"\bin total\b", r"mean churn risk", r"P10-P90", r"revenue over the last 12",
               r"historical value", r"historical_value", r"spent £[\d,.]+ in total"]


def test_each_figure_has_one_name_in_answers_profiles_and_drivers(registry, customers):
    repeat = customers[(customers["orders"] >= 3)].sort_values("historical_value").iloc[-1]
    cid = str(repeat["customer_id"])
    detail, customer_text = answer(registry, "get_customer", {"customer_id": cid, "recent_orders": 0})
    _, ranked = answer(registry, "find_customers", {"sort_by": "historical_value", "limit": 5})
    _, summary = answer(registry, "segment_summary", {})
    profile = repeat["profile_text"]
    drivers = [d for ds in customers["drivers"] for d in ds]
    for text in [customer_text, ranked, summary, profile, *drivers]:
        for other in OTHER_NAMES:
            assert not re.search(other, text), (other, text)
    # The same column under the same name, with its own value, wherever it is shown.
    assert f"Lifetime revenue {money(detail['historical_value'], '£')} (net of cancellations)" in customer_text
    assert f"lifetime revenue {whole_money(repeat['historical_value'], '£')}" in profile
    assert f"revenue over the last year {whole_money(repeat['revenue_12m'], '£')}" in profile
    assert "The top 5 by lifetime revenue:" in ranked and "revenue over the last year £" in summary
    assert "average churn risk" in summary
    # Gross spend before cancellations is a different figure, and its driver phrase says so.
    gross = [d for d in drivers if "gross lifetime spend" in d]
    assert gross and all("(before cancellations)" in d for d in gross)


def test_the_glossary_names_the_columns_the_tables_show():
    shown = set(display.CUSTOMER_COLUMNS) - {"customer_id", "tier", "lifecycle", "segment", "country", "last_order",
                                             "score"}
    assert shown <= set(GLOSSARY)
    legend = display.glossary_markdown(display.CUSTOMER_COLUMNS)
    assert f"(lifetime revenue): {GLOSSARY['historical_value'].meaning}" in legend
    assert not any(re.search(r"\d", figure.name) for figure in GLOSSARY.values()), "a name must not read as a figure"
    chart = display.campaign_chart_frame([{"name": "x", "cost": 1.0, "expected_incremental_revenue": 3.0,
                                           "expected_net_value": 2.0}])
    assert list(chart["measure"]) == ["Cost", "Expected incremental revenue", "Expected net value"]


# ------------------------------------------------------------------ value at risk above predicted value


def test_value_at_risk_above_predicted_value_is_explained_with_its_figures(registry, customers):
    gap = customers["value_at_risk"] - customers["predicted_value"]
    assert (gap > 0).any(), "likely churners' value at risk exceeds their predicted value in the real data"
    cid = str(gap.idxmax())
    result, text = answer(registry, "get_customer", {"customer_id": cid, "recent_orders": 0})
    why = result["value_at_risk_explained"]
    assert why and why in text
    for figure in (money(result["value_at_risk"], "£"), money(result["predicted_value"], "£"),
                   pct(result["churn_risk"]), money(result["value_if_retained"], "£"),
                   f"{result['horizon_days']} days"):
        assert figure in why
    # What the sentence says is the arithmetic of the columns.
    assert result["churn_risk"] * result["value_if_retained"] == pytest.approx(result["value_at_risk"], rel=1e-3)

    below = str((gap[gap <= 0]).index[0])
    result, text = answer(registry, "get_customer", {"customer_id": below, "recent_orders": 0})
    assert result["value_at_risk_explained"] is None and "is above predicted value" not in text


def test_a_list_with_value_at_risk_above_predicted_value_says_why(registry, customers):
    result, text = answer(registry, "find_customers", {"at_risk": True, "limit": 20})
    above = [c for c in result["customers"] if c["value_at_risk"] > c["predicted_value"]]
    assert (templates.VALUE_AT_RISK_NOTE in text) == bool(above)
    result, text = answer(registry, "find_customers", {"tiers": ["Platinum"], "max_churn_risk": 0.05, "limit": 5})
    assert all(c["value_at_risk"] <= c["predicted_value"] for c in result["customers"])
    assert templates.VALUE_AT_RISK_NOTE not in text


def test_a_campaign_answer_states_roi_as_a_percentage_of_its_cost(registry):
    from predictor.figures import roi

    result, text = answer(registry, "recommend_campaigns", {"tiers": ["Platinum", "Gold"], "budget": 2000})
    first = result["campaigns"][0]
    assert f"ROI {roi(first['roi'])} of its cost" in text
    assert f"ROI {first['roi']:.2f}" not in text
    assert roi(11.4) == "1,140%" and roi(0.25) == "25%" and roi(None) == "n/a"


# ------------------------------------------------------------------ model quality


def test_how_good_is_the_model_reads_in_words_and_keeps_the_raw_metrics(registry):
    result, text = answer(registry, "model_report", {})
    metrics = result["metrics"]
    assert {"spearman", "normalized_gini", "churn_log_loss"} <= set(metrics)  # raw figures stay in the result
    assert result["quality"] and text.startswith(result["quality"][0])
    assert re.match(r"It ranks customers (well|fairly well|only weakly)", text)
    window = result["validation"]
    # The build's own validation window: the revenue the model's top 10% brought in (training records it).
    assert (f"the top 10% of customers it picks brought in {pct(metrics['top_decile_capture'])} of the revenue of "
            f"the {window['label_days']} days after {window['cutoff']}") in text
    # A bundle trained before the capture figure was recorded still reads in words, from the Gini.
    older = {"validation": window, "metrics": {k: v for k, v in metrics.items() if k != "top_decile_capture"}}
    words = " ".join(quality_words(older))
    assert f"{pct(metrics['normalized_gini'])} of the way from a random order to the perfect one" in words
    for raw in ("normalized_gini", "churn_log_loss", "spearman 0", "Validation metrics:"):
        assert raw not in text


def test_model_report_carries_the_lift_chart_of_its_validation_window(registry):
    result, _ = answer(registry, "model_report", {})
    window, metrics = result["validation"], result["metrics"]
    lift = window["lift_by_decile"]
    # Ten groups of the window's customers by predicted value, highest first, covering all of them.
    assert [row["decile"] for row in lift] == list(range(1, 11))
    assert sum(row["customers"] for row in lift) == window["rows"]
    assert sum(row["revenue_share"] for row in lift) == pytest.approx(1, abs=1e-3)
    # The first group is the model's top 10%: its share is the capture figure model_report states.
    assert lift[0]["revenue_share"] == pytest.approx(metrics["top_decile_capture"], abs=0.02)
    assert lift[0]["lift"] > 1 > lift[-1]["lift"]


def test_decile_lift_of_a_perfect_and_a_reversed_order(customers):
    from predictor.model.metrics import decile_lift

    spend = customers["historical_value"].to_numpy(dtype=float)
    perfect = decile_lift(spend, spend)
    assert all(a["mean_spend"] >= b["mean_spend"] for a, b in zip(perfect, perfect[1:]))
    reversed_ = decile_lift(spend, -spend)
    assert reversed_[0]["lift"] < 1 < reversed_[-1]["lift"]
    assert decile_lift(spend[:9], spend[:9]) == []  # fewer customers than groups: no chart


@pytest.fixture(scope="module")
def held_out_report():
    """ValueDesk against the baselines on the real sample, cut at 2011-06-09 (the next 180 days held out)."""
    from predictor.model.scoring import history_from_transactions

    history = history_from_transactions(loaded_sample())
    return evaluate(history, "2011-06-09", 180, fast_config(make_settings()), source="online retail sample")


def test_model_quality_words_from_a_held_out_evaluation(held_out_report):
    ours = held_out_report["models"]["xgboost"]
    words = " ".join(quality_words({"evaluation": held_out_report}))
    assert (f"the top 10% of customers it picks brought in {pct(ours['top_decile_capture'])} of the revenue of the "
            "180 days after 2011-06-09, held out from training") in words
    assert f"{pct(ours['churn_auc'])} of the time" in words
    assert (f"churn risks score {pct(ours['brier_improvement'])} better than always guessing the average churn "
            f"rate of {pct(ours['churn_rate'])}") in words
    for key in ("bgnbd_gg", "last_period"):
        assert pct(held_out_report["models"][key]["top_decile_capture"]) in words
    # Every figure in the words is one of the report's.
    assert groundedness(words, Evidence().add(held_out_report)).ungrounded == []
    # A build whose validation metrics carry the same figures says them the same way, for its own window.
    build = {"metrics": ours, "validation": {"cutoff": "2011-07-31", "label_days": 131}}
    words = " ".join(quality_words(build))
    assert (f"brought in {pct(ours['top_decile_capture'])} of the revenue of the 131 days after 2011-07-31, held out "
            "while the model was chosen") in words and f"{pct(ours['churn_auc'])} of the time" in words


def test_churn_baseline_figures_are_what_they_say(held_out_report):
    ours = held_out_report["models"]["xgboost"]
    rate = ours["churn_rate"]
    assert 0 < rate < 1
    assert ours["baseline_brier"] == pytest.approx(rate * (1 - rate))
    assert ours["brier_improvement"] == pytest.approx(1 - ours["brier"] / ours["baseline_brier"])
    assert held_out_report["models"]["last_period"]["brier_improvement"] is None


def test_held_out_quality_scores_perfect_and_no_skill_predictions(customers):
    spend = customers["revenue_12m"].to_numpy(float)
    churned = spend <= 0
    perfect = held_out_quality(spend, spend, churned, churned.astype(float))
    top = np.sort(spend)[::-1][: max(1, round(0.1 * len(spend)))].sum() / spend.sum()
    assert perfect["top_decile_capture"] == pytest.approx(top) and perfect["brier_improvement"] == pytest.approx(1)
    guess = churn_metrics(churned, np.full(len(churned), churned.mean()))
    assert guess["brier_improvement"] == pytest.approx(0, abs=1e-9)


# ------------------------------------------------------------------ cadence in words


@pytest.mark.parametrize("recency,gap,expected", [
    (372.36, 1.0, "last order 12 months ago; before that they ordered almost daily"),
    (40.0, 3.0, "last order 6 weeks ago; before that they ordered several times a week"),
    (300.0, 20.0, "last order 10 months ago, far longer than their usual gap of 3 weeks"),
    (96.0, 42.0, "last order 3 months ago, 2.3x their usual gap of 6 weeks"),
    (9.0, 150.0, "last order 9 days ago, within their usual gap of 5 months"),
    (30.0, float("nan"), "last order 4 weeks ago"),
])
def test_recency_reads_in_days_weeks_and_months(recency, gap, expected):
    assert explain._recency({"recency_days": recency, "mean_gap_days": gap}) == expected


def test_no_driver_of_a_real_customer_has_a_silly_ratio(customers):
    drivers = [d for ds in customers["drivers"] for d in ds]
    assert any(d.startswith("last order") for d in drivers)
    ratios = [float(r) for d in drivers for r in re.findall(r"(\d+(?:\.\d+)?)x their usual", d)]
    assert ratios and max(ratios) < 10
    assert not any(re.search(r"usual gap of [1-6] days?\b|\b1 days", d) for d in drivers)
    # Customers gone 10 times their usual gap or more (372x once) have that said in words, not as a multiple.
    said = customers["drivers"].map(lambda ds: next((d for d in ds if d.startswith("last order")), None))
    far = said[(customers["recency_days"] / customers["mean_gap_days"] >= 10) & said.notna()]
    assert len(far) >= 3
    assert all("far longer than their usual gap" in d or "before that they ordered" in d for d in far)
    burst = customers[(customers["mean_gap_days"] < explain.SHORT_GAP_DAYS) & (customers["recency_days"] > 60)]
    assert len(burst) >= 1
    for _, row in burst.iterrows():
        text = explain._recency({"recency_days": row["recency_days"], "mean_gap_days": row["mean_gap_days"]})
        assert "before that they ordered" in text and "x their" not in text


def test_an_empty_list_names_the_step_that_emptied_it(registry):
    result, text = answer(registry, "find_customers", {"tiers": ["Platinum"], "min_value": 1e12})
    platinum = result["narrowing"][1]["customers"]
    assert text == (f"No Platinum customers with predicted value at least {money(1e12, '£')} match. Of "
                    f"{result['narrowing'][0]['customers']:,} customers, {platinum:,} pass tier in Platinum; none "
                    "of those passes predicted value at least 1,000,000,000,000. Relax 'predicted value at least "
                    "1,000,000,000,000' to see the nearest customers.")


@pytest.mark.parametrize("text, evidence, grounded", [
    ("3 customers (under 1%)", [3, 0.002], True),     # a share of 0.2% is under 1%: a bound, not a rounding
    ("churn risk over 99%", [0.996], True),
    ("3 customers (under 1%)", [3, 0.2], False),      # 20% is not under 1%
    ("churn risk over 99%", [0.42], False),
    ("under 1% of revenue", [0.0], False),            # exactly nothing is "0%", never "under 1%"
])
def test_both_grounding_checks_read_under_and_over_as_bounds(text, evidence, grounded):
    assert (groundedness(text, Evidence().add(evidence)).ungrounded == []) is grounded
    assert (grounding.unverified(text, grounding.evidence_from([evidence])) == []) is grounded


def test_model_report_says_every_short_history_limit(registry):
    # The test build has under a year of history and no label as long as its horizon: the answer names
    # each weak part (the total, the interval, churn risk, seasonality), not just the first three.
    result, text = answer(registry, "model_report", {})
    assert len(result["warnings"]) >= 4
    for warning in result["warnings"]:
        assert f"Warning: {warning}" in text
    assert any("Treat the total as a rough guide" in w for w in result["warnings"])
