"""One customer's feature row and scores from plain numpy arrays: the fast path behind
`CustomerScorer.score_orders`.

The population path (`score_frame`: `compute_features`, `feature_frame`, `rfm_summary`, pandas
groupbys over every customer) spends ~50-140 ms of pandas overhead on a single customer, far more
than the arithmetic. This module computes the same row for one customer with numpy over that
customer's few orders. The semantics are those of predictor/model/features.py `compute_features` and
`add_breadth`, predictor/model/baselines.py `rfm_summary` and `LastPeriodSpend`, predictor/model/estimators.py
`feature_frame` and `predict_features`, and predictor/model/scoring.py `score_frame` and
`history_from_transactions`; the BG/NBD formula itself is shared (`BGNBDGammaGamma.predict_arrays`),
as are the driver phrases (`explain.row_drivers`). tests/test_rescoring.py checks that both paths
give the same feature row, predictions and drivers for hundreds of real customers and the edge cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from predictor.model.features import WINDOWS
from predictor.model.estimators import MODEL_FEATURES

NS_PER_DAY = 86_400 * 10**9


@dataclass
class OneCustomer:
    """One customer's history as arrays: orders (lines summed per order id, flagged outlier lines left
    out) sorted by time, plus the product lines that the breadth features read."""

    order_ns: np.ndarray  # int64 nanoseconds since the epoch
    order_amount: np.ndarray
    order_quantity: np.ndarray  # NaN when the lines carry no quantity
    order_cancel: np.ndarray  # any line of the order has a negative amount
    start_ns: int  # first day of the data (the population's, or earlier for an older customer)
    line_ns: np.ndarray  # lines the breadth features read, and their amounts
    line_amount: np.ndarray
    products: np.ndarray | None  # None: distinct_products is NaN (the population path has no product column)
    categories: np.ndarray | None  # None: the category features are NaN
    country: str | None  # most frequent country over the lines


def _ns(values: pd.Series) -> np.ndarray:
    return values.to_numpy("datetime64[ns]").view("int64")


def _any_value(values: pd.Series) -> bool:
    return bool(values.notna().any())


def customer_from_lines(frame: pd.DataFrame, data_start: pd.Timestamp) -> OneCustomer:
    """Mirror of `history_from_transactions` (and `CustomerHistory.from_lines`) for one customer's
    validated lines: numeric amounts, parsed timestamps, an order_id and is_cancellation = amount < 0."""
    n = len(frame)
    keep = ~frame["is_outlier"].astype(bool).to_numpy() if "is_outlier" in frame else np.ones(n, dtype=bool)
    kept = frame.loc[keep] if not keep.all() else frame
    ns = _ns(frame["timestamp"])
    amount = frame["amount"].to_numpy(float)

    # Lines -> orders as groupby(order_id) would: lines without an order id belong to no order.
    codes, _ = pd.factorize(frame["order_id"])
    member = keep & (codes >= 0)
    _, order_of = np.unique(codes[member], return_inverse=True)
    n_orders = int(order_of.max()) + 1 if len(order_of) else 0
    order_ns = np.full(n_orders, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(order_ns, order_of, ns[member])
    order_amount = np.bincount(order_of, weights=amount[member], minlength=n_orders)
    order_cancel = np.bincount(order_of, weights=(amount[member] < 0), minlength=n_orders) > 0
    if "quantity" in frame and _any_value(kept["quantity"]):
        qty = frame["quantity"].to_numpy(dtype=float, na_value=np.nan)[member]
        order_quantity = np.bincount(order_of, weights=np.where(np.isnan(qty), 0.0, qty), minlength=n_orders)
    else:
        order_quantity = np.full(n_orders, np.nan)
    by_time = np.argsort(order_ns, kind="stable")

    # Breadth lines: the population path keeps every non-outlier line when a country is given and only
    # the purchase lines otherwise (history_from_transactions vs from_lines).
    with_country = "country" in frame and _any_value(frame["country"])
    if with_country:
        lines = kept
        products = lines["product_id"].to_numpy() if "product_id" in lines else None
        categories = lines["category"].to_numpy() if "category" in lines and _any_value(lines["category"]) else None
        country = _main_country(lines["country"])
    else:
        has = [c for c in ("product_id", "category") if c in kept and _any_value(kept[c])]
        lines = kept.loc[~(kept["amount"].to_numpy(float) < 0)] if has else kept.iloc[:0]
        products = lines["product_id"].to_numpy() if "product_id" in has else None
        categories = lines["category"].to_numpy() if "category" in has and _any_value(lines["category"]) else None
        country = None
    return OneCustomer(order_ns=order_ns[by_time], order_amount=order_amount[by_time],
                       order_quantity=order_quantity[by_time], order_cancel=order_cancel[by_time],
                       start_ns=pd.Timestamp(data_start).value, line_ns=_ns(lines["timestamp"]),
                       line_amount=lines["amount"].to_numpy(float), products=products, categories=categories,
                       country=country)


def _main_country(country: pd.Series) -> str | None:
    codes, uniques = pd.factorize(country)
    codes = codes[codes >= 0]
    if not len(codes):
        return None
    counts = np.bincount(codes, minlength=len(uniques))
    # Ties go to the name that sorts first, as the population path's sorted groupby leaves them.
    return str(min(str(uniques[i]) for i in np.flatnonzero(counts == counts.max())))


def _distinct(values: np.ndarray) -> int:
    return int(len(pd.factorize(values)[1]))  # missing values get no code, as nunique skips them


def feature_row(c: OneCustomer, as_of: pd.Timestamp, horizon_days: int, bg) -> dict[str, float] | None:
    """MODEL_FEATURES for one customer at the full horizon (label_days == horizon_days), by name; None when
    the customer has no purchase on or before `as_of` (the population path has no row for them)."""
    as_of_ns = pd.Timestamp(as_of).normalize().value
    edge = as_of_ns + NS_PER_DAY
    past = c.order_ns < edge
    buy = past & ~c.order_cancel & (c.order_amount > 0)
    if not buy.any():
        return None
    ts, amount = c.order_ns[buy], c.order_amount[buy]
    days_before = (edge - ts) / NS_PER_DAY
    count = len(ts)
    f: dict[str, float] = {}
    f["frequency"] = float(count)
    f["recency_days"] = float(days_before[-1])
    f["tenure_days"] = float(days_before[0])
    total = float(amount.sum())
    f["monetary_total"] = total
    f["aov"] = total / count
    f["max_order_value"] = float(amount.max())
    for window in WINDOWS:
        inside = days_before <= window
        f[f"spend_{window}d"] = float(amount[inside].sum())
        if window >= 90:
            f[f"orders_{window}d"] = float(inside.sum())
    lifetime_rate = total / max(f["tenure_days"], 30.0)
    f["trend_90d"] = (f["spend_90d"] / 90.0) / lifetime_rate if lifetime_rate != 0 else np.nan

    _gaps(f, ts, c.start_ns)
    qty = c.order_quantity[buy]
    f["items_per_order"] = float(np.nan_to_num(qty).sum() / count) if np.isfinite(qty).any() else np.nan

    cancels = past & (c.order_cancel | (c.order_amount < 0))
    cancelled = -float(c.order_amount[cancels].sum())
    f["cancel_share"] = float(np.clip(cancelled / total, 0, 1)) if total > 0 else 0.0
    lo = edge - 365 * NS_PER_DAY
    hi = lo + horizon_days * NS_PER_DAY
    f["spend_same_window_last_year"] = (np.nan if lo < c.start_ns
                                        else float(amount[(ts >= lo) & (ts < hi)].sum()))
    history_days = (edge - c.start_ns) / NS_PER_DAY
    f["history_days"] = float(history_days)
    f["label_days"] = float(horizon_days)
    _breadth(f, c, edge)

    _bgnbd(f, ts, amount, as_of_ns, horizon_days, bg)

    # Last-period spend: every order (refunds too) in the last horizon before the edge, scaled up when the
    # data is shorter than the horizon.
    window_days = min(horizon_days, history_days)
    lo = edge - pd.Timedelta(days=window_days).value
    recent = (c.order_ns >= lo) & past
    f["last_period_value"] = max(float(c.order_amount[recent].sum()), 0.0) * (horizon_days / window_days)
    return {name: f[name] for name in MODEL_FEATURES}


def _gaps(f: dict, ts: np.ndarray, start_ns: int) -> None:
    """Gaps between distinct purchase days; same-day orders add no gap."""
    day_idx = np.floor((ts - start_ns) / NS_PER_DAY)
    gaps = np.diff(day_idx)
    gaps = gaps[gaps != 0]
    f["mean_gap_days"] = float(gaps.mean()) if len(gaps) else np.nan
    std = float(gaps.std(ddof=1)) if len(gaps) > 1 else np.nan
    f["gap_cv"] = std / f["mean_gap_days"]
    f["last_gap_days"] = float(gaps[-1]) if len(gaps) else np.nan
    f["recency_over_gap"] = f["recency_days"] / f["mean_gap_days"]


def _bgnbd(f: dict, ts: np.ndarray, amount: np.ndarray, as_of_ns: int, horizon_days: int, bg) -> None:
    """BG/NBD inputs as rfm_summary builds them: purchases summed per calendar day."""
    day = (ts // NS_PER_DAY) * NS_PER_DAY
    first_day, last_day = day[0], day[-1]
    n_days = len(np.unique(day))
    freq = float(n_days - 1)
    first_spend = float(amount[day == first_day].sum())
    monetary = max(float(amount.sum()) - first_spend, 0.0) / freq if freq > 0 else 0.0
    predicted = bg.predict_arrays(np.array([freq]), np.array([(last_day - first_day) / NS_PER_DAY]),
                                  np.array([(as_of_ns - first_day) / NS_PER_DAY]), np.array([monetary]),
                                  horizon_days)
    f["bg_expected_orders"] = float(predicted["expected_orders"][0])
    f["bg_p_alive"] = float(predicted["p_alive"][0])
    f["bg_predicted_value"] = float(predicted["predicted_value"][0])
    f["bg_churn_risk"] = float(predicted["churn_risk"][0])


def _breadth(f: dict, c: OneCustomer, edge: int) -> None:
    f["distinct_products"] = f["distinct_categories"] = f["top_category_share"] = np.nan
    before = c.line_ns < edge
    if c.products is not None and before.any():
        f["distinct_products"] = _distinct(c.products[before])
    if c.categories is not None:
        codes, uniques = pd.factorize(c.categories[before])
        named = codes >= 0
        if named.any():
            # factorize names only the categories present before the edge, as groupby's observed groups.
            by_cat = np.clip(np.bincount(codes[named], weights=c.line_amount[before][named], minlength=len(uniques)),
                             0, None)
            f["distinct_categories"] = len(by_cat)
            cat_total = by_cat.sum()
            f["top_category_share"] = float(by_cat.max() / cat_total) if cat_total != 0 else np.nan


def feature_vector(row: dict[str, float]) -> np.ndarray:
    """The row in MODEL_FEATURES order as the float32 matrix (1 x n) the boosters read."""
    return np.array([[row[name] for name in MODEL_FEATURES]], dtype=np.float32)

