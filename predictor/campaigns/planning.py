"""Campaign planning: who gets which campaign to maximise expected net value within an optional budget,
with a control group per campaign and the assumptions behind every number travelling with the plan.

The steps, in order: the playbooks for the goal (`catalogue`), the audience and who each playbook may
reach (`eligibility`), each pair's expected value (`value`), who gets which campaign (`allocation`),
the control groups (`holdout`), then one result per campaign.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, PrivateAttr

from predictor.campaigns.allocation import allocate_budget, best_per_customer, check_budget
from predictor.campaigns.catalogue import (GOAL_ALIASES, GOALS, RETENTION_GOALS, CampaignError, Catalogue, Offer,
                                           Playbook, closest_hint, load_catalogue)
from predictor.campaigns.eligibility import audience_table, eligible_mask, select_audience
from predictor.campaigns.holdout import measurement_text, split_control
from predictor.campaigns.value import REQUIRED_COLUMNS, expected_value, order_anyway, tier_floors, value_inputs
from predictor.customers.audience import CustomerFilter
from predictor.settings import Settings


class CampaignResult(BaseModel):
    name: str
    description: str
    goal: str
    channel: str
    offer: Offer
    offer_text: str
    audience_size: int = Field(description="Customers to contact (the control group is not counted).")
    eligible: int = Field(description="Customers in the audience this playbook could target with positive net value.")
    customer_ids: list[str] = Field(description="Treated customers, highest expected net value first (only the "
                                                "first `list_ids` when the plan was made with a listing limit).")
    expected_values: list[float] = Field(description="Expected net value per customer, aligned with customer_ids.")
    control_group_ids: list[str] = Field(description="The control group, by customer id (first `list_ids` when limited).")
    control_group_size: int = Field(0, description="Customers in the control group.")
    ids_complete: bool = Field(True, description="False when the id lists hold only the first `list_ids`.")
    cost: float
    expected_incremental_revenue: float
    expected_net_value: float
    roi: float | None = Field(description="expected_net_value / cost; None when the campaign costs nothing.")
    uplift: float
    uplift_source: str
    contact_cost: float
    assumptions: list[str]
    measurement: str


class CampaignPlan(BaseModel):
    campaigns: list[CampaignResult]
    total_cost: float
    budget: float | None
    expected_net_value: float
    expected_incremental_revenue: float
    audience_size: int = Field(description="Customers matching the filter before eligibility and budget.")
    targeted: int
    control_size: int
    holdout_share: float
    seed: int
    goal: str | None
    currency: str
    catalogue: str
    assumptions: list[str]
    notes: list[str] = Field(default_factory=list)

    _customers: pd.DataFrame | None = PrivateAttr(default=None)


PLANNING_COLUMNS = (*REQUIRED_COLUMNS, "country", "predicted_value", "recency_days", "horizon_days", "at_risk")
_CATEGORICAL = ("tier", "lifecycle", "rfm_segment", "country")


def planning_frame(customers: pd.DataFrame) -> pd.DataFrame:
    """Only the columns planning reads, with the names as categoricals and the ids as plain strings.

    Build it once per customers table and pass it to every `plan_campaigns` call: on 1M customers,
    selecting an audience from the full table copies every column (profile text, drivers, ...) and
    dominated planning time.
    """
    _check_columns(customers)
    frame = customers[[c for c in PLANNING_COLUMNS if c in customers]].copy()
    for column in _CATEGORICAL:
        if column in frame and not isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype("category")
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["id_rank"] = frame["customer_id"].rank(method="first").to_numpy(dtype=np.int64)
    return frame


def _check_columns(customers: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in customers]
    if missing:
        raise CampaignError(f"The customers table lacks the columns {missing} that campaign planning needs.",
                            hint="build it with `valuedesk build` (it adds tiers, lifecycle, segments and value at risk)")


def _assumptions(p: Playbook, cat: Catalogue, currency: str) -> list[str]:
    value = ("value at risk (churn risk x value if retained) is the value gained when the campaign keeps a customer"
             if p.goal in RETENTION_GOALS else
             f"each incremental responder places {p.incremental_orders:g} extra order(s) at their average order value")
    return [
        f"uplift {p.uplift:.1%}: incremental probability of responding because of the campaign ({p.uplift_source.strip()})",
        value,
        f"offer: {p.offer.describe(currency)}, paid by everyone who orders within {cat.offer_window_days} days, "
        "including customers who would have ordered anyway",
        f"P(order within {cat.offer_window_days} days anyway) = 1 - churn_risk^({cat.offer_window_days}/horizon_days)",
        f"contact cost {currency}{p.contact_cost:,.2f} per contacted customer ({p.channel})",
        "values are revenue, not margin; control-group customers are not contacted and cost nothing",
    ]


def _plan_assumptions(budget: float | None, holdout_share: float, seed: int) -> list[str]:
    return [
        "expected net value = uplift x value gained - expected offer cost - contact cost, per customer",
        "each customer is offered at most one campaign; only positive expected net value is targeted",
        ("budget allocated greedily by expected net value per unit cost" if budget is not None else
         "no budget: each customer gets the campaign with the highest expected net value"),
        f"control groups: a seeded random {holdout_share:.0%} of each campaign's chosen customers (seed {seed})",
    ]


def plan_campaigns(customers: pd.DataFrame, goal: str | None = None, budget: float | None = None,
                   filter: CustomerFilter | Mapping[str, Any] | None = None, catalogue: Catalogue | str | Path | None = None,
                   holdout_share: float | None = None, seed: int | None = None, *,
                   settings: Settings, playbooks: Sequence[str] | None = None,
                   filters: CustomerFilter | Mapping[str, Any] | None = None,
                   list_ids: int | None = None) -> CampaignPlan:
    """Choose who gets which campaign to maximise expected net value, within an optional budget.

    Each customer gets at most one campaign, only at positive expected net value. Without a budget every
    eligible customer gets their best campaign; with one, customer-campaign pairs are taken greedily by
    net value per unit cost until nothing else fits. A seeded random share of each campaign's chosen
    customers is held out as a control group (not contacted, not costed) to measure the real lift.
    With `list_ids`, each campaign lists only its first `list_ids` customers and control-group ids (a
    summary for people; an export needs the full plan), which on 1M customers saves most of the time.
    ``settings`` gives the holdout share and seed when not passed, the currency, the horizon of
    customers without one, and the catalogue when none is passed.
    """
    holdout_share = settings.holdout_share if holdout_share is None else holdout_share
    seed = settings.random_seed if seed is None else seed
    if not 0 <= holdout_share < 1:
        raise CampaignError(f"holdout_share must be at least 0 and below 1, got {holdout_share}.",
                            hint="0.1 keeps a 10% control group", field="holdout_share")
    budget = check_budget(budget)
    if isinstance(goal, Catalogue):
        # Tolerate plan_campaigns(customers, catalogue, ...) as the tools layer calls it.
        goal, catalogue = None, goal
    cat = catalogue if isinstance(catalogue, Catalogue) else load_catalogue(catalogue, settings=settings)
    chosen, goal = _choose_playbooks(cat, goal, playbooks)
    _check_columns(customers)
    audience = select_audience(customers, filters if filter is None else filter)
    currency = settings.currency_symbol
    candidates = _candidates(audience, chosen, cat, tier_floors(customers), settings.horizon_days)
    assigned = _assign(candidates, len(audience), len(chosen), budget, currency)
    ids = _AudienceIds(audience, list_ids)
    rng = np.random.default_rng(seed)
    results: list[CampaignResult] = []
    for j, p in enumerate(chosen):
        rows = np.flatnonzero(assigned == j)
        if len(rows):
            results.append(_campaign_result(p, ids.in_id_order(rows), candidates.at(j), ids, rng, cat=cat,
                                            holdout_share=holdout_share, list_ids=list_ids, currency=currency))
    results.sort(key=lambda r: r.expected_net_value, reverse=True)
    total_cost = round(sum(r.cost for r in results), 2)
    plan = CampaignPlan(
        campaigns=results, total_cost=total_cost, budget=budget,
        expected_net_value=round(sum(r.expected_net_value for r in results), 2),
        expected_incremental_revenue=round(sum(r.expected_incremental_revenue for r in results), 2),
        audience_size=len(audience), targeted=sum(r.audience_size for r in results),
        control_size=sum(r.control_group_size for r in results), holdout_share=holdout_share, seed=seed,
        goal=goal, currency=currency, catalogue=cat.source,
        assumptions=_plan_assumptions(budget, holdout_share, seed),
        notes=_budget_notes(candidates, assigned, budget, total_cost, holdout_share, currency))
    plan._customers = customers
    return plan


def _choose_playbooks(cat: Catalogue, goal: str | None,
                      playbooks: Sequence[str] | None) -> tuple[list[Playbook], str | None]:
    """The playbooks to plan and the goal as the plan reports it. The goal may be a marketer's word for
    it (GOAL_ALIASES) or a playbook's own name, which plans just that playbook."""
    names = [p.name for p in cat.playbooks]
    if goal is not None:
        norm = str(goal).strip().lower().replace("-", "_").replace(" ", "_")
        norm = GOAL_ALIASES.get(norm, norm)
        if norm in names:
            playbooks, goal = [norm], None
        elif norm not in GOALS:
            raise CampaignError(f"Unknown campaign goal '{goal}'.",
                                hint=closest_hint(norm, list(GOALS) + names, "goals (or playbook names)"),
                                field="goal")
        else:
            goal = norm
    chosen = [p for p in cat.playbooks if goal is None or p.goal == goal]
    if playbooks:
        chosen = [cat.get(n) for n in playbooks if goal is None or cat.get(n).goal == goal]
    if not chosen:
        raise CampaignError(f"The catalogue has no playbook for goal '{goal}'.",
                            hint="goals present: " + ", ".join(sorted({p.goal for p in cat.playbooks})), field="goal")
    return chosen, goal


@dataclass
class _PlaybookCandidates:
    """One playbook's customers with positive expected net value: audience positions (ascending) and
    the expected-value terms at those positions."""

    playbook: Playbook
    rows: np.ndarray
    values: dict[str, np.ndarray]
    eligible: int  # customers its eligibility admits, worth it or not


@dataclass
class _Candidates:
    """Every (customer, playbook) pair with positive expected net value, grouped by playbook in
    playbook order, customers ascending within each (the order the allocation relies on)."""

    per_playbook: list[_PlaybookCandidates]
    customer: np.ndarray
    playbook: np.ndarray
    net: np.ndarray
    cost: np.ndarray

    def at(self, j: int) -> _PlaybookCandidates:
        return self.per_playbook[j]


def _candidates(audience: pd.DataFrame, chosen: Sequence[Playbook], cat: Catalogue,
                thresholds: Mapping[str, float], default_horizon: int) -> _Candidates:
    horizon = (audience["horizon_days"] if "horizon_days" in audience else pd.Series(default_horizon,
                                                                                      index=audience.index))
    horizon = np.asarray(horizon, dtype=float)
    churn, value_at_risk, aov = value_inputs(audience)
    p_anyway = order_anyway(churn, horizon, cat.offer_window_days)  # the same for every playbook
    per_playbook = []
    table = audience_table(audience)  # compiled once for every playbook's rule
    for p in chosen:
        # Expected value only where the playbook is eligible: most playbooks fit a small share of 1M.
        eligible_rows = np.flatnonzero(eligible_mask(p, table, thresholds))
        ev = expected_value(p, churn_risk=churn[eligible_rows], value_at_risk=value_at_risk[eligible_rows],
                            aov=aov[eligible_rows], horizon_days=horizon[eligible_rows],
                            offer_window_days=cat.offer_window_days, p_order_anyway=p_anyway[eligible_rows])
        good = ev["expected_net_value"] > 0
        per_playbook.append(_PlaybookCandidates(p, eligible_rows[good], {k: v[good] for k, v in ev.items()},
                                                len(eligible_rows)))
    candidates = _Candidates(
        per_playbook, customer=np.concatenate([c.rows for c in per_playbook]),
        playbook=np.concatenate([np.full(len(c.rows), j) for j, c in enumerate(per_playbook)]),
        net=np.concatenate([c.values["expected_net_value"] for c in per_playbook]),
        cost=np.concatenate([c.values["cost"] for c in per_playbook]))
    if len(candidates.customer) == 0:
        detail = "; ".join(f"{c.playbook.name}: {c.eligible:,} eligible, {len(c.rows):,} with positive net value"
                           for c in per_playbook)
        raise CampaignError(
            f"No customer in the audience of {len(audience):,} is worth targeting: {detail}.",
            hint="widen the filter, choose another goal, or revise the catalogue's uplift and costs")
    return candidates


def _assign(candidates: _Candidates, audience_size: int, n_playbooks: int, budget: float | None,
            currency: str) -> np.ndarray:
    """The playbook index each audience position gets, -1 for none."""
    assigned = np.full(audience_size, -1)
    c, pj, net, cost = candidates.customer, candidates.playbook, candidates.net, candidates.cost
    if budget is None:
        best_per_customer(assigned, c, pj, net, cost, n_playbooks)
        return assigned
    if cost.min() > budget:
        raise CampaignError(
            f"A budget of {currency}{budget:,.2f} cannot pay for a single worthwhile contact; the cheapest "
            f"costs {currency}{cost.min():,.2f}.", hint=f"raise the budget to at least {currency}{cost.min():,.2f}",
            field="budget")
    allocate_budget(assigned, c, pj, net, cost, budget)
    return assigned


class _AudienceIds:
    """The audience's customer ids as plans list them. With a listing limit and the planning frame's id
    ranks, only the listed ids are turned into strings (on 1M customers, turning them all costs most
    of a summary plan)."""

    def __init__(self, audience: pd.DataFrame, list_ids: int | None):
        self.rank = audience["id_rank"].to_numpy() if "id_rank" in audience else None
        self.column = audience["customer_id"]
        self.ids = None
        if list_ids is None or self.rank is None:
            column = self.column
            self.ids = column.to_numpy() if column.dtype == object else column.astype(str).to_numpy(dtype=object)

    def at(self, positions: np.ndarray) -> list[str]:
        if self.ids is not None:
            return self.ids[positions].tolist()
        return [str(v) for v in self.column.iloc[positions].tolist()]

    def in_id_order(self, rows: np.ndarray) -> np.ndarray:
        """`rows` sorted by customer id, so control groups drawn from them do not depend on the table's
        row order; the planning frame carries each id's rank to sort by."""
        return rows[np.argsort(self.rank[rows] if self.rank is not None else self.ids[rows], kind="stable")]


def _best_first(net: np.ndarray, listed: int) -> np.ndarray:
    """Positions of the `listed` highest net values, highest first, in the order a full stable sort
    gives them (ties at the edge included before cutting, so the order is exact)."""
    if listed >= len(net):
        return np.argsort(-net, kind="stable")
    edge = -np.partition(-net, listed - 1)[listed - 1] if listed else np.inf  # the listed-th best
    top = np.flatnonzero(net >= edge)
    return top[np.argsort(-net[top], kind="stable")][:listed]


def _campaign_result(p: Playbook, rows: np.ndarray, candidates: _PlaybookCandidates, ids: _AudienceIds,
                     rng: np.random.Generator, *, cat: Catalogue, holdout_share: float, list_ids: int | None,
                     currency: str) -> CampaignResult:
    """One campaign of the plan from the audience positions it was assigned (in customer-id order)."""
    treated, control = split_control(rows, holdout_share, rng)
    ev = candidates.values
    at = np.searchsorted(candidates.rows, treated)  # assigned customers are among the playbook's candidates
    t_net = ev["expected_net_value"][at]
    t_cost = float(ev["cost"][at].sum())
    t_rev = float(ev["expected_incremental_revenue"][at].sum())
    p_base = float(ev["p_order_anyway"][at].mean())
    listed = len(treated) if list_ids is None else min(list_ids, len(treated))
    order_t = _best_first(t_net, listed)
    # `control` is in id order already; a listing limit keeps its first ids.
    control_listed = control if list_ids is None else control[:list_ids]
    # Built from values computed here, so skip re-validating lists that can hold a million ids.
    return CampaignResult.model_construct(
        name=p.name, description=p.description, goal=p.goal, channel=p.channel, offer=p.offer,
        offer_text=p.offer.describe(currency), audience_size=len(treated), eligible=len(candidates.rows),
        customer_ids=ids.at(treated[order_t]), expected_values=np.round(t_net[order_t], 2).tolist(),
        control_group_ids=ids.at(control_listed), control_group_size=len(control),
        ids_complete=listed == len(treated) and len(control_listed) == len(control), cost=round(t_cost, 2),
        expected_incremental_revenue=round(t_rev, 2), expected_net_value=round(t_rev - t_cost, 2),
        roi=round((t_rev - t_cost) / t_cost, 3) if t_cost > 0 else None, uplift=p.uplift,
        uplift_source=p.uplift_source.strip(), contact_cost=p.contact_cost,
        assumptions=_assumptions(p, cat, currency),
        measurement=measurement_text(p, len(treated), len(control), p_base, cat.offer_window_days))


def _budget_notes(candidates: _Candidates, assigned: np.ndarray, budget: float | None, total_cost: float,
                  holdout_share: float, currency: str) -> list[str]:
    """What the budget left out, and why part of it stays unspent."""
    if budget is None:
        return []
    notes = []
    candidate = np.zeros(len(assigned), dtype=bool)
    candidate[candidates.customer] = True
    unfunded = int((candidate & (assigned < 0)).sum())
    if unfunded:
        notes.append(f"{unfunded:,} customers with a positive-value campaign were left out by the budget.")
    held = budget - total_cost
    if holdout_share > 0 and held > 0.005 * budget:
        notes.append(f"{currency}{held:,.2f} of the budget stays unspent because the control groups are "
                     "chosen from the funded customers and are not contacted.")
    return notes
