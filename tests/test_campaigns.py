"""Campaign catalogue validation, expected value, budgeted planning, holdouts and audience export.

The customers table comes from the real Online Retail log through the real cleaning
(predictor.data.load.load_transactions) and the real tiering (predictor.customers.tiers.apply_tiers). For most tests
the scores it tiers are a stand-in (`_stand_in_scores`: last-180-day spend as the prediction, a
recency-vs-cadence churn risk), because training the value model on every customer takes minutes and
planning needs the scores' columns, not their accuracy. `test_plan_on_real_model_scores` runs the real
model (fast config) on a sample of customers to check the planner against the real scores table.
"""

from __future__ import annotations

import csv
import itertools
import math
import types

import numpy as np
import pandas as pd
import pytest

from predictor.campaigns.catalogue import CampaignError, load_catalogue
from predictor.campaigns.eligibility import eligible_mask
from predictor.campaigns.export import (
    AUDIENCE_COLUMNS, audience_row_count, audience_rows, iter_audience_csv, write_audience_csv,
)
from predictor.campaigns.next_action import best_campaign_for
from predictor.campaigns.planning import plan_campaigns
from predictor.campaigns.value import expected_value, explain_customer_ev, tier_floors
from predictor.data.load import load_transactions
from predictor.settings import SHARED_DATA, Settings
from predictor.customers.tiers import apply_tiers

DATA = SHARED_DATA / "online_retail" / "online_retail.csv.gz"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="real Online Retail data not available")
# Planning takes its settings as an argument (no process-wide settings inside predictor.campaigns).
SETTINGS = Settings()


def _stand_in_scores(tx: pd.DataFrame, horizon_days: int = 180) -> pd.DataFrame:
    lines = tx[~tx["is_outlier"]]
    as_of = lines["timestamp"].max()
    g = lines.groupby("customer_id", sort=True)
    out = pd.DataFrame({"historical_value": g["amount"].sum(), "orders": g["order_id"].nunique(),
                        "first_order": g["timestamp"].min(), "last_order": g["timestamp"].max(),
                        "country": g["country"].first()})

    def spend(days: int) -> pd.Series:
        recent = lines[lines["timestamp"] > as_of - pd.Timedelta(days=days)]
        return recent.groupby("customer_id")["amount"].sum().reindex(out.index).fillna(0.0)

    out["revenue_12m"] = spend(365)
    out["predicted_value"] = spend(horizon_days).clip(lower=0)
    out["recency_days"] = (as_of - out["last_order"]).dt.total_seconds() / 86400
    out["tenure_days"] = (as_of - out["first_order"]).dt.total_seconds() / 86400
    out["mean_gap_days"] = (out["tenure_days"] / (out["orders"] - 1)).where(out["orders"] > 1)
    gap = out["mean_gap_days"].fillna(out["mean_gap_days"].median())
    # P(no order in the horizon) for a Poisson buyer whose rate fades the longer they stay away.
    out["churn_risk"] = np.exp(-horizon_days / gap * np.exp(-out["recency_days"] / (3 * gap))).clip(0.01, 0.99)
    out["aov"] = (out["historical_value"] / out["orders"]).clip(lower=0)
    out["horizon_days"] = horizon_days
    out["as_of"] = as_of
    return out.reset_index()


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return load_transactions(DATA, "online_retail", settings=SETTINGS).transactions


@pytest.fixture(scope="module")
def customers(transactions) -> pd.DataFrame:
    table = apply_tiers(_stand_in_scores(transactions))
    table["suggested_products"] = [[f"P{i % 7}", f"P{i % 11}"] for i in range(len(table))]
    return table


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


# ------------------------------------------------------------------------------------------ expected value
def test_expected_value_worked_example(catalogue):
    win_back = catalogue.get("win_back")  # 15% discount, uplift 6% (3% for lapsed customers), email at 0.10
    customer = {"churn_risk": 0.5, "value_at_risk": 200.0, "aov": 100.0, "horizon_days": 180, "lifecycle": "at risk"}
    ev = explain_customer_ev(win_back, customer, offer_window_days=30, default_horizon=180)
    p_anyway = 1 - 0.5 ** (30 / 180)                   # 0.10910
    p_redeem = p_anyway + 0.06                         # 0.16910
    offer_cost = p_redeem * 0.15 * 100                 # 2.5365
    assert ev.uplift == 0.06
    assert ev.p_order_anyway == pytest.approx(0.109101, abs=1e-6)
    assert ev.offer_cost == pytest.approx(offer_cost)
    assert ev.expected_incremental_revenue == pytest.approx(0.06 * 200)
    assert ev.cost == pytest.approx(offer_cost + 0.10)
    assert ev.expected_net_value == pytest.approx(12.0 - 2.5365 - 0.10, abs=1e-3)
    # A lapsed customer is assumed to respond less (the playbook's uplift_by_lifecycle).
    lapsed = explain_customer_ev(win_back, {**customer, "lifecycle": "lapsed"}, offer_window_days=30,
                                 default_horizon=180)
    assert lapsed.uplift == 0.03
    assert lapsed.expected_net_value == pytest.approx(0.03 * 200 - (p_anyway + 0.03) * 15.0 - 0.10, abs=1e-3)

    grow = catalogue.get("welcome_second_order")  # 10% discount, uplift 6%, one extra order
    ev = explain_customer_ev(grow, customer, offer_window_days=30, default_horizon=180)
    assert ev.value_gained == pytest.approx(100.0)  # an extra order at the average order value, not value at risk
    assert ev.expected_incremental_revenue == pytest.approx(6.0)
    assert ev.expected_net_value == pytest.approx(6.0 - (p_anyway + 0.06) * 10.0 - 0.10)


def test_plan_json_shape_and_arithmetic(customers, catalogue):
    plan = plan_campaigns(customers, settings=SETTINGS, catalogue=catalogue, holdout_share=0.1, seed=7)
    data = plan.model_dump(mode="json")
    for key in ("campaigns", "total_cost", "budget", "expected_net_value"):
        assert key in data
    for camp in data["campaigns"]:
        for key in ("name", "audience_size", "customer_ids", "offer", "cost", "expected_incremental_revenue",
                    "expected_net_value", "roi", "assumptions", "control_group_ids", "measurement"):
            assert key in camp
        assert camp["audience_size"] == len(camp["customer_ids"])
        assert camp["expected_net_value"] == pytest.approx(camp["expected_incremental_revenue"] - camp["cost"], abs=0.02)
        assert camp["roi"] == pytest.approx(camp["expected_net_value"] / camp["cost"], rel=1e-2)
        assert min(camp["expected_values"]) > 0
        assert "control" in camp["measurement"]
    nets = [c["expected_net_value"] for c in data["campaigns"]]
    assert nets == sorted(nets, reverse=True)
    assert data["expected_net_value"] == pytest.approx(sum(nets), abs=0.05)
    assert {c["name"] for c in data["campaigns"]} >= {"cross_sell", "welcome_second_order"}


def test_without_budget_each_customer_gets_their_best_campaign(customers, catalogue):
    plan = plan_campaigns(customers, settings=SETTINGS, catalogue=catalogue, holdout_share=0.0)
    chosen = {cid: c.name for c in plan.campaigns for cid in c.customer_ids}
    audience = customers.set_index(customers["customer_id"].astype(str))
    thresholds = audience.groupby("tier")["customer_value"].min().to_dict()
    best = pd.Series(-np.inf, index=audience.index)
    best_name = pd.Series("", index=audience.index)
    for p in catalogue.playbooks:
        ev = expected_value(p, churn_risk=audience["churn_risk"], value_at_risk=audience["value_at_risk"],
                            aov=audience["aov"], horizon_days=audience["horizon_days"], offer_window_days=30,
                            lifecycle=audience["lifecycle"])
        net = np.where(eligible_mask(p, audience, thresholds), ev["expected_net_value"], -np.inf)
        better = net > best.to_numpy()
        best[better], best_name[better] = net[better], p.name
    expected = best_name[best > 0].to_dict()
    assert chosen == expected


# ------------------------------------------------------------------------------------------ budget
@pytest.mark.parametrize("budget", [15.0, 300.0, 2500.0])
def test_budget_never_exceeded_and_no_customer_twice(customers, catalogue, budget):
    plan = plan_campaigns(customers, settings=SETTINGS, budget=budget, catalogue=catalogue, holdout_share=0.0)
    assert 0 < plan.total_cost <= budget
    ids = [cid for c in plan.campaigns for cid in c.customer_ids]
    assert len(ids) == len(set(ids))


def test_greedy_beats_random_allocation(customers, catalogue):
    budget = 300.0
    plan = plan_campaigns(customers, settings=SETTINGS, budget=budget, catalogue=catalogue, holdout_share=0.0)
    # Random allocation over the same positive-value (customer, playbook) pairs, same budget, one each.
    thresholds = customers.groupby("tier")["customer_value"].min().to_dict()
    pairs = []
    for p in catalogue.playbooks:
        ev = expected_value(p, churn_risk=customers["churn_risk"], value_at_risk=customers["value_at_risk"],
                            aov=customers["aov"], horizon_days=customers["horizon_days"], offer_window_days=30,
                            lifecycle=customers["lifecycle"])
        ok = eligible_mask(p, customers, thresholds) & (ev["expected_net_value"] > 0)
        pairs += list(zip(np.flatnonzero(ok), ev["expected_net_value"][ok], ev["cost"][ok]))
    rng = np.random.default_rng(0)
    random_nets = []
    for _ in range(20):
        left, taken, total = budget, set(), 0.0
        for k in rng.permutation(len(pairs)):
            row, net, cost = pairs[k]
            if row not in taken and cost <= left:
                taken.add(row)
                left -= cost
                total += net
        random_nets.append(total)
    assert plan.expected_net_value > max(random_nets)


@pytest.mark.parametrize("budget,match", [(0, "positive"), (-50, "positive"), (float("nan"), "positive"),
                                          (5e9, "implausibly large"), ("lots", "not a number"),
                                          (0.01, "cannot pay for a single")])
def test_bad_budgets(customers, catalogue, budget, match):
    with pytest.raises(CampaignError, match=match) as info:
        plan_campaigns(customers, settings=SETTINGS, budget=budget, catalogue=catalogue)
    assert info.value.field == "budget" and info.value.hint


# ------------------------------------------------------------------------------------------ holdout
def test_holdout_is_seeded_disjoint_and_sized(customers, catalogue):
    a = plan_campaigns(customers, settings=SETTINGS, catalogue=catalogue, holdout_share=0.2, seed=3)
    b = plan_campaigns(customers, settings=SETTINGS, catalogue=catalogue, holdout_share=0.2, seed=3)
    c = plan_campaigns(customers, settings=SETTINGS, catalogue=catalogue, holdout_share=0.2, seed=4)
    assert [x.control_group_ids for x in a.campaigns] == [x.control_group_ids for x in b.campaigns]
    assert [x.control_group_ids for x in a.campaigns] != [x.control_group_ids for x in c.campaigns]
    treated = [cid for x in a.campaigns for cid in x.customer_ids]
    control = [cid for x in a.campaigns for cid in x.control_group_ids]
    assert not set(treated) & set(control)
    assert len(set(treated + control)) == len(treated) + len(control)
    big = max(a.campaigns, key=lambda x: x.audience_size)
    n = big.audience_size + len(big.control_group_ids)
    assert len(big.control_group_ids) == round(0.2 * n)
    # Same customers chosen with or without a holdout: the control is carved out of the chosen audience.
    none = plan_campaigns(customers, settings=SETTINGS, catalogue=catalogue, holdout_share=0.0)
    assert {x.name: set(x.customer_ids) for x in none.campaigns} == \
           {x.name: set(x.customer_ids) | set(x.control_group_ids) for x in a.campaigns}
    assert "cannot be measured" in none.campaigns[0].measurement


# ------------------------------------------------------------------------------------------ audience filters
def test_filter_restricts_the_audience(customers, catalogue):
    plan = plan_campaigns(customers, settings=SETTINGS, filter={"tiers": ["gold", "Platinum"]}, catalogue=catalogue)
    tiers = customers.set_index(customers["customer_id"].astype(str))["tier"]
    ids = [cid for c in plan.campaigns for cid in c.customer_ids + c.control_group_ids]
    assert ids and set(tiers[ids]) <= {"Gold", "Platinum"}
    assert plan.audience_size == int(customers["tier"].isin(["Gold", "Platinum"]).sum())


@pytest.mark.parametrize("flt,match", [({"segments": ["Champs"]}, "Did you mean 'Champions'"),
                                       ({"tiers": ["Platnum"]}, "Did you mean 'Platinum'"),
                                       ({"lifecycle": ["churned"]}, "Valid lifecycle stages: new, active"),
                                       ({"colour": "red"}, "colour")])
def test_unknown_filter_names(customers, catalogue, flt, match):
    with pytest.raises(CampaignError, match=match):
        plan_campaigns(customers, settings=SETTINGS, filter=flt, catalogue=catalogue)


def test_empty_audience_says_which_filter_emptied_it(customers, catalogue):
    platinum = customers[customers["tier"] == "Platinum"]
    country = sorted(set(customers["country"].dropna()) - set(platinum["country"].dropna()))[0]
    in_country = int((customers["country"] == country).sum())
    with pytest.raises(CampaignError) as info:
        plan_campaigns(customers, settings=SETTINGS, filter={"countries": [country], "tiers": ["Platinum"]},
                       catalogue=catalogue)
    msg = str(info.value)
    assert f"No customer is a Platinum customer in {country}: of {len(customers):,} customers, " in msg
    assert f"{len(platinum):,} are Platinum and none of them are in {country}" in msg
    assert info.value.step == "audience" and info.value.field == "countries" and info.value.hint
    assert in_country > 0  # the country exists; only the combination is empty


def test_goal_aliases_and_unknown_goals(customers, catalogue):
    plan = plan_campaigns(customers, settings=SETTINGS, goal="cross-sell", catalogue=catalogue)
    assert {c.goal for c in plan.campaigns} == {"grow"}
    only = plan_campaigns(customers, settings=SETTINGS, goal="loyalty_upgrade", catalogue=catalogue)
    assert [c.name for c in only.campaigns] == ["loyalty_upgrade"] and only.goal is None
    assert plan_campaigns(customers, settings=SETTINGS, goal="Win-Back campaign", catalogue=catalogue).goal == "win_back"
    with pytest.raises(CampaignError, match="Unknown campaign goal 'retian'") as info:
        plan_campaigns(customers, settings=SETTINGS, goal="retian", catalogue=catalogue)
    assert "retain" in info.value.hint


# ------------------------------------------------------------------------------------------ export
def test_audience_csv_rows(customers, catalogue, tmp_path):
    plan = plan_campaigns(customers, settings=SETTINGS, budget=500.0, catalogue=catalogue, holdout_share=0.1)
    rows = audience_rows(plan)
    assert isinstance(rows, types.GeneratorType)
    path = tmp_path / "out" / "audience.csv"
    n = write_audience_csv(rows, path)
    assert n == plan.targeted + plan.control_size == audience_row_count(plan)
    with path.open(newline="") as fh:
        read = list(csv.DictReader(fh))
    assert tuple(read[0]) == AUDIENCE_COLUMNS and len(read) == n
    lookup = customers.set_index(customers["customer_id"].astype(str))
    treated = [r for r in read if r["group"] == "treatment"]
    for row in treated[:50]:
        assert row["tier"] == lookup.loc[row["customer_id"], "tier"]
        assert row["products"] == "; ".join(lookup.loc[row["customer_id"], "suggested_products"])
        assert row["predicted_value"] == f"{lookup.loc[row['customer_id'], 'predicted_value']:.2f}"
    assert len(treated) == plan.targeted
    assert sum(float(r["expected_net_value"]) for r in treated) == pytest.approx(plan.expected_net_value,
                                                                                abs=0.01 * n + 0.1)
    # The control groups are in the file, flagged, with nothing to send and no campaign value.
    control = {cid for c in plan.campaigns for cid in c.control_group_ids}
    held = [r for r in read if r["group"] == "control"]
    assert {r["customer_id"] for r in held} == control and len(held) == plan.control_size > 0
    assert not control & {r["customer_id"] for r in treated}
    assert all(r["offer"] == r["products"] == r["expected_net_value"] == "" and r["campaign"] for r in held)
    assert [p.name for p in tmp_path.joinpath("out").iterdir()] == ["audience.csv"]
    text = "".join(iter_audience_csv(audience_rows(plan), chunk_rows=7))
    assert text == path.read_text()
    assert sum(1 for _ in audience_rows(plan, include_control=False)) == plan.targeted


def test_export_one_campaign_with_controls_and_plain_customers(customers, catalogue):
    plan = plan_campaigns(customers, settings=SETTINGS, catalogue=catalogue, holdout_share=0.1)
    first_campaign = plan.campaigns[0]
    rows = list(audience_rows(plan, customers, campaign=first_campaign.name))
    assert {r["campaign"] for r in rows} == {first_campaign.name}
    assert [r["customer_id"] for r in rows if r["group"] == "treatment"] == first_campaign.customer_ids
    assert [r["customer_id"] for r in rows if r["group"] == "control"] == first_campaign.control_group_ids
    assert len(rows) == audience_row_count(plan, campaign=first_campaign.name)
    with pytest.raises(CampaignError, match="no campaign 'nope'"):
        audience_rows(plan, campaign="nope")
    plain = audience_rows(customers)
    first = list(itertools.islice(plain, 3))
    assert [r["customer_id"] for r in first] == customers["customer_id"].astype(str).head(3).tolist()
    assert first[0]["predicted_value"] == f"{customers['predicted_value'].iloc[0]:.2f}"
    assert {(r["group"], r["campaign"], r["offer"], r["expected_net_value"]) for r in first} == {
        ("treatment", "", "", "")}
    assert audience_row_count(customers) == len(customers)


def test_best_campaign_for_one_customer(customers, catalogue):
    plan = plan_campaigns(customers, settings=SETTINGS, catalogue=catalogue, holdout_share=0.0)
    thresholds = customers.groupby("tier")["customer_value"].min().to_dict()
    camp = plan.campaigns[0]
    row = customers[customers["customer_id"].astype(str) == camp.customer_ids[0]].iloc[0].to_dict()
    choice = best_campaign_for(row, catalogue, SETTINGS, thresholds=thresholds)
    assert choice["campaign"] == camp.name
    assert choice["expected_net_value"] == pytest.approx(camp.expected_values[0], abs=0.01)
    assert math.isfinite(choice["expected_net_value"]) and choice["reason"]


def test_plan_takes_its_settings_as_an_argument(customers, catalogue):
    """Currency, holdout share and seed come from the settings passed in, never the process's own."""
    mine = Settings(currency_symbol="$", holdout_share=0.0, random_seed=5)
    plan = plan_campaigns(customers, settings=mine, catalogue=catalogue, budget=300.0)
    assert (plan.currency, plan.holdout_share, plan.seed, plan.control_size) == ("$", 0.0, 5, 0)
    assert all(c.offer_text.startswith("gift ($") for c in plan.campaigns if c.offer.type == "gift")
    row = customers[customers["customer_id"].astype(str) == plan.campaigns[0].customer_ids[0]].iloc[0]
    assert best_campaign_for(row.to_dict(), catalogue, mine, thresholds=tier_floors(customers)) is not None


def test_plan_and_next_best_action_value_a_customer_with_unknown_order_value_alike(customers, catalogue):
    """One missing-value rule, per customer: the plan used to fill an unknown order value with the
    audience's median and the next best action with 0, so the two could disagree."""
    frame = customers.copy()
    first = plan_campaigns(frame, settings=SETTINGS, catalogue=catalogue, holdout_share=0.0)
    targeted = [cid for c in first.campaigns for cid in c.customer_ids[:20]]
    frame.loc[frame["customer_id"].astype(str).isin(targeted), "aov"] = np.nan
    plan = plan_campaigns(frame, settings=SETTINGS, catalogue=catalogue, holdout_share=0.0)
    floors = tier_floors(frame)
    rows = frame.set_index(frame["customer_id"].astype(str))
    compared = 0
    for camp in plan.campaigns:
        for cid, value in zip(camp.customer_ids, camp.expected_values):
            if cid not in targeted:
                continue
            choice = best_campaign_for(rows.loc[cid].to_dict(), catalogue, SETTINGS, thresholds=floors)
            assert choice is not None and choice["campaign"] == camp.name
            assert choice["expected_net_value"] == pytest.approx(value, abs=0.01)
            compared += 1
    assert compared >= 5


def test_plan_on_real_model_scores(transactions):
    """End to end on the real scoring model (fast config, a seeded sample of customers to keep it short)."""
    from predictor.model.estimators import CLVModel, TrainingConfig
    from predictor.model.scoring import history_from_transactions, score_frame

    tx = transactions
    sample = pd.Series(tx["customer_id"].unique()).sample(600, random_state=0)
    history = history_from_transactions(tx[tx["customer_id"].isin(sample)])
    model = CLVModel(TrainingConfig.fast()).fit(history)
    scores = score_frame(model, history, history.end, with_drivers=False)
    table = apply_tiers(scores if "customer_id" in scores else scores.reset_index())
    plan = plan_campaigns(table, settings=SETTINGS, budget=200.0, holdout_share=0.1, seed=1)
    assert 0 < plan.total_cost <= 200.0
    treated = [cid for c in plan.campaigns for cid in c.customer_ids]
    control = [cid for c in plan.campaigns for cid in c.control_group_ids]
    assert len(set(treated + control)) == len(treated) + len(control)
    assert set(treated) <= set(table["customer_id"].astype(str))
    rows = list(audience_rows(plan))
    assert len(rows) == plan.targeted + plan.control_size
    assert sum(r["group"] == "treatment" for r in rows) == plan.targeted
    assert all(r["tier"] in {"Platinum", "Gold", "Silver", "Bronze"} for r in rows)



@pytest.mark.parametrize("budget", [None, 3000.0])
def test_planning_frame_and_id_listing_limit_keep_the_plan(customers, catalogue, budget):
    """The narrow planning frame gives the same plan as the full table; a listing limit keeps every
    figure and lists exactly the first ids of the full plan, and such a plan refuses to be exported."""
    from predictor.campaigns.planning import planning_frame

    full = plan_campaigns(customers, settings=SETTINGS, budget=budget, catalogue=catalogue, holdout_share=0.1,
                          seed=3)
    narrow = plan_campaigns(planning_frame(customers.sample(frac=1.0, random_state=1)), settings=SETTINGS,
                            budget=budget, catalogue=catalogue, holdout_share=0.1, seed=3)
    limited = plan_campaigns(planning_frame(customers), settings=SETTINGS, budget=budget, catalogue=catalogue,
                             holdout_share=0.1, seed=3, list_ids=5)
    assert narrow.model_dump() == full.model_dump()  # row order does not change who is picked
    for want, got in zip(full.campaigns, limited.campaigns):
        assert (got.name, got.audience_size, got.cost, got.control_group_size) == (
            want.name, want.audience_size, want.cost, len(want.control_group_ids))
        assert got.customer_ids == want.customer_ids[:5] and got.expected_values == want.expected_values[:5]
        assert got.control_group_ids == want.control_group_ids[:5]
        assert got.ids_complete == (want.audience_size <= 5 and len(want.control_group_ids) <= 5)
    assert limited.expected_net_value == full.expected_net_value and limited.control_size == full.control_size
    assert any(not c.ids_complete for c in limited.campaigns)
    with pytest.raises(CampaignError, match="cannot be exported"):
        audience_rows(limited)
