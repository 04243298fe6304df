"""The next best action of a customer: the playbook with the highest positive expected net value,
for the whole table at once (`best_campaigns`) or one customer (`best_campaign_for`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.campaigns.catalogue import Catalogue, Playbook, load_catalogue
from predictor.campaigns.eligibility import audience_table, eligible_mask
from predictor.customers.audience_engine import AudienceTable
from predictor.campaigns.value import REQUIRED_COLUMNS, expected_value, value_inputs
from predictor.settings import Settings


def best_campaigns(customers: pd.DataFrame | AudienceTable, catalogue: Catalogue, thresholds: Mapping[str, float],
                   default_horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every customer's next best action: (playbook index, -1 for none; its expected net value), the
    playbook with the highest positive expected net value, earlier playbooks winning ties. One pass per
    playbook over the whole table; `best_campaign_for` and the tools' lookup both come from here."""
    table = audience_table(customers)  # the tools pass the table they already compiled
    frame = table.frame
    n = len(frame)
    horizon = (frame["horizon_days"].to_numpy(dtype=float, na_value=default_horizon)
               if "horizon_days" in frame else np.full(n, float(default_horizon)))
    churn, at_risk, aov = value_inputs(frame)
    lifecycle = frame["lifecycle"].to_numpy() if "lifecycle" in frame else None
    best, best_net = np.full(n, -1, dtype=np.int16), np.zeros(n)
    for k, playbook in enumerate(catalogue.playbooks):
        if playbook.eligibility.max_gap_to_next_tier is not None and not thresholds:
            continue  # "near the next tier" cannot be judged without the tier floors
        eligible = eligible_mask(playbook, table, thresholds)
        net = expected_value(playbook, churn_risk=churn, value_at_risk=at_risk, aov=aov, horizon_days=horizon,
                             offer_window_days=catalogue.offer_window_days, lifecycle=lifecycle)["expected_net_value"]
        better = eligible & (net > best_net)  # strictly: must be positive, and earlier playbooks win ties
        best[better] = k
        best_net[better] = net[better]
    return best, best_net


def describe_best(playbook: Playbook, net: float, *, tier: Any, lifecycle: Any, segment: Any, churn_risk: float,
                  currency: str) -> dict[str, Any]:
    """The next best action as the tools show it."""
    reason = (f"{playbook.description.strip()} Eligible as {tier} / {lifecycle} / {segment} with churn risk "
              f"{churn_risk:.0%}; assumes {playbook.stage_uplift(lifecycle):.0%} uplift.")
    return {"campaign": playbook.name, "offer": playbook.offer.describe(currency), "channel": playbook.channel,
            "expected_net_value": round(float(net), 2), "reason": reason}


def best_campaign_for(customer: Mapping[str, Any], catalogue: Catalogue | str | Path | None, settings: Settings, *,
                      thresholds: Mapping[str, float] | None = None) -> dict[str, Any] | None:
    """The next best action of one customer (see `best_campaigns`).

    ``thresholds`` (lowest customer_value per tier, from the whole table) is needed to judge "near the
    next tier"; without it, playbooks with that rule are skipped rather than guessed. ``settings`` gives
    the horizon of a customer without one, the currency, and the catalogue when none is passed.
    """
    cat = catalogue if isinstance(catalogue, Catalogue) else load_catalogue(catalogue, settings=settings)
    if any(c not in customer for c in REQUIRED_COLUMNS):
        return None
    best, net = best_campaigns(pd.DataFrame([dict(customer)]), cat, thresholds or {}, settings.horizon_days)
    if best[0] < 0:
        return None
    return describe_best(cat.playbooks[int(best[0])], net[0], tier=customer.get("tier"),
                         lifecycle=customer.get("lifecycle"), segment=customer.get("rfm_segment"),
                         churn_risk=float(customer["churn_risk"]), currency=settings.currency_symbol)
