"""Tiers, lifecycle, RFM, value at risk, K-Means, transitions and categories on real Online Retail data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from _tiers_data import loaded_sample, scored_sample
from predictor.data.categories import (CATEGORIES, FEES, OTHER, apply_categories, build_category_map,
                                  categorize_name, load_category_map, save_category_map)
from predictor.customers.clusters import kmeans_segments, parse_k_range
from predictor.customers.tiers import (AT_RISK_STAGES, LIFECYCLE_STAGES, RFM_GRID, RFM_SEGMENTS, TierConfig, TierConfigError,
                                       apply_tiers, assign_lifecycle, cadence_days, churn_thresholds,
                                       population_cadence, top_at_risk)
from predictor.customers.transitions import tier_transitions


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return scored_sample()[1]


@pytest.fixture(scope="module")
def customers(scores) -> pd.DataFrame:
    return apply_tiers(scores, TierConfig())


# --------------------------------------------------------------------------- tiers

def test_quantile_tiers_take_the_configured_top_shares(customers):
    n = len(customers)
    counts = customers["tier"].value_counts()
    expected = {"Platinum": math.floor(0.01 * n + 0.5), "Gold": math.floor(0.05 * n + 0.5),
                "Silver": math.floor(0.20 * n + 0.5)}
    assert counts.get("Platinum", 0) == expected["Platinum"]
    assert counts.get("Platinum", 0) + counts.get("Gold", 0) == expected["Gold"]
    assert counts.get("Platinum", 0) + counts.get("Gold", 0) + counts.get("Silver", 0) == expected["Silver"]
    assert counts["Bronze"] == n - expected["Silver"]
    # Tiers are bands of customer_value: every customer in a tier is worth at least everyone below it.
    order = ["Platinum", "Gold", "Silver", "Bronze"]
    for hi, lo in zip(order, order[1:]):
        assert customers.loc[customers["tier"] == hi, "customer_value"].min() >= \
            customers.loc[customers["tier"] == lo, "customer_value"].max()
    assert np.allclose(customers["customer_value"], customers["revenue_12m"] + customers["predicted_value"])


def test_amount_tiers_use_minimum_values(scores):
    value = scores["revenue_12m"] + scores["predicted_value"]
    cuts = value.quantile([0.98, 0.9, 0.7]).round(2).tolist()
    config = TierConfig.parse("amount", f"Platinum={cuts[0]},Gold={cuts[1]},Silver={cuts[2]}")
    tiers = apply_tiers(scores, config)["tier"]
    expected = np.select([value >= cuts[0], value >= cuts[1], value >= cuts[2]], ["Platinum", "Gold", "Silver"],
                         "Bronze")
    expected = np.where(value <= 0, "Bronze", expected)
    assert (tiers.to_numpy() == expected).all()


@pytest.mark.parametrize("method,text,match", [
    ("quantile", "Platinum=0.2,Gold=0.05", "increasing"),
    ("quantile", "Platinum=1.5", r"\(0, 1\]"),
    ("amount", "Platinum=100,Gold=1000", "decreasing"),
    ("quantile", "Platinum:0.01", "Name=number"),
    ("quantile", "Platinum=abc", "Name=number"),
    ("quantile", "Gold=0.01,Gold=0.05", "unique"),
])
def test_bad_tier_settings_are_refused_with_the_reason(method, text, match):
    with pytest.raises(TierConfigError, match=match):
        TierConfig.parse(method, text)


def test_settings_string_parses_to_the_default_config():
    from predictor.settings import Settings

    config = TierConfig.from_settings(Settings())
    assert config.tiers == ["Platinum", "Gold", "Silver", "Bronze"]
    assert config.thresholds == [("Platinum", 0.01), ("Gold", 0.05), ("Silver", 0.2)]


# --------------------------------------------------------------------------- lifecycle

def test_lifecycle_stages_follow_the_documented_rules(customers):
    assert set(customers["lifecycle"]) <= set(LIFECYCLE_STAGES)
    assert set(customers["lifecycle"]) >= {"new", "active", "lapsed"}  # real data has all the main stages
    ratio = customers["recency_days"] / cadence_days(customers)
    stage = customers["lifecycle"]
    new = stage == "new"
    assert (customers.loc[new, "orders"] == 1).all() and (customers.loc[new, "recency_days"] <= 60).all()
    t = churn_thresholds(customers)
    churn = customers["churn_risk"]
    assert churn.mean() < t["active_below"] < t["lapsing_from"]  # quantiles of the real churn risks
    active = stage == "active"
    assert (ratio[active] <= 1.5).all() and (churn[active] < t["active_below"]).all()
    lapsed = stage == "lapsed"
    assert (ratio[lapsed] > 4).all() and (churn[lapsed] >= t["lapsed_from"]).all()
    # "at risk" sits between active and lapsing: not far overdue and the model not too pessimistic.
    at_risk = stage == "at risk"
    assert (ratio[at_risk] <= 2.5).all() and (churn[at_risk] < t["lapsing_from"]).all()
    # Lapsed customers are long gone; active ones bought recently.
    assert customers.loc[lapsed, "recency_days"].median() > 3 * customers.loc[active, "recency_days"].median()
    # A single-order customer is measured against the population cadence (median over repeat buyers).
    one = customers["orders"] == 1
    pop = population_cadence(customers)
    assert np.allclose(cadence_days(customers)[one], max(pop, 7.0))


def test_at_risk_is_an_overdue_stage_the_model_agrees_with(customers):
    """The one "at risk": lifecycle at risk or lapsing AND churn risk at or above the population's
    25th percentile; nobody active, new or lapsed, and nobody the model is nearly sure will return."""
    churn = customers["churn_risk"]
    floor = churn_thresholds(customers)["at_risk_from"]
    assert floor == pytest.approx(churn.quantile(0.25))
    flagged = customers["at_risk"]
    assert flagged.dtype == bool and 0 < flagged.sum() < len(customers)
    assert set(customers.loc[flagged, "lifecycle"]) <= set(AT_RISK_STAGES)
    assert (churn[flagged] >= floor).all()
    in_stage = customers["lifecycle"].isin(AT_RISK_STAGES)
    # The churn floor removes real customers the stage alone would call at risk, and only those.
    dropped = in_stage & ~flagged
    assert dropped.any() and (churn[dropped] < floor).all()
    # A customer listed as at risk is never one the model gives under 1% churn.
    assert (churn[flagged] >= 0.01).all()


def test_top_at_risk_lists_only_at_risk_customers(customers):
    ranked = top_at_risk(customers, n=50)
    assert len(ranked) == min(50, int(customers["at_risk"].sum()))
    assert ranked["at_risk"].all() and ranked["at_risk_priority"].is_monotonic_decreasing


def test_lifecycle_of_one_real_customer_moves_with_recency(scores):
    row = scores[(scores["orders"] >= 3) & (scores["mean_gap_days"] > 10)].iloc[[0]].copy()
    cadence = float(row["mean_gap_days"].iloc[0])
    frame = pd.concat([row] * 4, ignore_index=True)
    frame["recency_days"] = [0.5 * cadence, 2.0 * cadence, 3.0 * cadence, 6.0 * cadence]
    frame["churn_risk"] = [0.1, 0.4, 0.6, 0.9]
    frame["customer_id"] = ["a", "b", "c", "d"]
    # Churn thresholds are this frame's quantiles: active < 0.675, lapsed >= 0.5, lapsing >= 0.81.
    stages = assign_lifecycle(frame).tolist()
    assert stages == ["active", "at risk", "lapsing", "lapsed"]


# --------------------------------------------------------------------------- RFM

def test_rfm_scores_are_quintiles_and_segments_follow_the_grid(customers):
    assert set(customers["rfm_segment"]) <= set(RFM_SEGMENTS)
    assert len(set(customers["rfm_segment"])) >= 9  # real data populates nearly every classic segment
    for col in ("r_score", "f_score", "m_score"):
        assert customers[col].between(1, 5).all()
    # Recency is continuous: each quintile holds about a fifth of the customers.
    shares = customers["r_score"].value_counts(normalize=True)
    assert shares.between(0.15, 0.25).all(), shares
    # More recent means a higher (or equal) r score; more value means a higher (or equal) m score.
    by_recency = customers.sort_values("recency_days")
    assert (np.diff(by_recency["r_score"].to_numpy()) <= 0).all()
    by_value = customers.sort_values("historical_value")
    assert (np.diff(by_value["m_score"].to_numpy()) >= 0).all()
    fm = np.floor((customers["f_score"] + customers["m_score"]) / 2 + 0.5).astype(int)
    expected = [RFM_GRID[r][f - 1] for r, f in zip(customers["r_score"], fm)]
    assert customers["rfm_segment"].tolist() == expected
    champions = customers[customers["rfm_segment"] == "Champions"]
    lost = customers[customers["rfm_segment"] == "Lost"]
    assert champions["historical_value"].median() > 5 * lost["historical_value"].median()
    assert champions["recency_days"].median() < lost["recency_days"].median()


# --------------------------------------------------------------------------- value at risk

def test_value_at_risk_is_churn_times_value_if_retained(customers):
    assert np.allclose(customers["value_at_risk"], customers["churn_risk"] * customers["value_if_retained"])
    assert (customers["value_if_retained"] >= customers["predicted_value"].clip(lower=0) - 1e-9).all()
    # The conditional value is capped by the customer's own spend rate (or one order): no blow-ups
    # when churn risk is close to 1.
    rate = customers["historical_value"].clip(lower=0) / customers["tenure_days"].clip(lower=30) * customers["horizon_days"]
    cap = np.maximum(np.maximum(rate, customers["aov"].clip(lower=0)), customers["predicted_value"].clip(lower=0))
    assert (customers["value_if_retained"] <= cap + 1e-6).all()


def test_top_at_risk_ranks_valuable_churners_above_cheap_ones(customers):
    repeat = customers[customers["orders"] >= 5]
    big = repeat.sort_values("historical_value").iloc[-1].copy()
    small = customers.sort_values("historical_value").iloc[len(customers) // 4].copy()
    # A valuable customer about to churn has a low predicted value: that is exactly why they matter.
    big["customer_id"], big["churn_risk"], big["predicted_value"] = "big-churner", 0.85, 5.0
    small["customer_id"], small["churn_risk"], small["predicted_value"] = "small-churner", 0.95, 5.0
    for row in (big, small):
        row["value_if_retained"] = row["aov"]
        row["value_at_risk"] = row["churn_risk"] * row["value_if_retained"]
        row["lifecycle"], row["at_risk"] = "lapsing", True
    frame = pd.concat([customers, pd.DataFrame([big, small])], ignore_index=True)
    ranked = top_at_risk(frame, n=len(frame), min_churn_risk=0.5)
    ids = ranked["customer_id"].tolist()
    assert ids.index("big-churner") < ids.index("small-churner")
    assert ids.index("big-churner") < 5
    # Ranking by predicted value alone would have buried them.
    assert (frame["predicted_value"] > 5.0).mean() > 0.5
    assert (ranked["churn_risk"] >= 0.5).all() and ranked["at_risk"].all()
    assert ranked["at_risk_priority"].is_monotonic_decreasing


# --------------------------------------------------------------------------- K-Means

def test_kmeans_chooses_k_in_range_by_silhouette(customers):
    result = kmeans_segments(customers, "3-6", seed=7)
    assert 3 <= result.k <= 6
    assert set(result.silhouette_by_k) == {3, 4, 5, 6}
    assert result.silhouette == max(result.silhouette_by_k.values())
    assert 0 < result.silhouette <= 1
    assert len(result.labels) == len(customers) and result.labels.nunique() == result.k
    assert sum(c["size"] for c in result.clusters) == len(customers)
    # Clusters are numbered by median historical value, most valuable first.
    medians = [c["median_historical_value"] for c in result.clusters]
    assert medians == sorted(medians, reverse=True)
    again = kmeans_segments(customers, "3-6", seed=7)
    assert (again.labels == result.labels).all()


def test_bad_k_range_is_refused():
    with pytest.raises(TierConfigError, match="min-max"):
        parse_k_range("three")
    with pytest.raises(TierConfigError, match="2 <= min"):
        parse_k_range("1-4")


# --------------------------------------------------------------------------- transitions

def test_tier_transitions_after_one_customers_new_orders():
    """Give one Bronze customer large new orders, rescore them with the saved model, see them move up."""
    from predictor.model.scoring import CustomerScorer

    tx, scores, settings = scored_sample()
    before = apply_tiers(scores)
    bronze = before[(before["tier"] == "Bronze") & (before["orders"] >= 2)].sort_values("customer_value")
    who = str(bronze["customer_id"].iloc[len(bronze) // 2])
    silver_floor = before.loc[before["tier"] == "Silver", "customer_value"].min()
    mine = tx[(tx["customer_id"] == who) & ~tx["is_outlier"]].sort_values("timestamp")
    as_of = tx["timestamp"].max().normalize()
    extra = []
    for i, days_back in enumerate((40, 20, 5)):
        lines = mine.tail(1).copy()
        lines["order_id"] = f"T{who}{i}"
        lines["timestamp"] = as_of - pd.Timedelta(days=days_back)
        lines["amount"] = 2 * silver_floor  # three orders that lift 12-month revenue far past Silver's floor
        lines["is_cancellation"] = False
        extra.append(lines)
    orders = pd.concat([mine, *extra], ignore_index=True)
    row = CustomerScorer.load(settings).score_orders(orders, customer_id=who, as_of=scores["as_of"].max())
    after_scores = scores.copy()
    i = after_scores.index[after_scores["customer_id"] == who][0]
    for col in after_scores.columns:
        if col in row and col != "customer_id":
            after_scores.at[i, col] = row[col]
    after = apply_tiers(after_scores)

    moves = tier_transitions(before, after)
    move = moves[moves["customer_id"] == who]
    assert len(move) == 1
    move = move.iloc[0]
    assert move["old_tier"] == "Bronze" and move["new_tier"] in {"Platinum", "Gold", "Silver"}
    assert move["direction"] == "up" and move["new_value"] > move["old_value"]
    # The reason leads with whichever part of customer_value (revenue or prediction) grew most.
    b, a = before.set_index("customer_id").loc[who], after.set_index("customer_id").loc[who]
    d_rev, d_pred = a["revenue_12m"] - b["revenue_12m"], a["predicted_value"] - b["predicted_value"]
    assert d_rev > 0 and d_pred > 0
    lead = "12-month revenue +" if d_rev >= d_pred else "predicted value +"
    assert move["reason"].startswith(lead), move["reason"]
    assert f"12-month revenue +{d_rev:,.0f}" in move["reason"] and "+3 orders" in move["reason"]
    # Nobody else's scores changed: at most one customer per tier boundary is pushed down a tier,
    # and the reason says the thresholds moved.
    others = moves[moves["customer_id"] != who]
    assert len(others) <= 3 and (others["direction"] == "down").all()
    assert others["reason"].str.contains("thresholds moved").all()


def test_transitions_name_new_removed_and_threshold_moves(customers):
    old = customers[["customer_id", "tier", "customer_value", "revenue_12m", "predicted_value", "orders",
                     "recency_days", "churn_risk"]].copy()
    new = old.copy()
    gone, added = old["customer_id"].iloc[0], "brand-new"
    new = new[new["customer_id"] != gone]
    extra = new.iloc[[0]].copy()
    extra["customer_id"] = added
    new = pd.concat([new, extra], ignore_index=True)
    # One customer's value unchanged but tier relabelled: the reason must say thresholds moved.
    silver = new.index[new["tier"] == "Silver"][0]
    new.loc[silver, "tier"] = "Gold"
    moves = tier_transitions(old, new).set_index("customer_id")
    assert moves.loc[gone, "direction"] == "removed" and pd.isna(moves.loc[gone, "new_tier"])
    assert moves.loc[added, "direction"] == "new" and pd.isna(moves.loc[added, "old_tier"])
    cid = new.loc[silver, "customer_id"]
    assert moves.loc[cid, "direction"] == "up"
    assert "thresholds moved" in moves.loc[cid, "reason"]
    assert len(moves) == 3


# --------------------------------------------------------------------------- categories

def test_categories_cover_most_revenue_with_a_small_readable_set():
    tx = loaded_sample()
    result = build_category_map(tx)
    report = result.report
    assert 10 <= report.categories <= 16
    assert set(result.mapping["category"]) <= set(CATEGORIES)
    assert report.revenue_coverage >= 0.9, report.revenue_by_category
    assert report.products == tx["product_id"].nunique()
    # The biggest sellers land where a marketer expects.
    assert categorize_name("JUMBO BAG RED RETROSPOT") == "Bags & purses"
    assert categorize_name("WHITE HANGING HEART T-LIGHT HOLDER") == "Lighting & candles"
    assert categorize_name("PAPER CHAIN KIT 50'S CHRISTMAS") == "Christmas & seasonal"
    assert categorize_name("REGENCY CAKESTAND 3 TIER") == "Kitchen & dining"
    assert categorize_name("POSTAGE", "POST") == FEES
    assert categorize_name("FRENCH CARRIAGE LANTERN") == "Lighting & candles"  # not a carriage fee
    assert categorize_name(None) == OTHER
    categorised = apply_categories(tx, result.mapping)
    assert categorised["category"].notna().all()


def test_source_categories_win_and_the_mapping_round_trips(tmp_path):
    tx = loaded_sample().copy()
    first = tx["product_id"].iloc[0]
    tx["category"] = pd.Series(pd.NA, index=tx.index, dtype="string")
    tx.loc[tx["product_id"] == first, "category"] = "Supplier category"
    result = build_category_map(tx)
    row = result.mapping.set_index("product_id").loc[first]
    assert row["category"] == "Supplier category" and row["source"] == "source"
    assert result.report.from_source == 1
    out = apply_categories(tx, result.mapping)
    assert (out.loc[out["product_id"] == first, "category"] == "Supplier category").all()
    save_category_map(result.mapping, tmp_path)
    pd.testing.assert_frame_equal(load_category_map(tmp_path), result.mapping)
