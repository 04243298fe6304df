"""Campaign planning: who gets which campaign to maximise expected net value within an optional budget,
with a control group per campaign and the assumptions behind every number travelling with the plan.

The steps, in order: the playbooks for the goal (`catalogue`), the audience and who each playbook may
reach (`eligibility`), each pair's expected value (`value`), who gets which campaign (`allocation`),
the control groups (`holdout`), then one result per campaign.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, Field, PrivateAttr

from predictor.campaigns.allocation import (allocate_budget, best_per_customer, check_budget,
                                            unspent_budget_notes)
from predictor.campaigns.candidates import Candidates, PlaybookCandidates, playbook_candidates
from predictor.campaigns.catalogue import (GOALS, RETENTION_GOALS, CampaignError, Catalogue, Offer, Playbook,
                                           closest_hint, goal_key, load_catalogue)
from predictor.campaigns.eligibility import as_filter, select_audience
from predictor.campaigns.holdout import measurement_text, split_control
from predictor.campaigns.nearest import nearest_plans, with_nearest
from predictor.campaigns.wording import campaign_words, unworthy_words
from predictor.campaigns.value import REQUIRED_COLUMNS, tier_floors
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
    uplift: float = Field(description="Assumed uplift, averaged over the treated customers where the playbook "
                                      "gives some lifecycle stages their own figure.")
    uplift_source: str
    contact_cost: float
    assumptions: list[str]
    measurement: str

    # What the control group would have cost had it been contacted (the budget notes report it).
    _control_cost: float = PrivateAttr(default=0.0)


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
        f"uplift {p.uplift_text()}: incremental probability of responding because of the campaign ({p.uplift_source.strip()})",
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
                   list_ids: int | None = None, suggest_nearest: bool = True,
                   floors: Mapping[str, float] | None = None) -> CampaignPlan:
    """Choose who gets which campaign to maximise expected net value, within an optional budget.

    Each customer gets at most one campaign, only at positive expected net value. Without a budget every
    eligible customer gets their best campaign; with one, customer-campaign pairs are taken greedily by
    net value per unit cost until nothing else fits. A seeded random share of each campaign's chosen
    customers is held out as a control group (not contacted, not costed) to measure the real lift.
    With `list_ids`, each campaign lists only its first `list_ids` customers and control-group ids (a
    summary for people; an export needs the full plan), which on 1M customers saves most of the time.
    ``settings`` gives the holdout share and seed when not passed, the currency, the horizon of
    customers without one, and the catalogue when none is passed; ``floors`` the tier floors if cached.

    A request that gives no plan is a CampaignError whose ``step`` says what emptied it ("audience":
    the filter; "rule": no playbook is for these customers; "value": none is worth the offer; "budget")
    in words; with `suggest_nearest`, its hint and ``nearest`` name the nearest requests that do give
    a plan (see predictor.campaigns.nearest), which are never planned in its place.
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
    flt = as_filter(filters if filter is None else filter)
    named = [p.name for p in chosen] if goal is None and len(chosen) < len(cat.playbooks) else None
    floors = tier_floors(customers) if floors is None else floors
    try:
        return _plan(customers, cat, chosen, goal, budget, flt, holdout_share=holdout_share, seed=seed,
                     settings=settings, list_ids=list_ids, floors=floors)
    except CampaignError as exc:
        if exc.step not in ("audience", "rule", "value"):
            raise
        failed = CampaignError(f"No plan for {campaign_words(goal, named)}. {exc.message}", hint=exc.hint,
                               field=exc.field, step=exc.step)
        if not suggest_nearest:
            raise failed from None

    def replan(other_goal: str | None, names: Sequence[str] | None, relaxed: CustomerFilter | None):
        try:
            return plan_campaigns(customers, goal=other_goal, budget=budget, filter=relaxed, catalogue=cat,
                                  holdout_share=holdout_share, seed=seed, settings=settings, playbooks=names,
                                  list_ids=0, suggest_nearest=False, floors=floors)
        except CampaignError:
            return None

    goals = [g for g in GOALS if any(p.goal == g for p in cat.playbooks)]
    nearby = nearest_plans(failed.step, flt, goal, named, goals, replan)
    raise with_nearest(failed, nearby, settings.currency_symbol) from None


def _plan(customers: pd.DataFrame, cat: Catalogue, chosen: list[Playbook], goal: str | None, budget: float | None,
          flt: CustomerFilter | None, *, holdout_share: float, seed: int, settings: Settings,
          list_ids: int | None, floors: Mapping[str, float]) -> CampaignPlan:
    """The plan for one request (see `plan_campaigns`); an empty one raises with its step."""
    currency = settings.currency_symbol
    audience = select_audience(customers, flt, currency=currency)
    candidates = playbook_candidates(audience, chosen, cat, floors, settings.horizon_days)
    if len(candidates.customer) == 0:
        outcomes = [(c.playbook, c.eligible, c.best_gain, c.best_cost) for c in candidates.per_playbook]
        step, reason = unworthy_words(flt, len(audience), outcomes, currency)
        raise CampaignError(reason + ".", step=step,
                            hint="widen the filter, choose another goal, or revise the catalogue's uplift and costs")
    assigned = _assign(candidates, len(audience), len(chosen), budget, currency)
    ids = _AudienceIds(audience, list_ids)
    rng = np.random.default_rng(seed)
    results: list[CampaignResult] = []
    for j, p in enumerate(chosen):
        rows = np.flatnonzero(assigned == j)
        if len(rows):
            results.append(_campaign_result(p, rows, candidates.at(j), ids, rng, cat=cat,
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
        notes=_budget_notes(candidates, assigned, budget, results, total_cost, currency))
    plan._customers = customers
    return plan


def _choose_playbooks(cat: Catalogue, goal: str | None,
                      playbooks: Sequence[str] | None) -> tuple[list[Playbook], str | None]:
    """The playbooks to plan and the goal as the plan reports it. The goal may be a marketer's word for
    it (GOAL_ALIASES, through `goal_key`) or a playbook's own name, which plans just that playbook."""
    names = [p.name for p in cat.playbooks]
    if goal is not None:
        norm = goal_key(goal, names)
        if norm in GOALS:
            goal = norm
        elif norm in names:
            playbooks, goal = [norm], None
        else:
            raise CampaignError(f"Unknown campaign goal '{goal}'.",
                                hint=closest_hint(norm, list(GOALS) + names, "goals (or playbook names)"),
                                field="goal")
    chosen = [p for p in cat.playbooks if goal is None or p.goal == goal]
    if playbooks:
        chosen = [cat.get(n) for n in playbooks if goal is None or cat.get(n).goal == goal]
    if not chosen:
        raise CampaignError(f"The catalogue has no playbook for goal '{goal}'.",
                            hint="goals present: " + ", ".join(sorted({p.goal for p in cat.playbooks})), field="goal")
    return chosen, goal


def _assign(candidates: Candidates, audience_size: int, n_playbooks: int, budget: float | None,
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
            field="budget", step="budget")
    allocate_budget(assigned, c, pj, net, cost, budget)
    return assigned


class _AudienceIds:
    """The audience's customer ids as plans list them. With a listing limit and the planning frame's id
    ranks, only the listed ids are turned into strings (on 1M customers, turning them all costs most
    of a summary plan)."""

    def __init__(self, audience: pd.DataFrame, list_ids: int | None):
        self.rank = audience["id_rank"].to_numpy() if "id_rank" in audience else None
        self.column = audience["customer_id"]
        self.ids = self.arrow = None
        if list_ids is None or self.rank is None:
            column = self.column
            self.ids = column.to_numpy() if column.dtype == object else column.astype(str).to_numpy(dtype=object)
        elif hasattr(self.column.array, "__arrow_array__"):
            # Arrow strings in one chunk: a take from a chunked array costs ~1 ms at 1M, from one ~0.01 ms,
            # and a plan takes twice per campaign.
            self.arrow = pa.chunked_array(self.column.array.__arrow_array__()).combine_chunks()

    def at(self, positions: np.ndarray) -> list[str]:
        if self.ids is not None:
            return self.ids[positions].tolist()
        if self.arrow is not None:
            return [str(v) for v in self.arrow.take(positions).to_pylist()]
        return [str(v) for v in self.column.iloc[positions].tolist()]

    def id_order(self, rows: np.ndarray) -> np.ndarray:
        """The permutation that sorts `rows` by customer id, so control groups drawn from them do not
        depend on the table's row order; the planning frame carries each id's rank to sort by."""
        return np.argsort(self.rank[rows] if self.rank is not None else self.ids[rows], kind="stable")


def _best_first(net: np.ndarray, listed: int) -> np.ndarray:
    """Positions of the `listed` highest net values, highest first, in the order a full stable sort
    gives them (ties at the edge included before cutting, so the order is exact)."""
    if listed >= len(net):
        return np.argsort(-net, kind="stable")
    edge = -np.partition(-net, listed - 1)[listed - 1] if listed else np.inf  # the listed-th best
    top = np.flatnonzero(net >= edge)
    return top[np.argsort(-net[top], kind="stable")][:listed]


def _campaign_result(p: Playbook, rows: np.ndarray, candidates: PlaybookCandidates, ids: _AudienceIds,
                     rng: np.random.Generator, *, cat: Catalogue, holdout_share: float, list_ids: int | None,
                     currency: str) -> CampaignResult:
    """One campaign of the plan from the audience positions it was assigned (ascending)."""
    # Assigned customers are among the playbook's candidates (both ascending): where each one's terms are.
    found = np.searchsorted(candidates.rows, rows)
    in_id_order = ids.id_order(rows)
    treated_i, control_i = split_control(in_id_order, holdout_share, rng)
    treated, control, at = rows[treated_i], rows[control_i], found[treated_i]
    ev = candidates.values
    t_net = ev["expected_net_value"][at]
    t_cost = float(ev["cost"][at].sum())
    t_rev = float(ev["expected_incremental_revenue"][at].sum())
    p_base = float(ev["p_order_anyway"][at].mean())
    uplift = round(float(ev["uplift"][at].mean()), 4)
    listed = len(treated) if list_ids is None else min(list_ids, len(treated))
    order_t = _best_first(t_net, listed)
    # `control` is in id order already; a listing limit keeps its first ids.
    control_listed = control if list_ids is None else control[:list_ids]
    # Built from values computed here, so skip re-validating lists that can hold a million ids.
    result = CampaignResult.model_construct(
        name=p.name, description=p.description, goal=p.goal, channel=p.channel, offer=p.offer,
        offer_text=p.offer.describe(currency), audience_size=len(treated), eligible=len(candidates.rows),
        customer_ids=ids.at(treated[order_t]), expected_values=np.round(t_net[order_t], 2).tolist(),
        control_group_ids=ids.at(control_listed), control_group_size=len(control),
        ids_complete=listed == len(treated) and len(control_listed) == len(control), cost=round(t_cost, 2),
        expected_incremental_revenue=round(t_rev, 2), expected_net_value=round(t_rev - t_cost, 2),
        roi=round((t_rev - t_cost) / t_cost, 3) if t_cost > 0 else None, uplift=uplift,
        uplift_source=p.uplift_source.strip(), contact_cost=p.contact_cost,
        assumptions=_assumptions(p, cat, currency),
        measurement=measurement_text(p, len(treated), len(control), p_base, cat.offer_window_days, uplift))
    result._control_cost = float(ev["cost"][found[control_i]].sum())
    return result


def _distinct(positions: np.ndarray, n: int) -> int:
    """How many different audience positions `positions` holds (a mark per position: O(n), no sort)."""
    seen = np.zeros(n, dtype=bool)
    seen[positions] = True
    return int(seen.sum())


def _budget_notes(candidates: Candidates, assigned: np.ndarray, budget: float | None,
                  results: Sequence[CampaignResult], total_cost: float, currency: str) -> list[str]:
    """What the budget left out, and each real cause of the part of it that stays unspent, with figures."""
    if budget is None:
        return []
    chosen = assigned >= 0
    left_out = ~chosen[candidates.customer]  # pairs of customers the budget did not reach
    return unspent_budget_notes(
        budget, total_cost, sum(r._control_cost for r in results), control=sum(r.control_group_size for r in results),
        left_out=_distinct(candidates.customer[left_out], len(assigned)),
        cheapest_left_out=float(candidates.cost[left_out].min()) if left_out.any() else None,
        audience_size=len(assigned), chosen=int(chosen.sum()), currency=currency)
