"""Who a campaign may reach: the audience a marketer's filter selects (an empty result says which
filter step emptied it) and the customers a playbook's eligibility rule admits. Both select rows on
the one audience engine (predictor.customers.audience_engine); only the next-tier gap rule, which
needs the tier floors, is computed here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from predictor.campaigns.catalogue import CampaignError, Playbook, closest_hint
from predictor.campaigns.wording import article, describe_customers, filter_spec, trail_words
from predictor.customers.audience import TIERS, CustomerFilter, FilterError, parse_conditions
from predictor.customers.audience_engine import AudienceTable

# The marketer's filter fields in the order an explanation reads them (names first, then ranges).
_STEP_ORDER = ("tiers", "lifecycle", "at_risk", "segments", "countries", "min_churn_risk", "max_churn_risk", "min_value",
               "max_value", "min_recency_days", "max_recency_days")


def audience_table(customers: pd.DataFrame | AudienceTable) -> AudienceTable:
    """The customers compiled for selection (a table compiled by the caller is reused as it is)."""
    return customers if isinstance(customers, AudienceTable) else AudienceTable(customers)


def as_filter(filter: CustomerFilter | Mapping[str, Any] | None) -> CustomerFilter | None:
    if filter is None or isinstance(filter, CustomerFilter):
        return filter
    unknown = sorted(set(filter) - set(CustomerFilter.model_fields))
    if unknown:
        # A silently ignored key would widen the audience to people the marketer meant to exclude.
        raise CampaignError(f"Unknown audience filter field(s) {unknown}.",
                            hint=closest_hint(unknown[0], list(CustomerFilter.model_fields), "filter fields"),
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


def select_audience(customers: pd.DataFrame | AudienceTable,
                    filter: CustomerFilter | Mapping[str, Any] | None, *, currency: str = "") -> pd.DataFrame:
    """Customers matching the filter; an empty result is an error (step "audience") that says in words
    which filter step emptied it, with the count left after each step."""
    flt = as_filter(filter)
    table = audience_table(customers)
    frame = table.frame
    if flt is None or flt.is_empty():
        if frame.empty:
            raise CampaignError("The customers table is empty, so there is nobody to target.",
                                hint="run `valuedesk build` on a transaction file first")
        return frame
    keep = np.ones(len(table), dtype=bool)
    steps = []
    for field in _STEP_ORDER:
        value = getattr(flt, field)
        if value is None:
            continue
        before = keep.copy()
        for condition in CustomerFilter(**{field: value}).conditions():
            keep &= table.condition_mask(condition)
        steps.append((field, value, int(keep.sum())))
        if not keep.any():
            who = describe_customers(filter_spec(flt), currency=currency, singular=True)
            raise CampaignError(
                f"No customer is {article(who)}: {trail_words(len(frame), steps, currency=currency)}.",
                hint=_empty_hint(frame[before], field), field=field, step="audience")
    return frame[keep]


def _empty_hint(frame: pd.DataFrame, field: str) -> str:
    column = {"tiers": "tier", "lifecycle": "lifecycle", "segments": "rfm_segment", "countries": "country"}.get(field)
    if column and column in frame and len(frame):
        counts = frame[column].astype("string").value_counts().head(6)
        shown = ", ".join(f"{k} {v:,}" for k, v in counts.items())
        return f"before that step the audience held: {shown}; widen '{field}' or drop an earlier filter"
    return f"relax '{field}' or drop an earlier filter"


def rule_conditions(playbook: Playbook) -> list:
    """A playbook's eligibility rule (all but the next-tier gap) in the audience engine's terms."""
    rule = playbook.eligibility
    bounds = lambda low, high: {op: v for op, v in ((">=", low), ("<=", high)) if v is not None} or None  # noqa: E731
    return parse_conditions({"tier": rule.tiers, "lifecycle": rule.lifecycle, "at_risk": rule.at_risk,
                             "segment": rule.segments,
                             "churn_risk": bounds(rule.min_churn_risk, rule.max_churn_risk),
                             rule.value_field: bounds(rule.min_value, rule.max_value)})


def eligible_mask(playbook: Playbook, customers: pd.DataFrame | AudienceTable,
                  thresholds: Mapping[str, float]) -> np.ndarray:
    """Which customers the playbook's rule admits; `thresholds` are the tier floors (value.tier_floors)."""
    rule = playbook.eligibility
    table = audience_table(customers)
    if (rule.min_value is not None or rule.max_value is not None) and not table.has(rule.value_field):
        raise CampaignError(f"Playbook '{playbook.name}' bounds '{rule.value_field}', which the customers "
                            "table lacks.", hint="rebuild the customers table with `valuedesk build`",
                            playbook=playbook.name, field="eligibility.value_field")
    keep = table.mask(rule_conditions(playbook)).copy()
    if rule.max_gap_to_next_tier is not None:
        frame = table.frame
        next_tier = {TIERS[i + 1]: TIERS[i] for i in range(len(TIERS) - 1)}
        target = _next_tier_floor(frame["tier"], {t: thresholds.get(up, np.nan) for t, up in next_tier.items()})
        value = frame["customer_value"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = (target - value) / target
        keep &= np.isfinite(gap) & (gap > 0) & (gap <= rule.max_gap_to_next_tier)
    return keep


def _next_tier_floor(tiers: pd.Series, floor_above: Mapping[str, float]) -> np.ndarray:
    """Each customer's floor of the tier above theirs (nan for the top tier or an unknown one). A
    categorical tier column is read by its codes: one lookup per tier, not per customer."""
    stages = tiers.array if isinstance(tiers.dtype, pd.CategoricalDtype) else pd.Categorical(tiers.astype(str))
    per_tier = np.array([floor_above.get(str(c), np.nan) for c in stages.categories] + [np.nan], dtype=float)
    return per_tier[stages.codes]  # a missing tier (code -1) takes the last entry: nan
