"""Value tiers, lifecycle stages, RFM segments and value at risk (K-Means clusters: `clusters`; tier
moves between builds: `transitions`).

Everything here works on the scores frame of docs/CONTRACTS.md (one row per customer) and
adds columns; nothing re-reads transactions.

Rules (README text)
-------------------
* customer_value = revenue_12m + predicted_value: what the customer brought in over the last
  year plus what the model expects over the next horizon.
* Tiers (default `quantile`): thresholds are cumulative top shares of customers ranked by
  customer_value, "Platinum=0.01,Gold=0.05,Silver=0.20" = top 1% Platinum, next 4% Gold,
  next 15% Silver, the rest Bronze. With `amount`, thresholds are minimum customer values
  ("Platinum=10000,Gold=3000,Silver=1000"). A customer with no positive value is Bronze.
* Lifecycle, from recency relative to the customer's own cadence (mean days between orders;
  one-order customers get the population cadence, the median over repeat customers; at
  least 7 days) and the model's churn risk. Churn risk is compared with the population's
  own quantiles, because calibrated churn probabilities differ a lot between shops (on
  Online Retail a customer gone for a year still has only ~0.5-0.65). First rule that applies:
    new      one order, placed within the last 60 days;
    active   recency <= 1.5 x cadence and churn risk below the population's 75th percentile;
    lapsed   recency > 4 x cadence and churn risk at or above the population median;
    lapsing  recency > 2.5 x cadence, or churn risk in the population's top 10%;
    at risk  everything else (a little overdue, or the model doubts the next order).
  Customers far overdue whom the model still expects back (seasonal buyers) stay "lapsing".
* At risk (the one definition: every "at risk" the product says, filters, exports or targets is the
  `at_risk` column): lifecycle "at risk" or "lapsing" AND churn risk at or above the population's
  25th percentile. The stage says the customer is overdue against their own cadence; the churn floor
  drops those the model is nearly sure will order again. On Online Retail (4,333 customers) the stages
  hold 956 customers, of whom 25 have churn risk under 6.8% (two Platinum customers at 2-4%, Gold ones
  at 0.5%): a marketer told "at risk" would chase them for nothing. 931 remain, 7 of them Gold.
* RFM: r, f, m scores 1..5 are percentile-rank quintiles of recency (recent = 5), orders and
  historical value; ties share a score. Segments come from r and fm = round((f + m) / 2)
  on the standard RFM grid (rows r = 5..1, columns fm = 1..5), see RFM_GRID.
* value_if_retained: what the customer is expected to spend over the horizon if they do
  order again. Since spend is 0 without an order, E[value] = P(order) x E[value | order],
  so E[value | order] = predicted_value / (1 - churn_risk). Dividing by a small P(order)
  amplifies model noise, so it is capped at the customer's own historical spend rate over
  the horizon (historical_value per day since the first order, at least 30 days, times
  horizon_days) or one average order, whichever is larger, and never below predicted_value.
* value_at_risk = churn_risk x value_if_retained.
* Top customers at risk are ranked by churn_risk x (historical_value + value_if_retained):
  value to the business times the chance of losing it, never by predicted value alone (a
  customer about to churn has a low predicted value, which is why they matter).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, field_validator, model_validator

from predictor.customers.population import (PopulationStats, churn_quantiles, customer_value, in_top_share,
                                            population_cadence, population_stats, quintile, rfm_bounds,
                                            tier_bounds)
from predictor.errors import ValueDeskError

TIER_ORDER = ["Platinum", "Gold", "Silver", "Bronze"]
LIFECYCLE_STAGES = ["new", "active", "at risk", "lapsing", "lapsed"]
RFM_SEGMENTS = ["Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention",
                "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost"]

# Rows: r = 5 (most recent) .. 1; columns: fm = 1 .. 5. The widely used RFM map, with
# "Lost" for the least recent, least valuable cell.
RFM_GRID: dict[int, list[str]] = {
    5: ["New", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"],
    4: ["Promising", "Potential Loyalist", "Potential Loyalist", "Loyal", "Loyal"],
    3: ["About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"],
    2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
    1: ["Lost", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
}


class TierConfigError(ValueDeskError):
    """Tier thresholds that cannot be parsed or are not ordered."""


class TierConfig(BaseModel):
    """How customers are split into value tiers. Thresholds are ordered from the top tier down."""

    method: Literal["quantile", "amount"] = "quantile"
    thresholds: list[tuple[str, float]] = Field(
        default_factory=lambda: [("Platinum", 0.01), ("Gold", 0.05), ("Silver", 0.20)])
    base_tier: str = "Bronze"

    @field_validator("thresholds")
    @classmethod
    def _non_empty(cls, v: list[tuple[str, float]]) -> list[tuple[str, float]]:
        if not v:
            raise ValueError("at least one tier threshold is needed, e.g. 'Platinum=0.01,Gold=0.05,Silver=0.20'")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> TierConfig:
        values = [t for _, t in self.thresholds]
        names = [n for n, _ in self.thresholds] + [self.base_tier]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        if self.method == "quantile":
            if any(not 0 < v <= 1 for v in values) or any(b <= a for a, b in zip(values, values[1:])):
                raise ValueError("quantile thresholds are cumulative top shares in (0, 1], increasing from the "
                                 f"top tier down (e.g. Platinum=0.01,Gold=0.05,Silver=0.20); got {self.thresholds}")
        elif any(v < 0 for v in values) or any(b >= a for a, b in zip(values, values[1:])):
            raise ValueError("amount thresholds are minimum customer values, decreasing from the top tier down "
                             f"(e.g. Platinum=10000,Gold=3000,Silver=1000); got {self.thresholds}")
        return self

    @property
    def tiers(self) -> list[str]:
        return [n for n, _ in self.thresholds] + [self.base_tier]

    @classmethod
    def parse(cls, method: str, text: str) -> TierConfig:
        """From the settings strings: method 'quantile'|'amount', text 'Name=value,...' top tier first."""
        pairs: list[tuple[str, float]] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            try:
                if not sep or not name.strip():
                    raise ValueError
                pairs.append((name.strip(), float(value)))
            except ValueError:
                raise TierConfigError(f"bad tier threshold '{part}' in '{text}': expected Name=number, "
                                      "e.g. Platinum=0.01,Gold=0.05,Silver=0.20") from None
        try:
            return cls(method=method, thresholds=pairs)  # type: ignore[arg-type]
        except ValueError as exc:
            raise TierConfigError(f"invalid tier settings (VALUEDESK_TIER_METHOD / VALUEDESK_TIER_THRESHOLDS): "
                                  f"{exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc}") from None

    @classmethod
    def from_settings(cls, settings) -> TierConfig:
        return cls.parse(settings.tier_method, settings.tier_thresholds)


class LifecycleConfig(BaseModel):
    new_window_days: float = 60.0
    min_cadence_days: float = 7.0
    active_ratio: float = 1.5
    lapsing_ratio: float = 2.5
    lapsed_ratio: float = 4.0
    # Churn-risk thresholds as quantiles of the population's churn risk (see the module docstring).
    active_churn_quantile: float = Field(0.75, gt=0, le=1)
    lapsed_churn_quantile: float = Field(0.5, gt=0, le=1)
    lapsing_churn_quantile: float = Field(0.9, gt=0, le=1)
    at_risk_churn_quantile: float = Field(0.25, ge=0, le=1)


# The lifecycle stages an at-risk customer is in (see `flag_at_risk`).
AT_RISK_STAGES = ("at risk", "lapsing")


def assign_tiers(scores: pd.DataFrame, config: TierConfig | None = None,
                 stats: PopulationStats | None = None) -> pd.Series:
    """Tier per customer (index aligned with `scores`), from customer_value; `stats` are the population's
    figures when `scores` is only part of it (predictor.customers.population)."""
    config = config or TierConfig()
    value = customer_value(scores)
    tier = pd.Series(config.base_tier, index=scores.index, dtype="object")
    if config.method == "quantile":
        # Ranked by value, ties broken by customer id so the split is the same on every run.
        bounds = stats.tier_bounds if stats is not None else tier_bounds(scores, config)
        ids = scores["customer_id"].astype(str).to_numpy(dtype=object)
        for (name, _), bound in reversed(list(zip(config.thresholds, bounds))):
            tier[in_top_share(value.to_numpy(), ids, bound)] = name
    else:
        for name, amount in reversed(config.thresholds):
            tier[value >= amount] = name
    tier[value <= 0] = config.base_tier
    return tier.astype(pd.CategoricalDtype(config.tiers, ordered=True)).astype("string")


def cadence_days(scores: pd.DataFrame, config: LifecycleConfig | None = None,
                 population: float | None = None) -> pd.Series:
    """Each customer's own mean gap between orders; the population's (`population`, or that of
    `scores`) for one-order customers."""
    config = config or LifecycleConfig()
    pop = population if population is not None else population_cadence(scores, config.min_cadence_days)
    own = scores["mean_gap_days"].where(scores["orders"] >= 2)
    return own.fillna(pop).clip(lower=config.min_cadence_days).astype("float64")


def churn_thresholds(scores: pd.DataFrame, config: LifecycleConfig | None = None) -> dict[str, float]:
    """The churn-risk levels the lifecycle rules use, from the population's quantiles."""
    return churn_quantiles(scores, config or LifecycleConfig())


def assign_lifecycle(scores: pd.DataFrame, config: LifecycleConfig | None = None,
                     stats: PopulationStats | None = None) -> pd.Series:
    """Lifecycle stage per customer by the rules in the module docstring."""
    config = config or LifecycleConfig()
    ratio = scores["recency_days"].astype("float64") / cadence_days(
        scores, config, stats.cadence_days if stats is not None else None)
    churn = scores["churn_risk"].astype("float64")
    t = stats.churn if stats is not None else churn_thresholds(scores, config)
    conditions = [
        (scores["orders"] <= 1) & (scores["recency_days"] <= config.new_window_days),
        (ratio <= config.active_ratio) & (churn < t["active_below"]),
        (ratio > config.lapsed_ratio) & (churn >= t["lapsed_from"]),
        (ratio > config.lapsing_ratio) | (churn >= t["lapsing_from"]),
    ]
    stage = np.select(conditions, ["new", "active", "lapsed", "lapsing"], default="at risk")
    return pd.Series(stage, index=scores.index, dtype="string")


def flag_at_risk(scores: pd.DataFrame, lifecycle: pd.Series, config: LifecycleConfig | None = None,
                 stats: PopulationStats | None = None) -> pd.Series:
    """The one definition of "at risk" (module docstring): an at-risk lifecycle stage and churn risk at
    or above the population's `at_risk_churn_quantile`."""
    churn = scores["churn_risk"].astype("float64")
    floor = (stats.churn if stats is not None else churn_thresholds(scores, config))["at_risk_from"]
    return (lifecycle.isin(AT_RISK_STAGES) & (churn >= floor)).fillna(False).astype(bool)


def rfm_scores(scores: pd.DataFrame, stats: PopulationStats | None = None) -> pd.DataFrame:
    """r_score, f_score, m_score (1..5) and rfm_segment: percentile-rank quintiles in the population."""
    bounds = stats.rfm_bounds if stats is not None else rfm_bounds(scores)
    r = quintile(scores["recency_days"], bounds["recency_days"], higher_is_better=False)
    f = quintile(scores["orders"], bounds["orders"], higher_is_better=True)
    m = quintile(scores["historical_value"], bounds["historical_value"], higher_is_better=True)
    fm = np.floor((f + m) / 2 + 0.5).astype("int64")
    segment = [RFM_GRID[int(ri)][int(fi) - 1] for ri, fi in zip(r, fm)]
    return pd.DataFrame({"r_score": r, "f_score": f, "m_score": m,
                         "rfm_segment": pd.Series(segment, index=scores.index, dtype="string")},
                        index=scores.index)


def value_if_retained(scores: pd.DataFrame, min_p_order: float = 0.02) -> pd.Series:
    """Expected spend over the horizon if the customer orders again (see module docstring)."""
    predicted = scores["predicted_value"].astype("float64").clip(lower=0)
    p_order = (1.0 - scores["churn_risk"].astype("float64")).clip(lower=min_p_order)
    conditional = predicted / p_order
    horizon = scores["horizon_days"].astype("float64")
    active_days = scores["tenure_days"].astype("float64").clip(lower=30.0)
    run_rate = scores["historical_value"].astype("float64").clip(lower=0) / active_days * horizon
    cap = np.maximum(np.maximum(run_rate, scores["aov"].astype("float64").clip(lower=0)), predicted)
    return np.minimum(conditional, cap).fillna(0.0).astype("float64")


def add_value_at_risk(scores: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=scores.index)
    out["value_if_retained"] = value_if_retained(scores)
    out["value_at_risk"] = scores["churn_risk"].astype("float64") * out["value_if_retained"]
    return out


def at_risk_priority(customers: pd.DataFrame) -> pd.Series:
    """churn_risk x (historical_value + value_if_retained): value to the business times risk."""
    base = customers["historical_value"].astype("float64").clip(lower=0) + customers["value_if_retained"]
    return customers["churn_risk"].astype("float64") * base


def top_at_risk(customers: pd.DataFrame, n: int = 20, min_churn_risk: float | None = None) -> pd.DataFrame:
    """The n at-risk customers most worth saving: high value to the business and likely to churn.

    Candidates: the `at_risk` customers (the one definition), with churn risk >= `min_churn_risk` when
    given. Ranked by at_risk_priority = churn_risk x (historical_value + value_if_retained).
    """
    keep = customers["at_risk"].astype(bool)
    if min_churn_risk is not None:
        keep &= customers["churn_risk"].astype("float64") >= min_churn_risk
    frame = customers.loc[keep]
    frame = frame.assign(at_risk_priority=at_risk_priority(frame))
    return frame.sort_values(["at_risk_priority", "customer_id"], ascending=[False, True]).head(n)


def apply_tiers(scores: pd.DataFrame, config: TierConfig | None = None,
                lifecycle: LifecycleConfig | None = None, stats: PopulationStats | None = None) -> pd.DataFrame:
    """Scores plus tier, lifecycle, at_risk, RFM, customer_value, value_if_retained, value_at_risk.
    `stats`: the whole population's figures when `scores` is one bucket of it (default: from `scores`)."""
    config, lifecycle = config or TierConfig(), lifecycle or LifecycleConfig()
    stats = stats or population_stats(scores, config, lifecycle)
    out = scores.copy()
    out["customer_value"] = customer_value(scores)
    out["tier"] = assign_tiers(scores, config, stats)
    out["lifecycle"] = assign_lifecycle(scores, lifecycle, stats)
    out["at_risk"] = flag_at_risk(scores, out["lifecycle"], lifecycle, stats)
    out = out.join(rfm_scores(scores, stats)).join(add_value_at_risk(scores))
    return out


# The spread of a value within each group (tier, lifecycle, ...): P10, P25, median, P75, P90.
VALUE_QUANTILES = {"p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9}


def quantiles_by_group(values: np.ndarray, codes: np.ndarray, k: int,
                       descending: np.ndarray | None = None) -> list[dict[str, float] | None]:
    """VALUE_QUANTILES of `values` within each of the `k` groups `codes` names (0..k-1; -1 leaves a row out;
    NaN values are left out), interpolated as numpy's default (linear); None for a group with no value.

    `descending` may pass the rows already ordered by value, highest first (a cached sort order): each
    group is then one stable pass over small integer codes, not a float sort per call."""
    values = np.asarray(values, dtype=float)
    if descending is None:
        descending = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
    ordered, groups = values[descending], np.asarray(codes)[descending]
    keep = ~np.isnan(ordered) & (groups >= 0)
    ordered, groups = ordered[keep], groups[keep].astype(np.int16 if k < 2 ** 15 else np.int64)
    by_group = np.argsort(groups, kind="stable")  # each group's values stay highest first
    ordered, bounds = ordered[by_group], np.searchsorted(groups[by_group], np.arange(k + 1))
    out: list[dict[str, float] | None] = []
    for g in range(k):
        run = ordered[bounds[g]:bounds[g + 1]][::-1]  # lowest first: numpy's linear quantile, read off the run
        out.append({key: round(_sorted_quantile(run, q), 2) for key, q in VALUE_QUANTILES.items()}
                   if len(run) else None)
    return out


def _sorted_quantile(run: np.ndarray, q: float) -> float:
    pos = q * (len(run) - 1)
    low = int(math.floor(pos))
    high = min(low + 1, len(run) - 1)
    return float(run[low] + (run[high] - run[low]) * (pos - low))
