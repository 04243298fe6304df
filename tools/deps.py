"""Expensive state the tools share: loaded lazily, once per process, never at import time.

`CustomerStore` keeps the customers table as column arrays with one precomputed descending order
per sort key and integer codes for the categorical filters, so filtering and ranking 1M customers
is a handful of numpy passes instead of a pandas sort per request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.errors import ValueDeskError
from predictor.filters import CustomerFilter
from predictor.settings import Settings


class ToolFailure(ValueDeskError):
    """A tool cannot answer; carries the structured error code and a hint for the caller."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


SORT_KEYS = ("value_at_risk", "predicted_value", "historical_value", "churn_risk", "customer_value")
# Filter argument -> customers-table column (predictor.filters.CustomerFilter.mask uses the same pairs).
CATEGORICAL_FILTERS = (("tiers", "tier"), ("lifecycle", "lifecycle"), ("segments", "rfm_segment"))
RANGE_FILTERS = (
    ("min_churn_risk", "churn_risk", "ge"), ("max_churn_risk", "churn_risk", "le"),
    ("min_value", "predicted_value", "ge"), ("max_value", "predicted_value", "le"),
    ("min_recency_days", "recency_days", "ge"), ("max_recency_days", "recency_days", "le"),
)
REQUIRED_COLUMNS = ("customer_id", "tier", "lifecycle", "rfm_segment", "country", "churn_risk", "predicted_value",
                    "recency_days", "value_at_risk", "historical_value", "customer_value")


class CustomerStore:
    """The customers table, indexed for filter + top-k queries and id lookups."""

    def __init__(self, frame: pd.DataFrame):
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ToolFailure("not_built", f"The customers table lacks columns {missing}.",
                              "Rebuild it with `valuedesk build`.")
        frame = frame.reset_index(drop=True)
        frame["customer_id"] = frame["customer_id"].astype(str)
        self.frame = frame
        self.n = len(frame)
        self._position = pd.Index(frame["customer_id"])
        if not self._position.is_unique:
            raise ToolFailure("not_built", "The customers table has duplicate customer ids.",
                              "Rebuild it with `valuedesk build`.")
        self._codes: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
        for field, column in CATEGORICAL_FILTERS:
            cat = pd.Categorical(frame[column].astype("string"))
            self._codes[field] = (cat.codes, {name: i for i, name in enumerate(cat.categories)})
        country = pd.Categorical(frame["country"].astype("string").str.lower())
        self._codes["countries"] = (country.codes, {name: i for i, name in enumerate(country.categories)})
        self.labels = {field: pd.Categorical(frame[column].astype("string")) for field, column in
                       (("tier", "tier"), ("lifecycle", "lifecycle"), ("segment", "rfm_segment"),
                        ("country", "country"))}
        self.numbers = {c: frame[c].to_numpy(dtype=float, na_value=np.nan) for c in
                        {"churn_risk", "predicted_value", "recency_days", *SORT_KEYS,
                         *(c for c in ("revenue_12m",) if c in frame.columns)}}
        # Descending, NaN last, ties by table order: computed once, reused by every query.
        self.orders = {key: np.argsort(-np.nan_to_num(self.numbers[key], nan=-np.inf), kind="stable")
                       for key in SORT_KEYS}

    def position(self, customer_id: str) -> int | None:
        loc = self._position.get_indexer([str(customer_id)])[0]
        return None if loc < 0 else int(loc)

    def mask(self, flt: CustomerFilter) -> np.ndarray | None:
        """Same selection as `CustomerFilter.mask(frame)`, on precomputed codes; None means everyone."""
        keep: np.ndarray | None = None

        def both(m: np.ndarray) -> None:
            nonlocal keep
            keep = m if keep is None else keep & m

        for field, _ in (*CATEGORICAL_FILTERS, ("countries", "country")):
            wanted = getattr(flt, field)
            if not wanted:
                continue
            codes, lookup = self._codes[field]
            names = [w.strip().lower() for w in wanted] if field == "countries" else wanted
            allowed = np.zeros(len(lookup) + 1, dtype=bool)  # last slot: code -1 (missing) stays False
            for name in names:
                if name in lookup:
                    allowed[lookup[name]] = True
            both(allowed[codes])
        for field, column, op in RANGE_FILTERS:
            bound = getattr(flt, field)
            if bound is not None:
                values = self.numbers[column]
                both(values >= bound if op == "ge" else values <= bound)
        return keep

    def top(self, flt: CustomerFilter, sort_by: str, limit: int | None) -> tuple[np.ndarray, int]:
        """Row positions of the best `limit` customers by `sort_by` among those passing the filter."""
        order = self.orders[sort_by]
        keep = self.mask(flt)
        if keep is None:
            return (order if limit is None else order[:limit]), self.n
        total = int(np.count_nonzero(keep))
        if limit is not None and total:
            # Walk the precomputed order in growing chunks: a common filter fills `limit` within the first chunk.
            chunk, start = max(4 * limit, 4096), 0
            found: list[np.ndarray] = []
            have = 0
            while start < self.n and have < limit:
                part = order[start:start + chunk]
                hits = part[keep[part]]
                found.append(hits)
                have += len(hits)
                start += chunk
                chunk *= 4
            return np.concatenate(found)[:limit], total
        return order[keep[order]], total


class TransactionStore:
    """Cleaned order lines, positioned by customer for recent-order lookups."""

    COLUMNS = ["customer_id", "order_id", "timestamp", "amount", "product_name"]

    def __init__(self, frame: pd.DataFrame):
        frame = frame[[c for c in self.COLUMNS if c in frame.columns]].copy()
        frame["customer_id"] = frame["customer_id"].astype(str)
        if not (frame["customer_id"].is_monotonic_increasing):
            frame = frame.sort_values(["customer_id", "timestamp"], kind="stable")
        frame = frame.reset_index(drop=True)
        ids = frame["customer_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=int)
        self._customers = pd.Index(ids[starts])
        self._bounds = np.r_[starts, len(ids)]
        self.frame = frame

    def lines(self, customer_id: str) -> pd.DataFrame:
        loc = self._customers.get_indexer([str(customer_id)])[0]
        if loc < 0:
            return self.frame.iloc[0:0]
        return self.frame.iloc[self._bounds[loc]:self._bounds[loc + 1]]


@dataclass
class _Slot:
    loader: Callable[[], Any]
    value: Any = None
    loaded: bool = False


class ToolDeps:
    """Typed access to the customers table, transactions, scorer, index and campaign catalogue.

    Anything passed to the constructor is used as-is (tests, benchmarks); the rest is loaded from
    `settings.data_dir` on first use. A lock makes the first load safe under a threaded server.
    """

    def __init__(self, settings: Settings, *, customers: pd.DataFrame | CustomerStore | None = None,
                 transactions: pd.DataFrame | None = None, scorer: Any = None, index: Any = None,
                 catalogue: Any = None, bundle: Any = None):
        self.settings = settings
        self._lock = threading.RLock()
        self._slots: dict[str, _Slot] = {
            "customers": _Slot(self._load_customers),
            "transactions": _Slot(self._load_transactions),
            "bundle": _Slot(self._load_bundle),
            "scorer": _Slot(self._load_scorer),
            "index": _Slot(self._load_index),
            "catalogue": _Slot(self._load_catalogue),
        }
        given = {"customers": customers, "transactions": transactions, "scorer": scorer, "index": index,
                 "catalogue": catalogue, "bundle": bundle}
        for name, value in given.items():
            if value is not None:
                if name == "customers" and isinstance(value, pd.DataFrame):
                    value = CustomerStore(value)
                if name == "transactions" and isinstance(value, pd.DataFrame):
                    value = TransactionStore(value)
                self._slots[name].value, self._slots[name].loaded = value, True

    def _get(self, name: str) -> Any:
        slot = self._slots[name]
        if not slot.loaded:
            with self._lock:
                if not slot.loaded:
                    slot.value = slot.loader()
                    slot.loaded = True
        return slot.value

    @property
    def customers(self) -> CustomerStore:
        return self._get("customers")

    @property
    def transactions(self) -> TransactionStore | None:
        return self._get("transactions")

    @property
    def bundle(self) -> Any:
        return self._get("bundle")

    @property
    def scorer(self) -> Any:
        return self._get("scorer")

    @property
    def index(self) -> Any:
        return self._get("index")

    @property
    def catalogue(self) -> Any:
        return self._get("catalogue")

    def warm(self) -> None:
        """Load what every request needs up front, so the first caller does not pay for it."""
        self.customers
        self.transactions

    # ------------------------------------------------------------ loaders

    def _not_built(self, what: str, path: Path) -> ToolFailure:
        return ToolFailure("not_built", f"No {what} at {path}.",
                           "Run `valuedesk build` first (or point VALUEDESK_DATA_DIR at a built data directory).")

    def _load_customers(self) -> CustomerStore:
        path = self.settings.customers_path
        if not path.exists():
            raise self._not_built("customers table", path)
        return CustomerStore(pd.read_parquet(path))

    def _load_transactions(self) -> TransactionStore | None:
        path = self.settings.data_dir / "transactions.parquet"
        if not path.exists():
            return None  # recent orders are optional detail; the rest of get_customer still answers
        import pyarrow.parquet as pq

        present = set(pq.read_schema(path).names)
        return TransactionStore(pd.read_parquet(path, columns=[c for c in TransactionStore.COLUMNS if c in present]))

    def _load_bundle(self) -> Any:
        load_model_bundle = _import("predictor.artifacts", "load_model_bundle", "the model")
        return load_model_bundle(self.settings)

    def _load_scorer(self) -> Any:
        scorer_class = _import("predictor.scoring", "CustomerScorer", "the scorer")
        return scorer_class(self.bundle, self.settings)

    def _load_index(self) -> Any:
        settings = self.settings
        if not settings.chroma_url and not any((settings.data_dir / d).exists() for d in ("chroma", "chroma_columns")):
            # Fail fast: opening the index loads an embedding model, which is wasted work with nothing to search.
            raise ToolFailure("index_unavailable", f"No profile index in {settings.data_dir}.",
                              "Run `valuedesk build` (it writes the profiles and indexes them).")
        profile_index = _import("predictor.index", "ProfileIndex", "the profile index")
        try:
            return profile_index(settings)
        except ValueDeskError as exc:
            raise ToolFailure("index_unavailable", f"The profile index cannot be opened: {exc}",
                              "Run `valuedesk build`, or check VALUEDESK_CHROMA_URL if the index runs as a server.") from exc

    def _load_catalogue(self) -> Any:
        load_catalogue = _import("predictor.campaigns", "load_catalogue", "the campaign catalogue")
        return load_catalogue(self.settings)


def _import(module: str, name: str, what: str) -> Any:
    """A predictor entry point, or a not_built error when this installation lacks it."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ToolFailure("not_built", f"{what.capitalize()} is not available in this installation ({exc}).",
                          "Reinstall ValueDesk (`make setup`) and run `valuedesk build`.") from exc
