"""Every (customer, playbook) pair of an audience worth targeting: the customers each playbook's rule
admits and, among them, those with positive expected net value, with every expected-value term; for a
playbook nobody is worth, the best customer's gain and cost (what an empty plan reports)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from predictor.campaigns.catalogue import Catalogue, Playbook
from predictor.campaigns.eligibility import audience_table, eligible_mask
from predictor.campaigns.value import expected_value, order_anyway, value_inputs


@dataclass
class PlaybookCandidates:
    """One playbook's customers with positive expected net value: audience positions (ascending) and
    the expected-value terms at those positions."""

    playbook: Playbook
    rows: np.ndarray
    values: dict[str, np.ndarray]
    eligible: int  # customers its eligibility admits, worth it or not
    # The eligible customer with the highest expected net value: their expected gain and cost (nan if none).
    best_gain: float = float("nan")
    best_cost: float = float("nan")


# The expected-value terms a plan reads for the customers it keeps (planning._campaign_result).
KEPT_TERMS = ("expected_net_value", "cost", "expected_incremental_revenue", "p_order_anyway", "uplift")


@dataclass
class Candidates:
    """Every (customer, playbook) pair with positive expected net value, grouped by playbook in
    playbook order, customers ascending within each (the order the allocation relies on)."""

    per_playbook: list[PlaybookCandidates]
    customer: np.ndarray
    playbook: np.ndarray
    net: np.ndarray
    cost: np.ndarray

    def at(self, j: int) -> PlaybookCandidates:
        return self.per_playbook[j]


def playbook_candidates(audience: pd.DataFrame, chosen: Sequence[Playbook], cat: Catalogue,
                        thresholds: Mapping[str, float], default_horizon: int) -> Candidates:
    """The audience's worthwhile pairs for the chosen playbooks; `thresholds` are the tier floors."""
    horizon = (audience["horizon_days"] if "horizon_days" in audience else pd.Series(default_horizon,
                                                                                      index=audience.index))
    horizon = np.asarray(horizon, dtype=float)
    churn, value_at_risk, aov = value_inputs(audience)
    stages = audience["lifecycle"]
    # Read by its categorical codes (the planning frame's), so each playbook's per-stage uplift is a
    # lookup per stage and gathering a playbook's customers moves integers, not a Categorical.
    lifecycle = (stages.array if isinstance(stages.dtype, pd.CategoricalDtype)
                 else pd.Categorical(stages.astype("string").astype(object).astype(str)))
    stage_codes = lifecycle.codes
    p_anyway = order_anyway(churn, horizon, cat.offer_window_days)  # the same for every playbook
    per_playbook = []
    table = audience_table(audience)  # compiled once for every playbook's rule
    for p in chosen:
        # Expected value only where the playbook is eligible: most playbooks fit a small share of 1M.
        eligible_rows = np.flatnonzero(eligible_mask(p, table, thresholds))
        ev = expected_value(p, churn_risk=churn[eligible_rows], value_at_risk=value_at_risk[eligible_rows],
                            aov=aov[eligible_rows], horizon_days=horizon[eligible_rows],
                            offer_window_days=cat.offer_window_days, p_order_anyway=p_anyway[eligible_rows],
                            uplift=(p.uplift_by_code(lifecycle.categories)[stage_codes[eligible_rows]]
                                    if p.uplift_by_lifecycle else p.uplift))
        net = ev["expected_net_value"]
        good = np.flatnonzero(net > 0)  # positions, found once: a boolean cut per term would find them again
        kept = {k: ev[k].take(good) for k in KEPT_TERMS}  # only what the plan reads
        found = PlaybookCandidates(p, eligible_rows.take(good), kept, len(eligible_rows))
        if len(eligible_rows):
            best = int(np.argmax(net))
            found.best_gain, found.best_cost = (float(ev["expected_incremental_revenue"][best]),
                                                float(ev["cost"][best]))
        per_playbook.append(found)
    return Candidates(
        per_playbook, customer=np.concatenate([c.rows for c in per_playbook]),
        playbook=np.concatenate([np.full(len(c.rows), j) for j, c in enumerate(per_playbook)]),
        net=np.concatenate([c.values["expected_net_value"] for c in per_playbook]),
        cost=np.concatenate([c.values["cost"] for c in per_playbook]))
