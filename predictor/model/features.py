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

from predictor.model.columnar import NS_PER_DAY, Purchases, map_partitions, order_runs

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
    runs = order_runs(history.orders)
    customers, block = map_partitions(runs, edge, lambda bought: behaviour_columns(history, bought, label_days),
                                      FEATURES)
    index = runs.run_ids(customers)
    if not len(index):
        return pd.DataFrame(columns=FEATURES, index=index)
    frame = pd.DataFrame(block.T, columns=FEATURES, index=index, copy=False)
    add_breadth(frame, history, edge)
    return frame


def behaviour_columns(history: CustomerHistory, bought: Purchases, label_days: int) -> dict[str, np.ndarray]:
    """Every feature but the product breadth (`add_breadth`), per customer of `bought` (one partition
    of the columnar pass, predictor/model/columnar.py): one segment reduction per column over the
    purchases, which are one contiguous, time-ordered run per customer."""
    edge = pd.Timestamp(bought.edge_ns)
    runs, counts = bought.runs, bought.counts
    ns, amount = bought.column(runs.ns), bought.column(runs.amount)
    # Orders on the same day count once for cadence (as in the BG/NBD convention).
    days_before = (bought.edge_ns - ns) / NS_PER_DAY  # >0, fractional
    out = {"frequency": counts.astype(float), "recency_days": days_before[bought.last],
           "tenure_days": days_before[bought.first], "monetary_total": bought.sums(amount)}
    out["aov"] = out["monetary_total"] / counts
    out["max_order_value"] = np.maximum.reduceat(amount, bought.first)
    for window in WINDOWS:
        inside = days_before <= window
        out[f"spend_{window}d"] = bought.sums(np.where(inside, amount, 0.0))
        if window >= 90:
            out[f"orders_{window}d"] = bought.sums(inside.astype(float))
    lifetime_rate = out["monetary_total"] / np.maximum(out["tenure_days"], 30.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["trend_90d"] = (out["spend_90d"] / 90.0) / np.where(lifetime_rate == 0, np.nan, lifetime_rate)
    out.update(_gap_features(bought, ns, history.start, out["recency_days"]))
    qty = bought.column(runs.quantity)
    out["items_per_order"] = (bought.sums(np.nan_to_num(qty)) / counts if np.isfinite(qty).any()
                              else np.full(len(counts), np.nan))
    # Net effect of cancellations known by the cutoff, as a share of gross spend.
    cancels = np.flatnonzero((runs.ns < bought.edge_ns) & (runs.cancel | (runs.amount < 0)))
    cancelled = -bought.per_customer(runs.run_sums(cancels, runs.amount[cancels]))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = cancelled / np.where(out["monetary_total"] > 0, out["monetary_total"], np.nan)
    out["cancel_share"] = np.nan_to_num(np.clip(share, 0, 1), nan=0.0, posinf=1.0, neginf=0.0)
    out["spend_same_window_last_year"] = _same_window_last_year(bought, ns, amount, edge, label_days, history.start)
    out["history_days"] = np.full(len(counts), float((edge - history.start) / pd.Timedelta(days=1)))
    out["label_days"] = np.full(len(counts), float(label_days))
    return out


def _gap_features(bought: Purchases, ns: np.ndarray, start: pd.Timestamp,
                  recency_days: np.ndarray) -> dict[str, np.ndarray]:
    """Cadence features from the inter-purchase gaps, in days between distinct purchase days:
    the mean, coefficient of variation (sample std) and last gap per customer, NaN without a gap."""
    day_idx = np.floor((ns - pd.Timestamp(start).value) / NS_PER_DAY)
    gaps = np.diff(day_idx, prepend=np.nan)
    gaps[bought.first] = np.nan
    gaps[gaps == 0] = np.nan
    has_gap = ~np.isnan(gaps)
    n_gaps = bought.sums(has_gap.astype(float))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = bought.sums(np.where(has_gap, gaps, 0.0)) / np.where(n_gaps > 0, n_gaps, np.nan)
        deviation = np.where(has_gap, gaps - np.repeat(mean, bought.counts), 0.0)
        std = np.sqrt(bought.sums(deviation * deviation) / np.where(n_gaps > 1, n_gaps - 1, np.nan))
        # The last row with a gap of each customer (-1: none).
        last_row = np.maximum.reduceat(np.where(has_gap, np.arange(len(gaps)), -1), bought.first)
        last = np.where(last_row >= 0, gaps[last_row], np.nan)
        return {"mean_gap_days": mean, "gap_cv": std / mean, "last_gap_days": last,
                "recency_over_gap": recency_days / mean}


def _same_window_last_year(bought: Purchases, ns: np.ndarray, amount: np.ndarray, edge: pd.Timestamp,
                           label_days: int, start: pd.Timestamp) -> np.ndarray:
    """Spend in the window one year before the one being predicted: a seasonal signal,
    NaN when the history does not reach back that far (no guessing)."""
    lo = edge - pd.Timedelta(days=365)
    hi = lo + pd.Timedelta(days=label_days)
    if lo < start:
        return np.full(len(bought.first), np.nan)
    return bought.sums(np.where((ns >= lo.value) & (ns < hi.value), amount, 0.0))


def add_breadth(out: pd.DataFrame, history: CustomerHistory, edge: pd.Timestamp) -> None:
    """Product breadth from the lines; the columns stay as they are (NaN) without them."""
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
