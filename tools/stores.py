"""The tables the tools read, indexed once per build version.

`CustomerStore` keeps the customers table as column arrays with one precomputed descending order per
sort key; its filters run on the one audience engine (predictor.customers.audience_engine), so
filtering and ranking 1M customers is a handful of numpy passes instead of a pandas sort per request.
`NextBestActions` holds every customer's next best action, `TransactionStore` each customer's order lines.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from predictor.customers.audience import CustomerFilter
from predictor.customers.audience_engine import AudienceTable
from predictor.errors import ValueDeskError


class ToolFailure(ValueDeskError):
    """A tool cannot answer; carries the structured error code and a hint for the caller."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


SORT_KEYS = ("value_at_risk", "predicted_value", "historical_value", "churn_risk", "customer_value")
REQUIRED_COLUMNS = ("customer_id", "tier", "lifecycle", "at_risk", "rfm_segment", "country", "churn_risk",
                    "predicted_value", "recency_days", "value_at_risk", "historical_value", "customer_value")


class CustomerStore:
    """The customers table, indexed for filter + top-k queries and id lookups. Filters run on the one
    audience engine (predictor.customers.audience_engine), compiled once for this table."""

    def __init__(self, frame: pd.DataFrame, mapped: list[str] | tuple[str, ...] = ()):
        """`mapped`: columns held over a memory-mapped file (tools/mapped.py), read per returned row only."""
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ToolFailure("not_built", f"The customers table lacks columns {missing}.",
                              "Rebuild it with `valuedesk build`.")
        frame = frame.reset_index(drop=True)
        frame["customer_id"] = frame["customer_id"].astype(str)
        self.frame = frame
        self.mapped = frozenset(mapped)
        self.n = len(frame)
        self._position = pd.Index(frame["customer_id"])
        if not self._position.is_unique:
            raise ToolFailure("not_built", "The customers table has duplicate customer ids.",
                              "Rebuild it with `valuedesk build`.")
        self.audience = AudienceTable(frame)
        self.audience.compile()  # at load, not in the first request that filters on each field
        self.labels = {field: pd.Categorical(frame[column].astype("string")) for field, column in
                       (("tier", "tier"), ("lifecycle", "lifecycle"), ("segment", "rfm_segment"),
                        ("country", "country"))}
        self.numbers = {c: frame[c].to_numpy(dtype=float, na_value=np.nan) for c in
                        {"churn_risk", "predicted_value", "recency_days", *SORT_KEYS,
                         *(c for c in ("revenue_12m",) if c in frame.columns)}}
        # Descending, NaN last, ties by table order: computed once, reused by every query.
        self.orders = {key: np.argsort(-np.nan_to_num(self.numbers[key], nan=-np.inf), kind="stable")
                       for key in SORT_KEYS}

    def tier_floors(self) -> dict[str, float]:
        """Lowest customer_value in each tier (predictor.campaigns.value.tier_floors), cached for this table."""
        floors = getattr(self, "_tier_floors", None)
        if floors is None:
            from predictor.campaigns.value import tier_floors

            floors = self._tier_floors = tier_floors(self.frame)
        return floors

    def take(self, idx: np.ndarray) -> pd.DataFrame:
        """The rows at `idx` (like frame.iloc[idx]); mapped columns are read chunk by chunk, since a
        pandas or pyarrow take would first join the whole mapped column into memory."""
        if not self.mapped:
            return self.frame.iloc[idx]
        import pyarrow as pa

        from tools.mapped import Chunks

        idx = np.asarray(idx, dtype=np.int64)
        rows = self.frame[[c for c in self.frame.columns if c not in self.mapped]].iloc[idx]
        taken = pa.table({c: Chunks(self.frame[c].array.__arrow_array__()).take_arrow(idx)
                          for c in self.frame.columns if c in self.mapped})
        return with_arrow_columns(rows, taken)[list(self.frame.columns)]

    def position(self, customer_id: str) -> int | None:
        try:
            return int(self._position.get_loc(str(customer_id)))
        except KeyError:
            return None

    def mask(self, flt: CustomerFilter) -> np.ndarray | None:
        """The rows passing `flt` (read-only); None means everyone."""
        return None if flt.is_empty() else self.audience.mask(flt)

    def top(self, flt: CustomerFilter, sort_by: str, limit: int | None,
            offset: int = 0) -> tuple[np.ndarray, int]:
        """Row positions of customers `offset` to `offset + limit` by `sort_by` (the best first) among those
        passing the filter, and how many pass it. Pages of one ordering never overlap: ties keep table order."""
        order = self.orders[sort_by]
        stop = None if limit is None else offset + limit
        if flt.is_empty():
            return order[offset:stop], self.n
        selection = self.audience.select(flt)  # counted once, when computed (a full pass at 10M rows)
        keep, total = selection.mask, selection.count
        if stop is not None and total and offset < total:
            # Walk the precomputed order in growing chunks: a common filter fills a page within the first chunk.
            chunk, start = max(4 * stop, 4096), 0
            found: list[np.ndarray] = []
            have = 0
            while start < self.n and have < stop:
                part = order[start:start + chunk]
                hits = part[keep[part]]
                found.append(hits)
                have += len(hits)
                start += chunk
                chunk *= 4
            return np.concatenate(found)[offset:stop], total
        if offset >= total:
            return order[:0], total
        return order[keep[order]][offset:stop], total


def with_arrow_columns(frame: pd.DataFrame, table: Any) -> pd.DataFrame:
    """`frame` with `table`'s columns added without copying their data: text as pandas' default string
    dtype (what reading the parquet gives), everything else as pd.ArrowDtype."""
    import pyarrow as pa

    out = frame.copy(deep=False)
    for name in table.column_names:
        data = table.column(name)
        if pa.types.is_string(data.type) or pa.types.is_large_string(data.type):
            array = pd.arrays.ArrowStringArray(data, dtype=pd.StringDtype("pyarrow", na_value=np.nan))
        else:
            array = pd.arrays.ArrowExtensionArray(data)
        out[name] = array
    return out


class NextBestActions:
    """Every customer's next best action (predictor.campaigns.next_action.best_campaigns), computed for the whole table
    once, so get_customer's next best action is a lookup."""

    def __init__(self, store: CustomerStore, catalogue: Any, currency: str, horizon_days: int):
        """`horizon_days`: the served model's (ToolDeps.horizon_days), for rows without their own."""
        from predictor.campaigns.next_action import best_campaigns

        self.store, self.catalogue, self.currency = store, catalogue, currency
        self.best, self.net = best_campaigns(store.audience, catalogue, store.tier_floors(), horizon_days)

    def for_position(self, pos: int) -> dict[str, Any] | None:
        from predictor.campaigns.next_action import describe_best

        k = int(self.best[pos])
        if k < 0:
            return None
        labels = self.store.labels
        tier, stage, segment = (labels[f].categories[labels[f].codes[pos]] if labels[f].codes[pos] >= 0 else None
                                for f in ("tier", "lifecycle", "segment"))
        return describe_best(self.catalogue.playbooks[k], self.net[pos], tier=tier, lifecycle=stage, segment=segment,
                             churn_risk=float(self.store.numbers["churn_risk"][pos]), currency=self.currency)


class TransactionStore:
    """Cleaned order lines, positioned by customer for recent-order lookups."""

    COLUMNS = ["customer_id", "order_id", "timestamp", "amount", "product_name"]

    def __init__(self, frame: pd.DataFrame):
        frame = frame[[c for c in self.COLUMNS if c in frame.columns]]  # copy-on-write: the caller's frame is untouched
        frame["customer_id"] = frame["customer_id"].astype("string")
        # Contiguous runs per customer are all a lookup needs; sort only when the file is not grouped.
        codes, uniques = pd.factorize(frame["customer_id"])
        if len(codes) and (np.diff(codes) < 0).any():
            frame = frame.sort_values(["customer_id", "timestamp"], kind="stable")
            codes, uniques = pd.factorize(frame["customer_id"])
        frame = frame.reset_index(drop=True)
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.array([], dtype=int)
        self._customers = pd.Index(uniques[codes[starts]] if len(codes) else uniques)
        self._bounds = np.r_[starts, len(codes)]
        self.frame = frame
        # Plain arrays: slicing them per request costs microseconds, a DataFrame slice far more. The texts
        # stay Arrow-backed (a slice yields the same str, and NA where a Python object array held None or
        # NaN, which _recent_orders treats alike): one Python object per line cost ~150 bytes a line.
        self.order_id = (frame["order_id"] if "order_id" in frame else frame["timestamp"]).astype(str).array
        self.timestamp = frame["timestamp"].to_numpy(dtype="datetime64[ns]")
        self.amount = frame["amount"].to_numpy(dtype=float, na_value=0.0)
        self.product_name = (frame["product_name"].astype("string").array
                             if "product_name" in frame else np.full(len(frame), None, dtype=object))
        if len(self._customers):  # pandas hashes an index's values at its first lookup: not in a request
            self._customers.get_loc(self._customers[0])

    def span(self, customer_id: str) -> tuple[int, int]:
        """Row range [start, stop) of this customer's lines (empty when unknown)."""
        try:
            loc = int(self._customers.get_loc(str(customer_id)))
        except KeyError:
            return 0, 0
        return int(self._bounds[loc]), int(self._bounds[loc + 1])

    def lines(self, customer_id: str) -> pd.DataFrame:
        start, stop = self.span(customer_id)
        return self.frame.iloc[start:stop]
