"""Point-in-time customer features and horizon labels.

Every feature is an aggregation over one customer's own orders before the cutoff, so the
computation partitions by customer: running it on any subset of customers (or on a
distributed engine, one partition per customer group) gives the same rows. Only orders
strictly before `cutoff + 1 day` are read; labels come from the `horizon_days` after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY = np.timedelta64(1, "D")

# Windows (days) for recent spend and order counts.
WINDOWS = (30, 90, 180, 365)

FEATURES = [
    "frequency", "recency_days", "tenure_days", "monetary_total", "aov", "max_order_value",
    "spend_30d", "spend_90d", "spend_180d", "spend_365d", "orders_90d", "orders_180d", "orders_365d",
    "trend_90d", "mean_gap_days", "gap_cv", "last_gap_days", "recency_over_gap",
    "items_per_order", "distinct_products", "distinct_categories", "top_category_share",
    "cancel_share", "spend_same_window_last_year", "history_days", "label_days",
]
# Features that only exist for some data sets or some history lengths; XGBoost routes NaN natively.
OPTIONAL_FEATURES = {"spend_same_window_last_year", "distinct_products", "distinct_categories",
                     "top_category_share", "items_per_order", "mean_gap_days", "gap_cv", "last_gap_days",
                     "recency_over_gap"}


def day_start(ts) -> pd.Timestamp:
    return pd.Timestamp(ts).normalize()


@dataclass
class CustomerHistory:
    """Orders (and, when available, product lines) of many customers, ready for point-in-time cuts."""

    orders: pd.DataFrame  # customer_id, order_id, timestamp, amount, quantity, is_cancellation
    lines: pd.DataFrame | None  # customer_id, timestamp, amount, product_id, category (for breadth features)
    # First day of the whole data set; a single customer's history keeps the population's start
    # so history-length features mean the same when one customer is rescored alone.
    data_start: pd.Timestamp | None = None

    @classmethod
    def from_lines(cls, lines: pd.DataFrame) -> "CustomerHistory":
        """Aggregate cleaned order lines to orders. Flagged outlier lines are left out of modelling."""
        if "is_outlier" in lines:
            lines = lines.loc[~lines["is_outlier"].astype(bool)]
        cols = ["customer_id", "order_id", "timestamp", "amount"]
        has_qty = "quantity" in lines and lines["quantity"].notna().any()
        frame = lines[cols + (["quantity"] if has_qty else [])]
        grouped = frame.groupby(["customer_id", "order_id"], sort=False, observed=True)
        orders = grouped.agg(timestamp=("timestamp", "min"), amount=("amount", "sum"),
                             **({"quantity": ("quantity", "sum")} if has_qty else {})).reset_index()
        if not has_qty:
            orders["quantity"] = np.nan
        if "is_cancellation" in lines:
            cancel = lines.groupby(["customer_id", "order_id"], sort=False, observed=True)["is_cancellation"].any()
            orders = orders.merge(cancel.rename("is_cancellation").reset_index(), on=["customer_id", "order_id"])
        else:
            orders["is_cancellation"] = orders["amount"] < 0
        orders["customer_id"] = orders["customer_id"].astype("string")
        orders = orders.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
        product_cols = [c for c in ("product_id", "category", "product_name") if c in lines and lines[c].notna().any()]
        detail = None
        if product_cols:
            detail = lines.loc[~lines.get("is_cancellation", False), ["customer_id", "timestamp", "amount", *product_cols]]
            detail = detail.assign(customer_id=detail["customer_id"].astype("string"))
        return cls(orders=orders, lines=detail)

    @classmethod
    def from_orders(cls, orders: pd.DataFrame) -> "CustomerHistory":
        orders = orders.copy()
        orders["customer_id"] = orders["customer_id"].astype("string")
        if "quantity" not in orders:
            orders["quantity"] = np.nan
        if "is_cancellation" not in orders:
            orders["is_cancellation"] = orders["amount"] < 0
        if "order_id" not in orders:
            orders["order_id"] = orders["customer_id"] + ":" + orders["timestamp"].astype(str)
        return cls(orders=orders.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True), lines=None)

    @property
    def start(self) -> pd.Timestamp:
        if self.data_start is not None:
            return self.data_start
        return day_start(self.orders["timestamp"].min())

    @property
    def end(self) -> pd.Timestamp:
        return day_start(self.orders["timestamp"].max())

    def before(self, cutoff) -> "CustomerHistory":
        """Only what was known at the end of the cutoff day."""
        edge = day_start(cutoff) + pd.Timedelta(days=1)
        orders = self.orders.loc[self.orders["timestamp"] < edge]
        lines = None if self.lines is None else self.lines.loc[self.lines["timestamp"] < edge]
        return CustomerHistory(orders=orders, lines=lines, data_start=self.start)

    def subset(self, customer_ids) -> "CustomerHistory":
        ids = pd.Index(customer_ids).astype("string")
        orders = self.orders.loc[self.orders["customer_id"].isin(ids)]
        lines = None if self.lines is None else self.lines.loc[self.lines["customer_id"].isin(ids)]
        return CustomerHistory(orders=orders, lines=lines, data_start=self.start)


def compute_features(history: CustomerHistory, cutoff, label_days: int) -> pd.DataFrame:
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


def compute_labels(history: CustomerHistory, cutoff, label_days: int, customers: pd.Index) -> pd.DataFrame:
    """Net spend and whether any order happened in (cutoff, cutoff + label_days], for `customers`."""
    start = day_start(cutoff) + pd.Timedelta(days=1)
    end = start + pd.Timedelta(days=label_days)
    window = history.orders.loc[(history.orders["timestamp"] >= start) & (history.orders["timestamp"] < end)]
    spend = window.groupby("customer_id", observed=True)["amount"].sum()
    bought = window.loc[~window["is_cancellation"] & (window["amount"] > 0)].groupby("customer_id", observed=True).size()
    labels = pd.DataFrame(index=customers)
    labels["spend"] = spend.reindex(customers, fill_value=0.0).clip(lower=0.0).to_numpy()
    labels["ordered"] = bought.reindex(customers, fill_value=0).to_numpy() > 0
    first_next = window.loc[~window["is_cancellation"]].groupby("customer_id", observed=True)["timestamp"].min()
    labels["days_to_next"] = ((first_next - start) / pd.Timedelta(days=1)).reindex(customers).to_numpy()
    return labels
