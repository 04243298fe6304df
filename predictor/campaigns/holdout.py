"""Control groups: a seeded random share of each campaign's chosen customers is held out (not contacted,
not costed) so the campaign's real lift can be measured, and the text that says how to measure it."""

from __future__ import annotations

import math

import numpy as np

from predictor.campaigns.catalogue import Playbook


def control_size(chosen: int, holdout_share: float) -> int:
    """Customers held out of `chosen`: the share rounded, at least one when there is a share and two or
    more customers, and never everyone (someone must be treated)."""
    size = int(round(holdout_share * chosen))
    if holdout_share > 0 and chosen >= 2:
        size = max(size, 1)
    return min(size, chosen - 1)


def split_control(rows: np.ndarray, holdout_share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(treated, control) out of one campaign's chosen `rows`. The rows come in customer-id order, so
    the same seed picks the same people whatever the table's row order."""
    in_control = np.zeros(len(rows), dtype=bool)
    in_control[rng.choice(len(rows), size=control_size(len(rows), holdout_share), replace=False)] = True
    return rows[~in_control], rows[in_control]


def measurement_text(p: Playbook, treated: int, control: int, p_base: float, window: int,
                     uplift: float | None = None) -> str:
    """How to read the campaign's lift off its control group, with the smallest lift the sizes can detect;
    `uplift` is the lift assumed for these customers (default the playbook's)."""
    uplift = p.uplift if uplift is None else uplift
    if control == 0:
        return (f"No control group was reserved (holdout_share 0), so the lift of '{p.name}' cannot be measured "
                "causally; rerun the plan with a holdout share above 0 to measure it.")
    # Minimum detectable lift for a two-proportion test, alpha 0.05 two-sided, power 0.8.
    pb = min(max(p_base, 0.01), 0.99)
    mde = (1.959964 + 0.841621) * math.sqrt(pb * (1 - pb) * (1 / treated + 1 / control))
    return (f"Contact the {treated:,} treated customers only; do not contact the {control:,} control customers. "
            f"After {window} days compare the share who ordered and the revenue per customer between the two "
            f"groups: lift = treated rate - control rate (assumed {uplift:.1%}), incremental revenue = "
            f"(treated mean - control mean) x {treated:,}. With these group sizes a lift of about {mde:.1%} or "
            "more is detectable (two-proportion test, 5% significance, 80% power); smaller true lifts need a "
            "larger holdout.")
