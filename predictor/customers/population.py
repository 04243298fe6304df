"""The population-level figures that tiers, lifecycle stages, the at-risk flag and RFM scores compare
each customer with, computed once from the whole scored population and then applied customer by customer.

One process computes them from its table (predictor.customers.tiers.apply_tiers). A partitioned engine
(predictor/engine/dask_customers.py) gathers only the columns in POPULATION_COLUMNS, computes the same
`PopulationStats` with the same functions (an exact reduce: no sketch, no approximation), and applies
them bucket by bucket, so every customer gets the tier, stage and scores one process would give.

- Quantile tiers: the customer at each threshold's position in the ranking by customer value (ties by
  customer id); a customer is in the tier's top share when ranked at or above that customer.
- RFM quintiles: a percentile rank (ties share their average rank) is monotone in the value, so the
  quintile of any value in the population is fixed by four boundary values.
- Lifecycle: the population cadence (median gap of repeat customers) and the churn-risk quantiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# The scores columns the population figures read (what a partitioned engine gathers).
POPULATION_COLUMNS = ["customer_id", "revenue_12m", "predicted_value", "orders", "mean_gap_days", "churn_risk",
                      "recency_days", "historical_value"]
# RFM: column -> whether a higher value scores higher (recency: the more recent, the better).
RFM_COLUMNS = {"recency_days": False, "orders": True, "historical_value": True}


@dataclass(frozen=True)
class TierBound:
    """The last customer inside a tier's top share: value, then customer id for ties."""

    tier: str
    value: float
    customer_id: str


@dataclass(frozen=True)
class PopulationStats:
    customers: int
    cadence_days: float
    churn: dict[str, float]
    tier_bounds: tuple[TierBound | None, ...] = ()  # per quantile threshold, top tier first; None: empty
    rfm_bounds: dict[str, tuple[float, ...]] = field(default_factory=dict)


def customer_value(scores: pd.DataFrame) -> pd.Series:
    return (scores["revenue_12m"].fillna(0.0) + scores["predicted_value"].fillna(0.0)).astype("float64")


def population_cadence(scores: pd.DataFrame, min_days: float = 7.0) -> float:
    gaps = scores.loc[scores["orders"] >= 2, "mean_gap_days"].dropna()
    return max(float(gaps.median()) if len(gaps) else 30.0, min_days)


def churn_quantiles(scores: pd.DataFrame, config) -> dict[str, float]:
    """The churn-risk levels the lifecycle rules use, from the population's quantiles."""
    churn = scores["churn_risk"].astype("float64")
    return {"active_below": float(churn.quantile(config.active_churn_quantile)),
            "lapsed_from": float(churn.quantile(config.lapsed_churn_quantile)),
            "lapsing_from": float(churn.quantile(config.lapsing_churn_quantile)),
            "at_risk_from": float(churn.quantile(config.at_risk_churn_quantile))}


def tier_bounds(scores: pd.DataFrame, tiers) -> tuple[TierBound | None, ...]:
    """For each quantile threshold (cumulative top share), the customer at its position in the ranking
    by customer value, highest first, ties by customer id; None where the share holds nobody."""
    if tiers.method != "quantile":
        return ()
    value = customer_value(scores).to_numpy()
    ids = scores["customer_id"].astype(str).to_numpy(dtype=object)
    n, bounds = len(value), []
    for name, share in tiers.thresholds:
        inside = min(math.floor(share * n + 0.5), n)
        if inside == 0:
            bounds.append(None)
            continue
        edge = -np.partition(-value, inside - 1)[inside - 1]  # the inside-th highest value
        tied = np.sort(ids[value == edge])  # the ranking's ties at the edge, by id
        bounds.append(TierBound(name, float(edge), str(tied[inside - int(np.count_nonzero(value > edge)) - 1])))
    return tuple(bounds)


def in_top_share(value: np.ndarray, ids: np.ndarray, bound: TierBound | None) -> np.ndarray:
    """Whether each customer ranks at or above `bound`."""
    if bound is None:
        return np.zeros(len(value), dtype=bool)
    return (value > bound.value) | ((value == bound.value) & (ids <= bound.customer_id))


def quintile_bounds(values: pd.Series, higher_is_better: bool) -> tuple[float, ...]:
    """The smallest (sign-adjusted) value scoring 2, 3, 4 and 5 on the percentile-rank quintile (average
    rank for ties, as pandas' rank(pct=True)); inf where no value does."""
    signed = values.astype("float64").dropna().to_numpy() * (1.0 if higher_is_better else -1.0)
    if not len(signed):
        return (math.inf,) * 4
    unique, counts = np.unique(signed, return_counts=True)
    below = np.cumsum(counts) - counts
    pct = ((2 * below + counts + 1) / 2) / len(signed)
    scores = np.clip(np.ceil(pct * 5), 1, 5)
    return tuple(float(unique[scores >= q][0]) if (scores >= q).any() else math.inf for q in (2, 3, 4, 5))


def quintile(values: pd.Series, bounds: tuple[float, ...], higher_is_better: bool) -> pd.Series:
    """1..5 for each value against the population's `bounds`; 1 for a missing value."""
    signed = values.astype("float64").to_numpy() * (1.0 if higher_is_better else -1.0)
    scores = 1 + np.searchsorted(np.asarray(bounds), signed, side="right")
    return pd.Series(np.where(np.isnan(signed), 1, scores).astype("int64"), index=values.index)


def rfm_bounds(scores: pd.DataFrame) -> dict[str, tuple[float, ...]]:
    return {column: quintile_bounds(scores[column], better) for column, better in RFM_COLUMNS.items()}


def population_stats(scores: pd.DataFrame, tiers, lifecycle) -> PopulationStats:
    """Every population figure the tier, lifecycle, at-risk and RFM rules need, from `scores` (the whole
    population, or just its POPULATION_COLUMNS)."""
    return PopulationStats(
        customers=len(scores), cadence_days=population_cadence(scores, lifecycle.min_cadence_days),
        churn=churn_quantiles(scores, lifecycle), tier_bounds=tier_bounds(scores, tiers),
        rfm_bounds=rfm_bounds(scores))
