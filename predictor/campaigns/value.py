"""Expected value of targeting a customer with a playbook, every term shown, and the one
missing-value rule for the customer columns it reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from predictor.campaigns.catalogue import RETENTION_GOALS, Playbook

# The customer columns campaign planning and the next best action read (eligibility and value).
REQUIRED_COLUMNS = ("customer_id", "tier", "lifecycle", "rfm_segment", "churn_risk", "value_at_risk",
                    "aov", "customer_value")


def tier_floors(customers: pd.DataFrame) -> dict[str, float]:
    """Lowest customer_value seen in each tier: what a customer must reach to be placed in it (the one
    definition; the tools cache it per table)."""
    present = customers.dropna(subset=["customer_value"]).groupby("tier", observed=True)["customer_value"].min()
    return {str(k): float(v) for k, v in present.items()}


class CustomerEV(BaseModel):
    """The expected-value arithmetic for one customer and one playbook, every term shown."""

    uplift: float
    p_order_anyway: float
    p_redeem: float
    value_gained: float
    expected_incremental_revenue: float
    offer_cost: float
    contact_cost: float
    cost: float
    expected_net_value: float


def expected_value(playbook: Playbook, *, churn_risk: Any, value_at_risk: Any, aov: Any,
                   horizon_days: Any, offer_window_days: int, lifecycle: Any = None,
                   p_order_anyway: np.ndarray | None = None, uplift: np.ndarray | float | None = None
                   ) -> dict[str, np.ndarray]:
    """Vectorised expected value of targeting customers with one playbook.

    P(order in window anyway) treats ordering as a constant-rate process over the scoring horizon, so
    1 - churn_risk ^ (window / horizon). Everyone who orders in the window redeems the offer. The
    uplift is the playbook's, or its figure for the customer's `lifecycle` stage where it names one
    (`uplift`, when given, is that per-customer figure already looked up).
    """
    aov = np.maximum(np.asarray(aov, dtype=float), 0.0)
    p_anyway = p_order_anyway if p_order_anyway is not None else order_anyway(churn_risk, horizon_days,
                                                                              offer_window_days)
    u = np.broadcast_to(np.asarray(playbook.uplift_for(lifecycle) if uplift is None else uplift, dtype=float),
                        np.shape(aov))
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
    return {"uplift": u, "p_order_anyway": p_anyway, "p_redeem": p_redeem, "value_gained": gained,
            "expected_incremental_revenue": revenue, "offer_cost": offer_cost,
            "contact_cost": np.full_like(revenue, playbook.contact_cost), "cost": cost,
            "expected_net_value": revenue - cost}


def order_anyway(churn_risk: Any, horizon_days: Any, offer_window_days: int) -> np.ndarray:
    """P(order in the offer window without the campaign); the same for every playbook, so planning
    computes it once."""
    churn = np.clip(np.asarray(churn_risk, dtype=float), 0.0, 1.0)
    return 1.0 - np.power(churn, offer_window_days / np.asarray(horizon_days, dtype=float))


def explain_customer_ev(playbook: Playbook, customer: Mapping[str, Any], offer_window_days: int = 30, *,
                        default_horizon: int) -> CustomerEV:
    """One customer's expected-value arithmetic; `default_horizon` (the served model's) applies only to a
    row without its own horizon_days."""
    ev = expected_value(playbook, churn_risk=[customer["churn_risk"]], value_at_risk=[customer["value_at_risk"]],
                        aov=[customer["aov"]], horizon_days=[customer.get("horizon_days", default_horizon)],
                        offer_window_days=offer_window_days, lifecycle=[customer.get("lifecycle")])
    return CustomerEV(**{k: float(v[0]) for k, v in ev.items()})


def value_inputs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(churn_risk, value_at_risk, aov) as float arrays with the one missing-value rule, per customer (so
    a customer's value never depends on who else is in the audience): unknown churn risk counts as a
    coin flip (0.5), unknown value at risk and order value as nothing (0)."""
    churn = frame["churn_risk"].to_numpy(dtype=float, na_value=np.nan)
    at_risk = frame["value_at_risk"].to_numpy(dtype=float, na_value=np.nan)
    aov = frame["aov"].to_numpy(dtype=float, na_value=np.nan) if "aov" in frame else np.zeros(len(frame))
    return np.where(np.isnan(churn), 0.5, churn), np.nan_to_num(at_risk), np.nan_to_num(aov)
