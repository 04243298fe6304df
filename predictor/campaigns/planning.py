"""Campaign playbooks, expected-value planning under a budget, holdout design and audience export.

The catalogue (``prompts/campaigns.yaml`` or ``settings.campaign_catalogue``) holds the marketing
judgement: who is eligible, what the offer costs and how much it is assumed to move people. This module
holds only the arithmetic, so every number in a plan can be traced to a catalogue field or a customer
column, and the assumptions travel with the plan.
"""

from __future__ import annotations

import csv
import difflib
import io
import itertools
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)

from predictor.errors import ValueDeskError
from predictor.customers.audience import (LIFECYCLE_STAGES, RFM_SEGMENTS, TIERS, CustomerFilter, FilterError,
                               canonical_names, column_isin)
from predictor.settings import REPO_ROOT, Settings, get_settings

Goal = Literal["retain", "win_back", "reactivate", "grow", "upgrade"]
GOALS: tuple[str, ...] = ("retain", "win_back", "reactivate", "grow", "upgrade")
# Words marketers use for the goals (the agent passes their phrasing through).
GOAL_ALIASES = {"retention": "retain", "keep": "retain", "winback": "win_back", "win": "win_back",
                "reactivation": "reactivate", "reactivate_lapsed": "reactivate", "cross_sell": "grow",
                "crosssell": "grow", "upsell": "grow", "up_sell": "grow", "growth": "grow",
                "second_order": "grow", "welcome": "grow", "loyalty": "upgrade", "tier_upgrade": "upgrade"}
# Goals whose value is keeping future value that would otherwise be lost; the others buy extra orders.
RETENTION_GOALS = frozenset({"retain", "win_back", "reactivate"})
MAX_BUDGET = 1e9
REQUIRED_COLUMNS = ("customer_id", "tier", "lifecycle", "rfm_segment", "churn_risk", "value_at_risk",
                    "aov", "customer_value")


class CampaignError(ValueDeskError):
    """A campaign request or catalogue the planner cannot act on; ``hint`` says what to do instead."""

    def __init__(self, message: str, *, hint: str | None = None, playbook: str | None = None,
                 field: str | None = None):
        self.message, self.hint, self.playbook, self.field = message, hint, playbook, field
        super().__init__(message + (f" Hint: {hint}" if hint else ""))


class _Problem(ValueError):
    """A catalogue rule error that knows which field it is about (pydantic keeps it in ctx['error'])."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(reason)


# ---------------------------------------------------------------------------------------- catalogue
class Eligibility(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: list[str] | None = None
    lifecycle: list[str] | None = None
    segments: list[str] | None = None
    min_churn_risk: float | None = Field(None, ge=0, le=1)
    max_churn_risk: float | None = Field(None, ge=0, le=1)
    value_field: Literal["customer_value", "predicted_value", "value_at_risk", "revenue_12m"] = "customer_value"
    min_value: float | None = None
    max_value: float | None = None
    max_gap_to_next_tier: float | None = Field(
        None, gt=0, le=1,
        description="Only customers whose customer_value is within this share below the next tier's threshold.")

    @field_validator("tiers", "lifecycle", "segments")
    @classmethod
    def _names(cls, value, info):
        allowed = {"tiers": TIERS, "lifecycle": LIFECYCLE_STAGES, "segments": RFM_SEGMENTS}[info.field_name]
        if value is None:
            return None
        if len(value) == 0:
            raise _Problem(info.field_name, "is an empty list, which matches nobody; remove the key to allow all")
        try:
            names = canonical_names(value, allowed, info.field_name)
        except FilterError as exc:
            raise _Problem(info.field_name, str(exc)) from None
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise _Problem(info.field_name, f"lists {', '.join(dupes)} more than once")
        return names

    @model_validator(mode="after")
    def _possible(self):
        for low, high in (("min_churn_risk", "max_churn_risk"), ("min_value", "max_value")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise _Problem(low, f"{low} ({lo}) is greater than {high} ({hi}), so nobody can qualify")
        if self.max_gap_to_next_tier is not None and self.tiers == [TIERS[0]]:
            raise _Problem("max_gap_to_next_tier", f"{TIERS[0]} is the top tier and has no next tier to be near")
        if (self.value_field == "value_at_risk" and self.max_churn_risk == 0 and self.min_value is not None
                and self.min_value > 0):
            raise _Problem("min_value", "value at risk is zero when churn risk is capped at 0, so nobody can qualify")
        return self


class Offer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["discount", "free_shipping", "gift", "early_access"]
    discount_pct: float = Field(0.0, ge=0, le=90, description="Percent off the order, for type discount.")
    shipping_cost: float = Field(0.0, ge=0, description="What free shipping costs you per order.")
    gift_cost: float = Field(0.0, ge=0, description="What the gift costs you per redeeming order.")

    @model_validator(mode="after")
    def _consistent(self):
        needs = {"discount": "discount_pct", "free_shipping": "shipping_cost", "gift": "gift_cost"}
        field = needs.get(self.type)
        if field and getattr(self, field) <= 0:
            raise _Problem(field, f"offer type '{self.type}' needs a positive {field}")
        for other in set(needs.values()) - {field}:
            if getattr(self, other) > 0:
                raise _Problem(other, f"is set but the offer type is '{self.type}'; "
                                      f"it would be costed without being offered")
        return self

    def describe(self, currency: str = "") -> str:
        if self.type == "discount":
            return f"{self.discount_pct:g}% discount"
        if self.type == "free_shipping":
            return "free shipping"
        if self.type == "gift":
            return f"gift ({currency}{self.gift_cost:,.2f})"
        return "early access"


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    goal: Goal
    eligibility: Eligibility
    offer: Offer
    channel: Literal["email", "sms", "direct_mail"]
    contact_cost: float = Field(ge=0, le=1000)
    uplift: float = Field(gt=0, le=1, description="Incremental response probability caused by the campaign.")
    uplift_source: str = Field(min_length=10, description="Why this uplift: a measurement or a stated rationale.")
    incremental_orders: float = Field(1.0, gt=0, le=100, description="Extra orders per incremental responder (grow/upgrade).")


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer_window_days: int = Field(30, ge=1, le=365)
    playbooks: list[Playbook]
    source: str = ""

    def get(self, name: str) -> Playbook:
        for p in self.playbooks:
            if p.name == name:
                return p
        raise CampaignError(f"No playbook named '{name}' in the catalogue.",
                            hint=_closest_hint(name, [p.name for p in self.playbooks], "playbooks"))


def _closest_hint(value: str, valid: Sequence[str], what: str) -> str:
    close = difflib.get_close_matches(str(value), list(valid), n=1, cutoff=0.5)
    return (f"did you mean '{close[0]}'? " if close else "") + f"Valid {what}: {', '.join(valid)}."


def default_catalogue_path(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    if settings.campaign_catalogue is not None:
        return Path(settings.campaign_catalogue)
    return Path(str(resources.files("prompts").joinpath("campaigns.yaml")))


def shown_path(path: str | Path, settings: Settings | None = None) -> str:
    """How messages name a file: relative to the data directory or the repository when inside one,
    else by its name alone, so no error or tool result carries an absolute server path."""
    path = Path(path)
    bases = ([Path(settings.data_dir)] if settings is not None else []) + [REPO_ROOT]
    for base in bases:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return path.name


def load_catalogue(path: str | Path | Settings | None = None, *, settings: Settings | None = None) -> Catalogue:
    """Read and validate a catalogue; any problem names the playbook, the field and the reason.

    ``load_catalogue(settings)`` is accepted too (the tools layer passes its settings object).
    Messages name the file with `shown_path`; ``Catalogue.source`` keeps the full path.
    """
    if isinstance(path, Settings):
        path, settings = None, path
    path = Path(path) if path is not None else default_catalogue_path(settings)
    label = shown_path(path, settings)
    fix = f"edit {label} (the comments at its top explain every field)"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignError(f"Cannot read the campaign catalogue {label}: {exc.strerror or type(exc).__name__}.",
                            hint="set VALUEDESK_CAMPAIGN_CATALOGUE to an existing YAML file, or unset it "
                                 "to use the packaged catalogue.") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CampaignError(f"Campaign catalogue {label} is not valid YAML: {exc}", hint=fix) from None
    return parse_catalogue(raw, source=str(path), shown=label)


def parse_catalogue(raw: Any, *, source: str = "<catalogue>", shown: str | None = None) -> Catalogue:
    """A validated catalogue from parsed YAML; ``shown`` names it in messages (default ``source``)."""
    catalogue_source, source = source, shown or source
    fix = f"edit {source}"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("playbooks"), list) or not raw["playbooks"]:
        raise CampaignError(f"Campaign catalogue {source} needs a non-empty 'playbooks:' list at the top level.",
                            hint=fix, field="playbooks")
    unknown = set(raw) - {"offer_window_days", "playbooks"}
    if unknown:
        raise CampaignError(f"Campaign catalogue {source} has unknown top-level keys {sorted(unknown)}.",
                            hint="allowed: offer_window_days, playbooks", field=sorted(unknown)[0])
    playbooks: list[Playbook] = []
    for i, entry in enumerate(raw["playbooks"], start=1):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        label = str(name) if name else f"#{i}"
        if not isinstance(entry, Mapping):
            raise CampaignError(f"Campaign catalogue {source}: playbook {label} is not a mapping of fields.",
                                hint=fix, playbook=label)
        try:
            playbooks.append(Playbook.model_validate(entry))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = [str(p) for p in err["loc"]]
            problem = (err.get("ctx") or {}).get("error")
            if isinstance(problem, _Problem):
                # Model-level checks report the playbook section; name the exact field instead.
                loc = [p for p in loc if p not in (problem.field,)] + [problem.field]
                reason = problem.reason
            else:
                reason = err["msg"]
            field = ".".join(loc) or "(playbook)"
            raise CampaignError(f"Campaign catalogue {source}: playbook '{label}', field '{field}': {reason}.",
                                hint=fix, playbook=label, field=field) from None
    seen: dict[str, Playbook] = {}
    for p in playbooks:
        if p.name in seen:
            raise CampaignError(f"Campaign catalogue {source}: playbook '{p.name}' is defined twice.",
                                hint="give each playbook a unique name", playbook=p.name, field="name")
        for other in seen.values():
            if other.goal == p.goal and other.eligibility == p.eligibility:
                raise CampaignError(
                    f"Campaign catalogue {source}: playbooks '{other.name}' and '{p.name}' overlap completely "
                    f"(same goal '{p.goal}' and the same eligibility), so one of them can never be chosen on merit.",
                    hint="narrow one playbook's eligibility or merge them", playbook=p.name, field="eligibility")
        seen[p.name] = p
    try:
        window = int(raw.get("offer_window_days", 30))
        return Catalogue(offer_window_days=window, playbooks=playbooks, source=catalogue_source)
    except (ValidationError, TypeError, ValueError) as exc:
        raise CampaignError(f"Campaign catalogue {source}: field 'offer_window_days': must be a whole number "
                            f"of days from 1 to 365 ({exc.__class__.__name__}).", hint=fix,
                            field="offer_window_days") from None


# ---------------------------------------------------------------------------------------- plan shapes
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


# ---------------------------------------------------------------------------------------- audience
def _as_filter(filter: CustomerFilter | Mapping[str, Any] | None) -> CustomerFilter | None:
    if filter is None or isinstance(filter, CustomerFilter):
        return filter
    unknown = sorted(set(filter) - set(CustomerFilter.model_fields))
    if unknown:
        # A silently ignored key would widen the audience to people the marketer meant to exclude.
        raise CampaignError(f"Unknown audience filter field(s) {unknown}.",
                            hint=_closest_hint(unknown[0], list(CustomerFilter.model_fields), "filter fields"),
                            field=unknown[0])
    try:
        return CustomerFilter.model_validate(dict(filter))
    except FilterError as exc:
        raise CampaignError(str(exc), hint="use one of the valid names listed") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, FilterError):
            raise CampaignError(str(inner), hint="use one of the valid names listed") from None
        field = ".".join(str(p) for p in err["loc"]) or "filter"
        raise CampaignError(f"Audience filter field '{field}': {err['msg']}.",
                            hint=f"valid filter fields: {', '.join(CustomerFilter.model_fields)}",
                            field=field) from None


def _filter_steps(flt: CustomerFilter) -> list[tuple[str, Any]]:
    """One (label, predicate) per active filter field, in the order a marketer reads them."""
    steps: list[tuple[str, Any]] = []
    for field, column in (("tiers", "tier"), ("lifecycle", "lifecycle"), ("segments", "rfm_segment")):
        values = getattr(flt, field)
        if values:
            steps.append((f"{field} in {values}", lambda f, c=column, v=values: column_isin(f[c], v)))
    if flt.countries:
        wanted = {c.strip().lower() for c in flt.countries}
        steps.append((f"countries in {flt.countries}",
                      lambda f: column_isin(f["country"], wanted, casefold=True)))
    for field, column, op in (("min_churn_risk", "churn_risk", "ge"), ("max_churn_risk", "churn_risk", "le"),
                              ("min_value", "predicted_value", "ge"), ("max_value", "predicted_value", "le"),
                              ("min_recency_days", "recency_days", "ge"), ("max_recency_days", "recency_days", "le")):
        bound = getattr(flt, field)
        if bound is not None:
            steps.append((f"{field} {bound:g}", lambda f, c=column, o=op, b=bound: getattr(f[c], o)(b)))
    return steps


def select_audience(customers: pd.DataFrame, filter: CustomerFilter | Mapping[str, Any] | None) -> pd.DataFrame:
    """Customers matching the filter; an empty result is an error that says which step emptied it."""
    flt = _as_filter(filter)
    if flt is None or flt.is_empty():
        if customers.empty:
            raise CampaignError("The customers table is empty, so there is nobody to target.",
                                hint="run `valuedesk build` on a transaction file first")
        return customers
    frame = customers
    trail = [f"{len(frame):,} customers"]
    for label, predicate in _filter_steps(flt):
        kept = frame[np.asarray(predicate(frame), dtype=bool)]
        trail.append(f"{label}: {len(kept):,}")
        if kept.empty:
            raise CampaignError(
                "The audience is empty: " + " -> ".join(trail) + f". The filter '{label}' removed everyone left.",
                hint=_empty_hint(frame, label), field=label.split(" ")[0])
        frame = kept
    # The shared filter may grow fields this explanation does not know yet; apply it whole as well.
    final = frame[flt.mask(frame).to_numpy(dtype=bool)]
    if final.empty:
        trail.append("remaining filter fields: 0")
        raise CampaignError("The audience is empty: " + " -> ".join(trail) + ".",
                            hint="relax the filter", field="filter")
    return final


def _empty_hint(frame: pd.DataFrame, label: str) -> str:
    field = label.split(" ")[0]
    column = {"tiers": "tier", "lifecycle": "lifecycle", "segments": "rfm_segment", "countries": "country"}.get(field)
    if column and column in frame and len(frame):
        counts = frame[column].astype("string").value_counts().head(6)
        shown = ", ".join(f"{k} {v:,}" for k, v in counts.items())
        return f"before that step the audience held: {shown}; widen '{field}' or drop an earlier filter"
    return f"relax '{field}' or drop an earlier filter"


# ---------------------------------------------------------------------------------------- expected value
def tier_floors(customers: pd.DataFrame) -> dict[str, float]:
    """Lowest customer_value seen in each tier: what a customer must reach to be placed in it (the one
    definition; the tools cache it per table)."""
    present = customers.dropna(subset=["customer_value"]).groupby("tier", observed=True)["customer_value"].min()
    return {str(k): float(v) for k, v in present.items()}


def eligible_mask(playbook: Playbook, frame: pd.DataFrame, thresholds: Mapping[str, float]) -> np.ndarray:
    rule = playbook.eligibility
    keep = np.ones(len(frame), dtype=bool)
    for values, column in ((rule.tiers, "tier"), (rule.lifecycle, "lifecycle"), (rule.segments, "rfm_segment")):
        if values:
            keep &= column_isin(frame[column], values)
    churn = frame["churn_risk"].to_numpy(dtype=float)
    if rule.min_churn_risk is not None:
        keep &= churn >= rule.min_churn_risk
    if rule.max_churn_risk is not None:
        keep &= churn <= rule.max_churn_risk
    if rule.min_value is not None or rule.max_value is not None:
        if rule.value_field not in frame:
            raise CampaignError(f"Playbook '{playbook.name}' bounds '{rule.value_field}', which the customers "
                                "table lacks.", hint="rebuild the customers table with `valuedesk build`",
                                playbook=playbook.name, field="eligibility.value_field")
        value = frame[rule.value_field].to_numpy(dtype=float)
        if rule.min_value is not None:
            keep &= value >= rule.min_value
        if rule.max_value is not None:
            keep &= value <= rule.max_value
    if rule.max_gap_to_next_tier is not None:
        next_tier = {TIERS[i + 1]: TIERS[i] for i in range(len(TIERS) - 1)}
        target = frame["tier"].map(lambda t: thresholds.get(next_tier.get(str(t), ""), np.nan)).to_numpy(dtype=float)
        value = frame["customer_value"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = (target - value) / target
        keep &= np.isfinite(gap) & (gap > 0) & (gap <= rule.max_gap_to_next_tier)
    return keep


class CustomerEV(BaseModel):
    """The expected-value arithmetic for one customer and one playbook, every term shown."""

    p_order_anyway: float
    p_redeem: float
    value_gained: float
    expected_incremental_revenue: float
    offer_cost: float
    contact_cost: float
    cost: float
    expected_net_value: float


def expected_value(playbook: Playbook, *, churn_risk: Any, value_at_risk: Any, aov: Any,
                   horizon_days: Any, offer_window_days: int,
                   p_order_anyway: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Vectorised expected value of targeting customers with one playbook.

    P(order in window anyway) treats ordering as a constant-rate process over the scoring horizon, so
    1 - churn_risk ^ (window / horizon). Everyone who orders in the window redeems the offer.
    """
    aov = np.maximum(np.asarray(aov, dtype=float), 0.0)
    p_anyway = p_order_anyway if p_order_anyway is not None else order_anyway(churn_risk, horizon_days,
                                                                              offer_window_days)
    u = playbook.uplift
    p_redeem = np.minimum(1.0, p_anyway + u)
    offer = playbook.offer
    per_redemption = offer.discount_pct / 100.0 * aov + offer.shipping_cost + offer.gift_cost
    offer_cost = p_redeem * per_redemption
    if playbook.goal in RETENTION_GOALS:
        gained = np.maximum(np.asarray(value_at_risk, dtype=float), 0.0)
    else:
        gained = aov * playbook.incremental_orders
    revenue = u * gained
    cost = offer_cost + playbook.contact_cost
    return {"p_order_anyway": p_anyway, "p_redeem": p_redeem, "value_gained": gained,
            "expected_incremental_revenue": revenue, "offer_cost": offer_cost,
            "contact_cost": np.full_like(revenue, playbook.contact_cost), "cost": cost,
            "expected_net_value": revenue - cost}


def order_anyway(churn_risk: Any, horizon_days: Any, offer_window_days: int) -> np.ndarray:
    """P(order in the offer window without the campaign); the same for every playbook, so planning
    computes it once."""
    churn = np.clip(np.asarray(churn_risk, dtype=float), 0.0, 1.0)
    return 1.0 - np.power(churn, offer_window_days / np.asarray(horizon_days, dtype=float))


def explain_customer_ev(playbook: Playbook, customer: Mapping[str, Any], offer_window_days: int = 30) -> CustomerEV:
    ev = expected_value(playbook, churn_risk=[customer["churn_risk"]], value_at_risk=[customer["value_at_risk"]],
                        aov=[customer["aov"]], horizon_days=[customer.get("horizon_days", 180)],
                        offer_window_days=offer_window_days)
    return CustomerEV(**{k: float(v[0]) for k, v in ev.items()})


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


def _measurement(p: Playbook, treated: int, control: int, p_base: float, window: int) -> str:
    if control == 0:
        return (f"No control group was reserved (holdout_share 0), so the lift of '{p.name}' cannot be measured "
                "causally; rerun the plan with a holdout share above 0 to measure it.")
    # Minimum detectable lift for a two-proportion test, alpha 0.05 two-sided, power 0.8.
    pb = min(max(p_base, 0.01), 0.99)
    mde = (1.959964 + 0.841621) * math.sqrt(pb * (1 - pb) * (1 / treated + 1 / control))
    return (f"Contact the {treated:,} treated customers only; do not contact the {control:,} control customers. "
            f"After {window} days compare the share who ordered and the revenue per customer between the two "
            f"groups: lift = treated rate - control rate (assumed {p.uplift:.1%}), incremental revenue = "
            f"(treated mean - control mean) x {treated:,}. With these group sizes a lift of about {mde:.1%} or "
            "more is detectable (two-proportion test, 5% significance, 80% power); smaller true lifts need a "
            "larger holdout.")


# ---------------------------------------------------------------------------------------- planning
def budget_problem(value: float) -> str | None:
    """Why ``value`` cannot be a budget (not finite, not above 0, above MAX_BUDGET), or None when it can.
    A budget is never rewritten into a usable one: the caller refuses it with this reason."""
    if math.isnan(value):
        return "Budget must be a positive amount, got nan (not a number)."
    if math.isinf(value):
        return (f"Budget must be a positive finite amount, got {value}."
                if value < 0 else f"Budget {value} is implausibly large (not finite; the most is {MAX_BUDGET:,.0f}).")
    if value <= 0:
        return f"Budget must be a positive amount, got {value:g}."
    if value > MAX_BUDGET:
        shown = f"{value:,.0f}" if value < 1e15 else f"{value:g}"
        return f"Budget {shown} is implausibly large (over {MAX_BUDGET:,.0f})."
    return None


def _check_budget(budget: float | None) -> float | None:
    if budget is None:
        return None
    try:
        value = float(budget)
    except (TypeError, ValueError):
        raise CampaignError(f"Budget '{budget}' is not a number.", hint="give the budget as a plain amount, "
                            "e.g. 5000", field="budget") from None
    problem = budget_problem(value)
    if problem is not None:
        hint = ("check the units (the data's currency, not cents) or omit the budget to plan without a limit"
                if value > 0 else "give a budget above 0, or omit it to plan without a budget")
        raise CampaignError(problem, hint=hint, field="budget")
    return value


PLANNING_COLUMNS = (*REQUIRED_COLUMNS, "country", "predicted_value", "recency_days", "horizon_days")
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


def _greedy_fill(assigned: np.ndarray, customer: np.ndarray, playbook: np.ndarray, cost: np.ndarray,
                 budget: float) -> float:
    """Walk (customer, playbook, cost) pairs in priority order, funding a pair when its customer has no
    campaign yet and its cost fits what is left; returns the budget left.

    Same result as the plain loop, in two steps: while the running cost of each customer's first pair
    stays within the budget every such pair is funded (one vectorised prefix); the loop then only walks
    the pairs that could still fit, which on 1M customers is a small remainder.
    """
    first = np.zeros(len(customer), dtype=bool)
    first[np.unique(customer, return_index=True)[1]] = True
    first_cost = np.where(first, cost, 0.0)
    spent = np.cumsum(first_cost)
    prefix = int(np.searchsorted(spent, budget, side="right"))  # pairs [0, prefix) are all affordable
    funded = first[:prefix]
    assigned[customer[:prefix][funded]] = playbook[:prefix][funded]
    remaining = budget - (float(spent[prefix - 1]) if prefix else 0.0)
    tail = np.arange(prefix, len(customer))
    tail = tail[(cost[tail] <= remaining) & (assigned[customer[tail]] < 0)]
    if len(tail):
        cheapest = float(cost[tail].min())
        for ci, pi, co in zip(customer[tail].tolist(), playbook[tail].tolist(), cost[tail].tolist()):
            if remaining < cheapest:
                break
            if assigned[ci] < 0 and co <= remaining:
                assigned[ci] = pi
                remaining -= co
    return remaining


def _best_per_customer(assigned: np.ndarray, customer: np.ndarray, playbook: np.ndarray, net: np.ndarray,
                       cost: np.ndarray, n_playbooks: int) -> None:
    """No budget: each candidate customer gets the playbook with the highest net value, the cheaper one
    on a tie, the earlier playbook after that (one pass per playbook instead of sorting all pairs)."""
    best_net = np.full(len(assigned), -np.inf)
    best_cost = np.full(len(assigned), np.inf)
    for j in range(n_playbooks):  # pairs come grouped by playbook, in playbook order
        pick = playbook == j
        rows, pair_net, pair_cost = customer[pick], net[pick], cost[pick]
        held_net, held_cost = best_net[rows], best_cost[rows]
        better = (pair_net > held_net) | ((pair_net == held_net) & (pair_cost < held_cost))
        rows = rows[better]
        best_net[rows], best_cost[rows], assigned[rows] = pair_net[better], pair_cost[better], j


def _allocate_budget(assigned: np.ndarray, customer: np.ndarray, playbook: np.ndarray, net: np.ndarray,
                     cost: np.ndarray, budget: float) -> float:
    """Greedy by net value per unit cost (ties: higher net value, then pair order) within the budget.

    Sorting every pair is the cost on 1M customers, yet a budget funds only the best few: sort the pairs
    whose ratio reaches the k-th best (ties included, so the order is exact), fund them, then walk only
    the other pairs that could still fit what is left. Same result as sorting everything.
    """
    ratio = net / np.maximum(cost, 1e-9)
    m = len(customer)
    k = int(min(m, max(1024, 4 * budget / max(float(cost.mean()), 1e-9))))
    head = np.arange(m)
    if k < m:
        head = np.flatnonzero(ratio >= np.partition(ratio, m - k)[m - k])
    head = head[np.lexsort((-net[head], -ratio[head]))]
    remaining = _greedy_fill(assigned, customer[head], playbook[head], cost[head], budget)
    if len(head) < m:
        rest = np.ones(m, dtype=bool)
        rest[head] = False
        tail = np.flatnonzero(rest & (cost <= remaining) & (assigned[customer] < 0))
        if len(tail):
            tail = tail[np.lexsort((-net[tail], -ratio[tail]))]
            remaining = _greedy_fill(assigned, customer[tail], playbook[tail], cost[tail], remaining)
    return remaining


def plan_campaigns(customers: pd.DataFrame, goal: str | None = None, budget: float | None = None,
                   filter: CustomerFilter | Mapping[str, Any] | None = None, catalogue: Catalogue | str | Path | None = None,
                   holdout_share: float | None = None, seed: int | None = None, *,
                   playbooks: Sequence[str] | None = None, settings: Settings | None = None,
                   filters: CustomerFilter | Mapping[str, Any] | None = None,
                   list_ids: int | None = None) -> CampaignPlan:
    """Choose who gets which campaign to maximise expected net value, within an optional budget.

    Each customer gets at most one campaign, only at positive expected net value. Without a budget every
    eligible customer gets their best campaign; with one, customer-campaign pairs are taken greedily by
    net value per unit cost until nothing else fits. A seeded random share of each campaign's chosen
    customers is held out as a control group (not contacted, not costed) to measure the real lift.
    With `list_ids`, each campaign lists only its first `list_ids` customers and control-group ids (a
    summary for people; an export needs the full plan), which on 1M customers saves most of the time.
    """
    settings = settings or get_settings()
    holdout_share = settings.holdout_share if holdout_share is None else holdout_share
    seed = settings.random_seed if seed is None else seed
    if not 0 <= holdout_share < 1:
        raise CampaignError(f"holdout_share must be at least 0 and below 1, got {holdout_share}.",
                            hint="0.1 keeps a 10% control group", field="holdout_share")
    budget = _check_budget(budget)
    if isinstance(goal, Catalogue):
        # Tolerate plan_campaigns(customers, catalogue, ...) as the tools layer calls it.
        goal, catalogue = None, goal
    filter = filters if filter is None else filter
    cat = catalogue if isinstance(catalogue, Catalogue) else load_catalogue(catalogue, settings=settings)
    names = [p.name for p in cat.playbooks]
    if goal is not None:
        norm = str(goal).strip().lower().replace("-", "_").replace(" ", "_")
        norm = GOAL_ALIASES.get(norm, norm)
        if norm in names:
            # A playbook's own name as the goal: plan just that playbook.
            playbooks, goal = [norm], None
        elif norm not in GOALS:
            raise CampaignError(f"Unknown campaign goal '{goal}'.",
                                hint=_closest_hint(norm, list(GOALS) + names, "goals (or playbook names)"),
                                field="goal")
        else:
            goal = norm
    chosen = [p for p in cat.playbooks if goal is None or p.goal == goal]
    if playbooks:
        chosen = [cat.get(n) for n in playbooks if goal is None or cat.get(n).goal == goal]
    if not chosen:
        raise CampaignError(f"The catalogue has no playbook for goal '{goal}'.",
                            hint="goals present: " + ", ".join(sorted({p.goal for p in cat.playbooks})), field="goal")
    _check_columns(customers)
    audience = select_audience(customers, filter)
    currency = settings.currency_symbol
    thresholds = tier_floors(customers)
    horizon = (audience["horizon_days"] if "horizon_days" in audience else pd.Series(settings.horizon_days,
                                                                                      index=audience.index))
    churn, value_at_risk, aov = value_inputs(audience)
    id_rank = audience["id_rank"].to_numpy() if "id_rank" in audience else None
    id_column = audience["customer_id"]
    ids = None
    if list_ids is None or id_rank is None:
        ids = id_column.to_numpy() if id_column.dtype == object else id_column.astype(str).to_numpy(dtype=object)

    def ids_at(positions: np.ndarray) -> list[str]:
        if ids is not None:
            return ids[positions].tolist()
        return [str(v) for v in id_column.iloc[positions].tolist()]

    # Candidate (customer, playbook) pairs with positive expected net value.
    cand_c, cand_p, cand_net, cand_cost, cand_rev = [], [], [], [], []
    eligible_counts: dict[str, int] = {}
    per_playbook_ev: list[dict[str, np.ndarray]] = []
    horizon = np.asarray(horizon, dtype=float)
    p_anyway = order_anyway(churn, horizon, cat.offer_window_days)
    ev_rows: list[np.ndarray] = []  # audience positions each playbook's values refer to
    for j, p in enumerate(chosen):
        mask = eligible_mask(p, audience, thresholds)
        # Expected value only where the playbook is eligible: most playbooks fit a small share of 1M.
        eligible_rows = np.flatnonzero(mask)
        ev = expected_value(p, churn_risk=churn[eligible_rows], value_at_risk=value_at_risk[eligible_rows],
                            aov=aov[eligible_rows], horizon_days=horizon[eligible_rows],
                            offer_window_days=cat.offer_window_days, p_order_anyway=p_anyway[eligible_rows])
        good = ev["expected_net_value"] > 0
        ev = {k: v[good] for k, v in ev.items()}
        rows = eligible_rows[good]
        per_playbook_ev.append(ev)
        ev_rows.append(rows)
        eligible_counts[p.name] = len(rows)
        cand_c.append(rows)
        cand_p.append(np.full(len(rows), j))
        cand_net.append(ev["expected_net_value"])
        cand_cost.append(ev["cost"])
        cand_rev.append(ev["expected_incremental_revenue"])
        eligible_counts[p.name + "/eligible"] = len(eligible_rows)
    c = np.concatenate(cand_c)
    pj = np.concatenate(cand_p)
    net = np.concatenate(cand_net)
    cost = np.concatenate(cand_cost)
    if len(c) == 0:
        detail = "; ".join(f"{p.name}: {eligible_counts[p.name + '/eligible']:,} eligible, "
                           f"{eligible_counts[p.name]:,} with positive net value" for p in chosen)
        raise CampaignError(
            f"No customer in the audience of {len(audience):,} is worth targeting: {detail}.",
            hint="widen the filter, choose another goal, or revise the catalogue's uplift and costs")

    assigned = np.full(len(audience), -1)
    if budget is None:
        _best_per_customer(assigned, c, pj, net, cost, len(chosen))
    else:
        if cost.min() > budget:
            raise CampaignError(
                f"A budget of {currency}{budget:,.2f} cannot pay for a single worthwhile contact; the cheapest "
                f"costs {currency}{cost.min():,.2f}.", hint=f"raise the budget to at least {currency}{cost.min():,.2f}",
                field="budget")
        _allocate_budget(assigned, c, pj, net, cost, budget)

    rng = np.random.default_rng(seed)
    results: list[CampaignResult] = []
    for j, p in enumerate(chosen):
        rows = np.flatnonzero(assigned == j)
        if len(rows) == 0:
            continue
        # Control groups are drawn in customer-id order, so the same seed picks the same people
        # whatever the table's row order; the planning frame carries each id's rank to sort by.
        rows = rows[np.argsort(id_rank[rows] if id_rank is not None else ids[rows], kind="stable")]
        n_control = int(round(holdout_share * len(rows)))
        if holdout_share > 0 and len(rows) >= 2:
            n_control = max(n_control, 1)
        n_control = min(n_control, len(rows) - 1)
        control_pos = np.zeros(len(rows), dtype=bool)
        control_pos[rng.choice(len(rows), size=n_control, replace=False)] = True
        treated, control = rows[~control_pos], rows[control_pos]
        ev = per_playbook_ev[j]
        at = np.searchsorted(ev_rows[j], treated)  # assigned customers are among the playbook's candidates
        t_net = ev["expected_net_value"][at]
        t_cost = float(ev["cost"][at].sum())
        t_rev = float(ev["expected_incremental_revenue"][at].sum())
        p_base = float(ev["p_order_anyway"][at].mean())
        listed = len(treated) if list_ids is None else min(list_ids, len(treated))
        if listed < len(treated):  # the best `listed` by net value, in the order a full sort gives them
            edge = -np.partition(-t_net, listed - 1)[listed - 1] if listed else np.inf  # the listed-th best
            top = np.flatnonzero(t_net >= edge)  # ties at the edge included, so the stable order is exact
            order_t = top[np.argsort(-t_net[top], kind="stable")][:listed]
        else:
            order_t = np.argsort(-t_net, kind="stable")
        # `control` is in id order already; a listing limit keeps its first ids.
        control_listed = control if list_ids is None else control[:list_ids]
        # Built from values computed here, so skip re-validating lists that can hold a million ids.
        results.append(CampaignResult.model_construct(
            name=p.name, description=p.description, goal=p.goal, channel=p.channel, offer=p.offer,
            offer_text=p.offer.describe(currency), audience_size=len(treated), eligible=eligible_counts[p.name],
            customer_ids=ids_at(treated[order_t]), expected_values=np.round(t_net[order_t], 2).tolist(),
            control_group_ids=ids_at(control_listed),
            control_group_size=len(control),
            ids_complete=listed == len(treated) and len(control_listed) == len(control), cost=round(t_cost, 2),
            expected_incremental_revenue=round(t_rev, 2), expected_net_value=round(t_rev - t_cost, 2),
            roi=round((t_rev - t_cost) / t_cost, 3) if t_cost > 0 else None, uplift=p.uplift,
            uplift_source=p.uplift_source.strip(), contact_cost=p.contact_cost,
            assumptions=_assumptions(p, cat, currency),
            measurement=_measurement(p, len(treated), len(control), p_base, cat.offer_window_days)))
    results.sort(key=lambda r: r.expected_net_value, reverse=True)
    total_cost = round(sum(r.cost for r in results), 2)
    notes = []
    if budget is not None:
        candidate = np.zeros(len(audience), dtype=bool)
        candidate[c] = True
        unfunded = int((candidate & (assigned < 0)).sum())
        if unfunded:
            notes.append(f"{unfunded:,} customers with a positive-value campaign were left out by the budget.")
        held = budget - total_cost
        if holdout_share > 0 and held > 0.005 * budget:
            notes.append(f"{currency}{held:,.2f} of the budget stays unspent because the control groups are "
                         "chosen from the funded customers and are not contacted.")
    plan = CampaignPlan(
        campaigns=results, total_cost=total_cost, budget=budget,
        expected_net_value=round(sum(r.expected_net_value for r in results), 2),
        expected_incremental_revenue=round(sum(r.expected_incremental_revenue for r in results), 2),
        audience_size=len(audience), targeted=sum(r.audience_size for r in results),
        control_size=sum(r.control_group_size for r in results), holdout_share=holdout_share, seed=seed,
        goal=goal, currency=currency, catalogue=cat.source,
        assumptions=[
            "expected net value = uplift x value gained - expected offer cost - contact cost, per customer",
            "each customer is offered at most one campaign; only positive expected net value is targeted",
            ("budget allocated greedily by expected net value per unit cost" if budget is not None else
             "no budget: each customer gets the campaign with the highest expected net value"),
            f"control groups: a seeded random {holdout_share:.0%} of each campaign's chosen customers (seed {seed})",
        ],
        notes=notes)
    plan._customers = customers
    return plan


# ---------------------------------------------------------------------------------------- export
AUDIENCE_COLUMNS = ("customer_id", "tier", "campaign", "offer", "products", "expected_value")


def _products_text(value: Any, sep: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    return sep.join(str(v) for v in value)


def _tier_text(tier: Any) -> str:
    return "" if tier is None or tier is pd.NA or (isinstance(tier, float) and math.isnan(tier)) else str(tier)


_EXPORT_CHUNK = 10_000


def _audience_rows(plan_or_customers: CampaignPlan | pd.DataFrame, customers: pd.DataFrame | None, *,
                   products: Mapping[str, Sequence[str]] | None, include_control: bool, campaign: str | None,
                   product_separator: str) -> Iterator[dict[str, Any]]:
    if isinstance(plan_or_customers, CampaignPlan):
        plan = plan_or_customers
        frame = customers if customers is not None else plan._customers
        lookup = None
        if frame is not None:
            cols = ["tier"] + (["suggested_products"] if "suggested_products" in frame else [])
            lookup = frame.assign(customer_id=frame["customer_id"].astype(str)).set_index("customer_id")[cols]
            lookup = lookup[~lookup.index.duplicated()]
        for camp in plan.campaigns:
            if campaign is not None and camp.name != campaign:
                continue
            groups = [(camp.customer_ids, camp.expected_values, camp.name, camp.offer_text)]
            if include_control:
                groups.append((camp.control_group_ids, [0.0] * len(camp.control_group_ids),
                               f"{camp.name} (control)", ""))
            for ids, values, name, offer in groups:
                # Look customers up a chunk at a time so memory stays flat however large the audience.
                for start in range(0, len(ids), _EXPORT_CHUNK):
                    part = ids[start:start + _EXPORT_CHUNK]
                    sub = lookup.reindex(part) if lookup is not None else None
                    tiers = sub["tier"].tolist() if sub is not None else [None] * len(part)
                    found = (sub["suggested_products"].tolist() if sub is not None and "suggested_products" in sub
                             else [None] * len(part))
                    for cid, value, tier, prods in zip(part, values[start:start + _EXPORT_CHUNK], tiers, found):
                        if products is not None:
                            prods = products.get(cid)
                        yield {"customer_id": cid, "tier": _tier_text(tier), "campaign": name, "offer": offer,
                               "products": _products_text(prods, product_separator),
                               "expected_value": round(float(value), 2)}
        return
    frame = plan_or_customers
    value_col = "predicted_value" if "predicted_value" in frame else None
    for start in range(0, len(frame), _EXPORT_CHUNK):
        for rec in frame.iloc[start:start + _EXPORT_CHUNK].to_dict("records"):
            cid = str(rec["customer_id"])
            prods = products.get(cid) if products is not None else rec.get("suggested_products")
            value = rec.get(value_col) if value_col else None
            yield {"customer_id": cid, "tier": _tier_text(rec.get("tier")), "campaign": "", "offer": "",
                   "products": _products_text(prods, product_separator),
                   "expected_value": round(float(value), 2) if value is not None and pd.notna(value) else ""}


def audience_rows(plan_or_customers: CampaignPlan | pd.DataFrame, customers: pd.DataFrame | None = None, *,
                  products: Mapping[str, Sequence[str]] | None = None, include_control: bool = False,
                  campaign: str | None = None, product_separator: str = "; ") -> Iterator[dict[str, Any]]:
    """One dict per exported customer (columns AUDIENCE_COLUMNS), produced lazily.

    With a plan: the treated customers of each campaign (only ``campaign`` if given; with
    ``include_control`` also the control group, as campaign '<name> (control)' with no offer). With a
    customers frame: every row, no campaign, expected value = predicted value. Bad arguments fail here,
    not at the first ``next()``.
    """
    if isinstance(plan_or_customers, CampaignPlan):
        if not all(c.ids_complete for c in plan_or_customers.campaigns):
            raise CampaignError("This plan lists only its first customers, so it cannot be exported.",
                                hint="plan again without list_ids to export every targeted customer")
        if campaign is not None and campaign not in {c.name for c in plan_or_customers.campaigns}:
            raise CampaignError(f"The plan has no campaign '{campaign}'.",
                                hint=_closest_hint(campaign, [c.name for c in plan_or_customers.campaigns],
                                                   "campaigns in this plan"), field="campaign")
    elif not isinstance(plan_or_customers, pd.DataFrame) or "customer_id" not in plan_or_customers:
        raise CampaignError("Cannot export an audience without a customer_id column.",
                            hint="pass a campaign plan or the customers table")
    return _audience_rows(plan_or_customers, customers, products=products, include_control=include_control,
                          campaign=campaign, product_separator=product_separator)


def iter_audience_csv(rows: Iterable[Mapping[str, Any]], *, chunk_rows: int = 5_000) -> Iterator[str]:
    """CSV text in chunks (header first) for streaming HTTP responses and downloads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(AUDIENCE_COLUMNS)
    for chunk in _batched(rows, chunk_rows):
        writer.writerows([row.get(c, "") for c in AUDIENCE_COLUMNS] for row in chunk)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _batched(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def write_audience_csv(rows: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    """Stream rows to ``path`` atomically (temp file + os.replace); returns the number of data rows.

    The file is created 0600 (owner only: it lists customers); a missing folder is created 0700."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    count = 0
    try:
        os.fchmod(fd, 0o600)  # mkstemp's mode already; stated so a different temp helper cannot widen it
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(AUDIENCE_COLUMNS)
            for chunk in _batched(rows, 5_000):
                writer.writerows([row.get(c, "") for c in AUDIENCE_COLUMNS] for row in chunk)
                count += len(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


# A temp file is written continuously while its export runs; one untouched this long was left by a
# process that died mid-write (a failed write removes its own).
EXPORT_TMP_GRACE_S = 600.0


def export_dir(data_dir: str | Path) -> Path:
    """``<data_dir>/exports``, created if needed and kept 0700 (exports list customers)."""
    folder = Path(data_dir) / "exports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o777 != 0o700:
        os.chmod(folder, 0o700)  # a folder made by an older version (0755)
    return folder


def prune_exports(folder: str | Path, max_age_hours: float, *, now: float | None = None) -> list[str]:
    """Delete audience exports (``*.csv``) older than ``max_age_hours`` and temp files (``.*.tmp``) that
    an interrupted export left behind; returns the names removed. Symlinks and folders are left alone,
    and a file that vanishes meanwhile (another process pruning) or cannot be removed is skipped: pruning
    never stops the export that triggered it."""
    now = time.time() if now is None else now
    max_age_s = float(max_age_hours) * 3600.0
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        is_tmp = name.startswith(".") and name.endswith(".tmp")
        if not (is_tmp or name.endswith(".csv")):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if age > (EXPORT_TMP_GRACE_S if is_tmp else max_age_s):
                os.unlink(entry.path)
                removed.append(name)
        except OSError:
            continue
    return removed


# ---------------------------------------------------------------------------------------- next best action
def value_inputs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(churn_risk, value_at_risk, aov) as float arrays with the one missing-value rule, per customer (so
    a customer's value never depends on who else is in the audience): unknown churn risk counts as a
    coin flip (0.5), unknown value at risk and order value as nothing (0)."""
    churn = frame["churn_risk"].to_numpy(dtype=float, na_value=np.nan)
    at_risk = frame["value_at_risk"].to_numpy(dtype=float, na_value=np.nan)
    aov = frame["aov"].to_numpy(dtype=float, na_value=np.nan) if "aov" in frame else np.zeros(len(frame))
    return np.where(np.isnan(churn), 0.5, churn), np.nan_to_num(at_risk), np.nan_to_num(aov)


def best_campaigns(frame: pd.DataFrame, catalogue: Catalogue, thresholds: Mapping[str, float],
                   default_horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every customer's next best action: (playbook index, -1 for none; its expected net value), the
    playbook with the highest positive expected net value, earlier playbooks winning ties. One pass per
    playbook over the whole table; `best_campaign_for` and the tools' lookup both come from here."""
    n = len(frame)
    horizon = (frame["horizon_days"].to_numpy(dtype=float, na_value=default_horizon)
               if "horizon_days" in frame else np.full(n, float(default_horizon)))
    churn, at_risk, aov = value_inputs(frame)
    best, best_net = np.full(n, -1, dtype=np.int16), np.zeros(n)
    for k, playbook in enumerate(catalogue.playbooks):
        if playbook.eligibility.max_gap_to_next_tier is not None and not thresholds:
            continue  # "near the next tier" cannot be judged without the tier floors
        eligible = eligible_mask(playbook, frame, thresholds)
        net = expected_value(playbook, churn_risk=churn, value_at_risk=at_risk, aov=aov, horizon_days=horizon,
                             offer_window_days=catalogue.offer_window_days)["expected_net_value"]
        better = eligible & (net > best_net)  # strictly: must be positive, and earlier playbooks win ties
        best[better] = k
        best_net[better] = net[better]
    return best, best_net


def describe_best(playbook: Playbook, net: float, *, tier: Any, lifecycle: Any, segment: Any, churn_risk: float,
                  currency: str) -> dict[str, Any]:
    """The next best action as the tools show it."""
    reason = (f"{playbook.description} Eligible as {tier} / {lifecycle} / {segment} with churn risk "
              f"{churn_risk:.0%}; assumes {playbook.uplift:.0%} uplift.")
    return {"campaign": playbook.name, "offer": playbook.offer.describe(currency), "channel": playbook.channel,
            "expected_net_value": round(float(net), 2), "reason": reason}


def best_campaign_for(customer: Mapping[str, Any], catalogue: Catalogue | None = None,
                      settings: Settings | None = None, *,
                      thresholds: Mapping[str, float] | None = None) -> dict[str, Any] | None:
    """The next best action of one customer (see `best_campaigns`).

    ``thresholds`` (lowest customer_value per tier, from the whole table) is needed to judge "near the
    next tier"; without it, playbooks with that rule are skipped rather than guessed.
    """
    settings = settings or get_settings()
    cat = catalogue if isinstance(catalogue, Catalogue) else load_catalogue(catalogue, settings=settings)
    if any(c not in customer for c in REQUIRED_COLUMNS):
        return None
    best, net = best_campaigns(pd.DataFrame([dict(customer)]), cat, thresholds or {}, settings.horizon_days)
    if best[0] < 0:
        return None
    return describe_best(cat.playbooks[int(best[0])], net[0], tier=customer.get("tier"),
                         lifecycle=customer.get("lifecycle"), segment=customer.get("rfm_segment"),
                         churn_risk=float(customer["churn_risk"]), currency=settings.currency_symbol)
