"""Per-customer drivers from xgboost's own feature contributions (pred_contribs), in a marketer's words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb

from predictor.figures import duration, name, pct, rhythm, times, whole_money

# Features grouped into the ideas a marketer recognises; a group's contribution is the sum of its members'.
DRIVER_GROUPS: dict[str, tuple[str, ...]] = {
    "recent_spend": ("spend_30d", "spend_90d", "spend_180d", "trend_90d", "orders_90d", "last_period_value"),
    "frequency": ("frequency", "orders_180d", "orders_365d", "bg_expected_orders"),
    "recency": ("recency_days", "recency_over_gap", "last_gap_days", "bg_p_alive", "bg_churn_risk"),
    "cadence": ("mean_gap_days", "gap_cv"),
    "spend_level": ("monetary_total", "aov", "max_order_value", "bg_predicted_value", "spend_365d"),
    "breadth": ("distinct_products", "distinct_categories", "top_category_share", "items_per_order"),
    "tenure": ("tenure_days", "history_days"),
    "cancellations": ("cancel_share",),
    "season": ("spend_same_window_last_year",),
}
# Below this usual gap (in days) the "rhythm" is repeat orders within a few days, not a buying cycle.
SHORT_GAP_DAYS = 7


def _recency(row: pd.Series) -> str:
    """How long since the last order, against the customer's own rhythm, as a marketer would say it.

    A usual gap of a few days comes from repeat orders in one burst (same-day or next-day reorders), so
    "372x their usual gap of 1 day" would only measure that burst: such customers get their old rhythm in
    words instead, and any ratio beyond 10x reads "far longer than" rather than a silly multiple."""
    recency, gap = row["recency_days"], row.get("mean_gap_days")
    since = f"last order {duration(recency)} ago"
    if pd.isna(gap) or gap <= 0:
        return since
    if gap < SHORT_GAP_DAYS:
        return f"{since}; before that they ordered {rhythm(gap)}"
    ratio = recency / gap
    if ratio >= 10:
        return f"{since}, far longer than their usual gap of {duration(gap)}"
    if ratio >= 1.5:
        return f"{since}, {times(ratio)} their usual gap of {duration(gap)}"
    return f"{since}, within their usual gap of {duration(gap)}"


def _phrase(group: str, row: pd.Series, currency: str) -> str:
    if group == "recent_spend":
        trend = row.get("trend_90d")
        rate = f", {times(trend)} their usual rate" if pd.notna(trend) and trend > 0 else ""
        return f"spent {whole_money(row['spend_90d'], currency)} in the last 90 days{rate}"
    if group == "frequency":
        return f"{int(row['frequency'])} orders in {duration(row['tenure_days'])}"
    if group == "recency":
        return _recency(row)
    if group == "cadence":
        if pd.isna(row.get("mean_gap_days")):
            return "only one purchase day so far, no buying rhythm yet"
        regular = "regular" if pd.notna(row.get("gap_cv")) and row["gap_cv"] < 0.6 else "irregular"
        return f"usually orders {rhythm(row['mean_gap_days'])} ({regular})"
    if group == "spend_level":
        return (f"{name('monetary_total')} {whole_money(row['monetary_total'], currency)} (before cancellations), "
                f"{name('aov')} {whole_money(row['aov'], currency)}")
    if group == "breadth":
        if pd.isna(row.get("distinct_products")):
            if pd.isna(row.get("items_per_order")):
                return "basket size and product range (no product detail recorded)"
            return f"{row.get('items_per_order', 0):.0f} items per order"
        cats = "" if pd.isna(row.get("distinct_categories")) else f" across {int(row['distinct_categories'])} categories"
        return f"buys {int(row['distinct_products'])} different products{cats}"
    if group == "tenure":
        return f"customer for {duration(row['tenure_days'])}"
    if group == "cancellations":
        return f"cancelled {pct(row['cancel_share'])} of what they ordered"
    if group == "season":
        return f"spent {whole_money(row['spend_same_window_last_year'], currency)} in the same season last year"
    raise KeyError(group)


def _grouped(contribs: np.ndarray, columns: list[str]) -> dict[str, np.ndarray]:
    """Sum per-feature contributions (bias column already dropped) into the driver groups."""
    groups = {}
    for group, members in DRIVER_GROUPS.items():
        idx = [columns.index(m) for m in members if m in columns]
        if idx:
            groups[group] = contribs[:, idx].sum(axis=1)
    return groups


def group_contributions(booster: xgb.Booster, features: pd.DataFrame) -> pd.DataFrame:
    """Contribution of each driver group to each customer's prediction (margin scale; bias dropped)."""
    # A float array with names avoids xgboost's slow pandas path (it dominates a one-customer rescore).
    matrix = xgb.DMatrix(features.to_numpy(dtype=np.float32), feature_names=list(features.columns),
                         nthread=1 if len(features) < 1000 else -1)
    contribs = booster.predict(matrix, pred_contribs=True)[:, :-1]
    return pd.DataFrame(_grouped(contribs, list(features.columns)), index=features.index)


def _phrases(values: np.ndarray, names: np.ndarray, records: list[dict], top: int, currency: str) -> list[list[str]]:
    order = np.argsort(-np.abs(values), axis=1)[:, :top]
    out = []
    for i, row in enumerate(records):
        phrases = []
        for j in order[i]:
            effect = "raises" if values[i, j] > 0 else "lowers"
            phrases.append(f"{_phrase(names[j], row, currency)} ({effect} predicted value)")
        out.append(phrases)
    return out


def drivers(booster: xgb.Booster, features: pd.DataFrame, top: int = 3, currency: str = "£") -> list[list[str]]:
    """The `top` groups pushing each customer's predicted value most, with direction, in words."""
    contributions = group_contributions(booster, features)
    return _phrases(contributions.to_numpy(), contributions.columns.to_numpy(), features.to_dict("records"),
                    top, currency)


def row_drivers(booster: xgb.Booster, x: np.ndarray, record: dict, top: int = 3, currency: str = "£") -> list[str]:
    """`drivers` for one customer's float32 feature row `x` (ordered as booster.feature_names) and the same
    values by name in `record`: no DataFrame, for rescoring one customer in milliseconds."""
    matrix = xgb.DMatrix(x.reshape(1, -1), feature_names=booster.feature_names, nthread=1)
    groups = _grouped(booster.predict(matrix, pred_contribs=True)[:, :-1], list(booster.feature_names))
    return _phrases(np.column_stack(list(groups.values())), np.array(list(groups)), [record], top, currency)[0]
