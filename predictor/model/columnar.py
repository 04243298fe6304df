"""One history's orders as flat numpy columns cut into one run per customer: the single columnar pass
behind the population features (predictor/model/features.py), the BG/NBD summary and last-period spend
(predictor/model/baselines.py).

Orders are sorted by customer then time (CustomerHistory's constructors leave them so), so each
customer is one contiguous run of rows and every per-customer aggregation is a segment reduction over
numpy arrays (`np.add.reduceat` over run starts, `np.bincount` over run numbers): one pass per
column, no string groupby, no reindexing by customer id, no per-customer Python. A history that breaks
the order is sorted once here (stable, so equal timestamps keep their order), and the results are those
of the same orders sorted.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NS_PER_DAY = 86_400 * 10**9
# Customers per partition of the columnar pass: the temporaries of ~100k customers' orders stay in cache
# (measured on 1M bootstrapped customers: 10 partitions of 100k took half the CPU time of one pass).
PARTITION_CUSTOMERS = 100_000


def _arrow(ids: pd.Series) -> pa.ChunkedArray:
    values = pa.array(ids.array)  # zero-copy for Arrow-backed strings
    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])


def _run_starts(ids: pa.ChunkedArray) -> np.ndarray:
    """True on the first row of each run of equal customer ids (compared in Arrow: no Python strings)."""
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    return np.r_[True, pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)]


def _needs_sort(ids: pa.ChunkedArray, starts: np.ndarray, ns: np.ndarray) -> bool:
    """Whether a customer's rows are split across runs or out of time order within a run."""
    if len(ns) > 1 and np.any((np.diff(ns) < 0) & ~starts[1:]):
        return True
    return int(starts.sum()) != pc.count_distinct(ids).as_py()


@dataclass
class OrderRuns:
    """Every order of a history as numpy columns, row-aligned, with each customer's rows one run."""

    ids: pd.Series  # customer id per row, as stored (only read at the runs' first rows)
    ns: np.ndarray  # timestamps, int64 nanoseconds
    amount: np.ndarray
    quantity: np.ndarray  # NaN where unknown
    cancel: np.ndarray  # is_cancellation
    run: np.ndarray  # run number (customer) of each row, non-decreasing
    run_first_row: np.ndarray  # first row of each run

    @property
    def n_runs(self) -> int:
        return len(self.run_first_row)

    def run_ids(self, runs: np.ndarray | None = None) -> pd.Index:
        """Customer ids (string dtype) of the given runs, of every run by default."""
        rows = self.run_first_row if runs is None else self.run_first_row[runs]
        return pd.Index(self.ids.array.take(rows), name="customer_id", dtype="string")

    def run_sums(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Sum of `weights` (aligned with the selected rows) per run, 0 for runs with no selected row."""
        return np.bincount(self.run[rows], weights=weights, minlength=self.n_runs)

    def partition(self, lo: int, hi: int) -> "OrderRuns":
        """Runs lo..hi-1 (customers) as their own OrderRuns: views of these arrays, runs renumbered from 0."""
        first = self.run_first_row[lo]
        end = self.run_first_row[hi] if hi < self.n_runs else len(self.ns)
        return OrderRuns(ids=self.ids.iloc[first:end], ns=self.ns[first:end], amount=self.amount[first:end],
                         quantity=self.quantity[first:end], cancel=self.cancel[first:end],
                         run=self.run[first:end] - lo, run_first_row=self.run_first_row[lo:hi] - first)


def order_runs(orders: pd.DataFrame) -> OrderRuns:
    """Read the order columns once (timestamp, amount, quantity, is_cancellation, customer_id)."""
    ids = orders["customer_id"]
    if not isinstance(ids.dtype, pd.StringDtype):
        ids = ids.astype("string")
    ns = orders["timestamp"].to_numpy("datetime64[ns]").view("int64")
    arrow_ids = _arrow(ids)
    starts = _run_starts(arrow_ids)
    if _needs_sort(arrow_ids, starts, ns):
        order = np.lexsort((ns, pd.factorize(ids, sort=True)[0]))  # stable: equal times keep their order
        orders, ids, ns = orders.iloc[order], ids.iloc[order], ns[order]
        starts = _run_starts(_arrow(ids))
    quantity = orders["quantity"].to_numpy(dtype=float, na_value=np.nan) if "quantity" in orders else np.full(len(ns), np.nan)
    first_rows = np.flatnonzero(starts)
    run = np.repeat(np.arange(len(first_rows)), np.diff(np.r_[first_rows, len(ns)]))
    return OrderRuns(ids=ids.reset_index(drop=True), ns=ns, amount=orders["amount"].to_numpy(float),
                     quantity=quantity, cancel=orders["is_cancellation"].to_numpy(bool),
                     run=run, run_first_row=first_rows)


@dataclass
class Purchases:
    """The purchases (not cancelled, amount > 0) strictly before `edge_ns`, and the customers making them."""

    runs: OrderRuns
    edge_ns: int
    rows: np.ndarray  # rows of `runs` that are purchases before the edge, in order
    first: np.ndarray  # position in `rows` of each customer's first purchase
    counts: np.ndarray  # purchases per customer
    customer_runs: np.ndarray  # the run of each customer (customers with no purchase are left out)

    @property
    def last(self) -> np.ndarray:
        return self.first + self.counts - 1

    @property
    def ids(self) -> pd.Index:
        return self.runs.run_ids(self.customer_runs)

    def column(self, values: np.ndarray) -> np.ndarray:
        """A per-row column of the runs, restricted to the purchases."""
        return values[self.rows]

    def per_customer(self, per_run: np.ndarray) -> np.ndarray:
        """A per-run aggregate, restricted to the customers with purchases."""
        return per_run[self.customer_runs]

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Sum of a purchase-aligned column per customer."""
        return np.add.reduceat(values, self.first) if len(values) else np.zeros(0)


def purchases_before(runs: OrderRuns, edge: pd.Timestamp) -> Purchases:
    edge_ns = pd.Timestamp(edge).value
    buy = (runs.ns < edge_ns) & ~runs.cancel & (runs.amount > 0)
    rows = np.flatnonzero(buy)
    run_of = runs.run[rows]
    first = np.flatnonzero(np.r_[True, run_of[1:] != run_of[:-1]]) if len(rows) else np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[first, len(rows)])
    return Purchases(runs=runs, edge_ns=edge_ns, rows=rows, first=first, counts=counts,
                     customer_runs=run_of[first])


def map_partitions(runs: OrderRuns, edge: pd.Timestamp, columns_of, names: list[str],
                   threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`columns_of(purchases)` -> {name: per-customer column} on each partition of PARTITION_CUSTOMERS
    customers (on `threads` threads: numpy and Arrow release the GIL in their loops), written in order
    into one (len(names), customers) float block, NaN where a partition gives no such column. Returns the
    run of every customer with a purchase before `edge`, and the block. Every column is a function of one
    customer's own orders, so the partitions change no value; the block becomes a DataFrame without a
    copy (`pd.DataFrame(block.T, copy=False)`)."""
    def partition(lo: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        bought = purchases_before(runs.partition(lo, min(lo + PARTITION_CUSTOMERS, runs.n_runs)), edge)
        return bought.customer_runs + lo, (columns_of(bought) if len(bought.rows) else {})

    block = np.empty((len(names), runs.n_runs))
    customers = np.empty(runs.n_runs, dtype=np.int64)
    starts = range(0, runs.n_runs, PARTITION_CUSTOMERS)
    filled = 0
    pool = ThreadPoolExecutor(threads) if threads > 1 and len(starts) > 1 else None
    try:
        for partition_customers, columns in (pool.map if pool else map)(partition, starts):
            end = filled + len(partition_customers)
            customers[filled:end] = partition_customers
            for row, name in enumerate(names):
                block[row, filled:end] = columns.get(name, np.nan)
            filled = end
    finally:
        if pool:
            pool.shutdown()
    return customers[:filled], block[:, :filled]
