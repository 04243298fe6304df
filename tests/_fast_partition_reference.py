"""Frozen copy of the population feature and prediction path as it was before the columnar pass
(commit 5228b3c: pandas groupbys and reindexing by customer id, the sklearn wrappers' predict). It is the
reference tests/test_fast_partition.py holds today's implementation to on the real data; nothing else
may import it, and it must not change."""

from __future__ import annotations

import numpy as np
import pandas as pd

from predictor.model.baselines import BGNBDGammaGamma
from predictor.model.estimators import MODEL_FEATURES
from predictor.model.features import FEATURES, WINDOWS, CustomerHistory, day_start

DAY = np.timedelta64(1, "D")


def compute_features_reference(history: CustomerHistory, cutoff, label_days: int) -> pd.DataFrame:
    """Features of every customer with a purchase on or before `cutoff`, indexed by customer_id.

    `label_days` is the length of the window the row will be asked to predict; it is a feature so
    that rows trained on shorter label windows can still predict the full horizon.
    """
    edge = day_start(cutoff) + pd.Timedelta(days=1)
    past = history.orders.loc[history.orders["timestamp"] < edge]
    purchases = past.loc[~past["is_cancellation"] & (past["amount"] > 0)]
    if purchases.empty:
        return pd.DataFrame(columns=FEATURES, index=pd.Index([], name="customer_id", dtype="string"))

    # Orders on the same day count once for cadence (as in the BG/NBD convention).
    cust = purchases["customer_id"].to_numpy()
    ts = purchases["timestamp"].to_numpy("datetime64[ns]")
    amount = purchases["amount"].to_numpy(float)
    days_before = (np.datetime64(edge) - ts) / DAY  # >0, fractional

    # Orders are sorted by customer then time, so each customer is one contiguous run and
    # reduceat over the run starts is exact.
    first_pos = np.flatnonzero(np.r_[True, cust[1:] != cust[:-1]])
    counts = np.diff(np.r_[first_pos, len(cust)])
    last_pos = first_pos + counts - 1
    ids = cust[first_pos]

    out = pd.DataFrame(index=pd.Index(ids, name="customer_id", dtype="string"))
    out["frequency"] = counts.astype(float)
    out["recency_days"] = days_before[last_pos]
    out["tenure_days"] = days_before[first_pos]
    out["monetary_total"] = np.add.reduceat(amount, first_pos)
    out["aov"] = out["monetary_total"] / counts
    out["max_order_value"] = np.maximum.reduceat(amount, first_pos)
    for window in WINDOWS:
        inside = days_before <= window
        out[f"spend_{window}d"] = np.add.reduceat(np.where(inside, amount, 0.0), first_pos)
        if window >= 90:
            out[f"orders_{window}d"] = np.add.reduceat(inside.astype(float), first_pos)
    lifetime_rate = out["monetary_total"] / np.maximum(out["tenure_days"], 30.0)
    out["trend_90d"] = (out["spend_90d"] / 90.0) / lifetime_rate.replace(0, np.nan)

    _add_gaps(out, ts, history.start, first_pos, counts)

    qty = purchases["quantity"].to_numpy(float)
    out["items_per_order"] = np.add.reduceat(np.nan_to_num(qty), first_pos) / counts if np.isfinite(qty).any() else np.nan

    # Net effect of cancellations known by the cutoff, as a share of gross spend.
    cancels = past.loc[past["is_cancellation"] | (past["amount"] < 0)]
    cancelled = (-cancels.groupby("customer_id", observed=True)["amount"].sum()).reindex(out.index, fill_value=0.0)
    out["cancel_share"] = (cancelled / out["monetary_total"].where(out["monetary_total"] > 0)).clip(0, 1).fillna(0.0)
    out["spend_same_window_last_year"] = _same_window_last_year(purchases, edge, label_days, history.start, out.index)
    out["history_days"] = float((edge - history.start) / pd.Timedelta(days=1))
    out["label_days"] = float(label_days)
    _add_breadth(out, history, edge)
    return out[FEATURES]


def _add_gaps(out: pd.DataFrame, ts: np.ndarray, start: pd.Timestamp, first_pos: np.ndarray,
              counts: np.ndarray) -> None:
    """Cadence features from the inter-purchase gaps, in days between distinct purchase days."""
    day_idx = np.floor((ts - np.datetime64(start)) / DAY)
    gaps = np.diff(day_idx, prepend=np.nan)
    gaps[first_pos] = np.nan
    gaps = np.where(gaps == 0, np.nan, gaps)
    gap_frame = pd.DataFrame({"c": np.repeat(np.arange(len(first_pos)), counts), "g": gaps})
    gap_stats = gap_frame.groupby("c")["g"].agg(["mean", "std", "last"])
    out["mean_gap_days"] = gap_stats["mean"].to_numpy()
    out["gap_cv"] = (gap_stats["std"] / gap_stats["mean"]).to_numpy()
    out["last_gap_days"] = gap_stats["last"].to_numpy()
    out["recency_over_gap"] = out["recency_days"] / out["mean_gap_days"]


def _same_window_last_year(purchases: pd.DataFrame, edge: pd.Timestamp, label_days: int,
                           start: pd.Timestamp, index: pd.Index) -> pd.Series:
    """Spend in the window one year before the one being predicted: a seasonal signal,
    NaN when the history does not reach back that far (no guessing)."""
    lo = edge - pd.Timedelta(days=365)
    hi = lo + pd.Timedelta(days=label_days)
    if lo < start:
        return pd.Series(np.nan, index=index)
    window = purchases.loc[(purchases["timestamp"] >= lo) & (purchases["timestamp"] < hi)]
    return window.groupby("customer_id", observed=True)["amount"].sum().reindex(index, fill_value=0.0)


def _add_breadth(out: pd.DataFrame, history: CustomerHistory, edge: pd.Timestamp) -> None:
    out["distinct_products"] = np.nan
    out["distinct_categories"] = np.nan
    out["top_category_share"] = np.nan
    if history.lines is None:
        return
    lines = history.lines.loc[history.lines["timestamp"] < edge]
    if "product_id" in lines:
        out["distinct_products"] = lines.groupby("customer_id", observed=True)["product_id"].nunique().reindex(out.index)
    if "category" in lines and lines["category"].notna().any():
        by_cat = lines.groupby(["customer_id", "category"], observed=True)["amount"].sum().clip(lower=0)
        total = by_cat.groupby(level=0).sum()
        out["distinct_categories"] = by_cat.groupby(level=0).size().reindex(out.index)
        out["top_category_share"] = (by_cat.groupby(level=0).max() / total.replace(0, np.nan)).reindex(out.index)



def rfm_summary_reference(history: CustomerHistory, cutoff) -> pd.DataFrame:
    """lifetimes' (frequency, recency, T, monetary_value) in days, from orders on or before the cutoff.

    Purchases on the same day count as one, as in lifetimes' summary_data_from_transaction_data."""
    edge = day_start(cutoff) + pd.Timedelta(days=1)
    orders = history.orders
    purchases = orders.loc[(orders["timestamp"] < edge) & ~orders["is_cancellation"] & (orders["amount"] > 0)]
    daily = purchases.assign(day=purchases["timestamp"].dt.normalize()).groupby(
        ["customer_id", "day"], observed=True, sort=False)["amount"].sum().reset_index()
    g = daily.groupby("customer_id", observed=True, sort=True)
    first, last, count = g["day"].min(), g["day"].max(), g.size()
    cutoff_day = day_start(cutoff)
    summary = pd.DataFrame({
        "frequency": (count - 1).astype(float),
        "recency": (last - first) / pd.Timedelta(days=1),
        "T": (cutoff_day - first) / pd.Timedelta(days=1),
    })
    # Gamma-Gamma uses the mean value of repeat purchases only.
    first_spend = daily.sort_values("day").groupby("customer_id", observed=True)["amount"].first()
    total = g["amount"].sum()
    repeat = (total - first_spend).clip(lower=0)
    summary["monetary_value"] = np.where(summary["frequency"] > 0, repeat / summary["frequency"].replace(0, np.nan), 0.0)
    summary.index = summary.index.astype("string")
    return summary



def last_period_reference(history: CustomerHistory, cutoff, horizon_days: int, customers: pd.Index) -> pd.Series:
    edge = day_start(cutoff) + pd.Timedelta(days=1)
    available = (edge - history.start) / pd.Timedelta(days=1)
    window_days = min(horizon_days, available)
    lo = edge - pd.Timedelta(days=window_days)
    orders = history.orders
    window = orders.loc[(orders["timestamp"] >= lo) & (orders["timestamp"] < edge)]
    spend = window.groupby("customer_id", observed=True)["amount"].sum().clip(lower=0)
    return spend.reindex(customers, fill_value=0.0) * (horizon_days / window_days)


def feature_frame_reference(history: CustomerHistory, cutoff, label_days: int, config,
                            bg: BGNBDGammaGamma | None = None) -> tuple[pd.DataFrame, BGNBDGammaGamma]:
    features = compute_features_reference(history, cutoff, label_days)
    summary = rfm_summary_reference(history, cutoff).reindex(features.index)
    if bg is None:
        bg = BGNBDGammaGamma(max_fit_customers=config.bg_fit_customers, random_seed=config.random_seed).fit(summary)
    predicted = bg.predict(summary, label_days)
    if label_days < config.horizon_days:
        full = bg.predict(summary, config.horizon_days)["expected_orders"]
        ratio = (full / predicted["expected_orders"].where(predicted["expected_orders"] > 0)).fillna(1.0)
        features["label_scale"] = ratio.clip(1.0, config.horizon_days / label_days)
    else:
        features["label_scale"] = 1.0
    features["bg_expected_orders"] = predicted["expected_orders"]
    features["bg_p_alive"] = predicted["p_alive"]
    features["bg_predicted_value"] = predicted["predicted_value"]
    features["bg_churn_risk"] = predicted["churn_risk"]
    features["last_period_value"] = last_period_reference(history, cutoff, label_days, features.index)
    return features[MODEL_FEATURES + ["label_scale"]], bg


def predict_features_reference(model, features: pd.DataFrame) -> pd.DataFrame:
    x_frame = features[model.feature_names]
    x = x_frame.to_numpy(dtype=np.float32)
    return pd.DataFrame(model.combine(model.value_model.predict(x), model.churn_model.predict_proba(x)[:, 1],
                                      model.interval_model.predict(x), model.next_order_model.predict(x),
                                      x_frame["last_period_value"].to_numpy()), index=features.index)
