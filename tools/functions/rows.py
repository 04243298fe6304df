"""Customers-table rows as plain JSON: the field maps every customer row carries, `jsonable` for single
values, and `RowReader`, which converts whole columns at once; one reader and the model horizon are
cached on the customer store so no request rebuilds them."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from tools.deps import ToolDeps
from tools.mapped import Chunks
from tools.stores import CustomerStore

# Customers-table column -> output field, for the columns every customer row carries.
ROW_FIELDS = {
    "customer_id": "customer_id", "tier": "tier", "lifecycle": "lifecycle", "at_risk": "at_risk",
    "rfm_segment": "segment",
    "country": "country", "predicted_value": "predicted_value", "value_p10": "value_p10",
    "value_p90": "value_p90", "churn_risk": "churn_risk", "value_at_risk": "value_at_risk",
    "customer_value": "customer_value", "historical_value": "historical_value", "revenue_12m": "revenue_12m",
    "orders": "orders", "recency_days": "recency_days", "last_order": "last_order",
    "expected_next_order": "expected_next_order",
}
DETAIL_FIELDS = {
    "horizon_days": "horizon_days", "next_order_days": "next_order_days", "first_order": "first_order",
    "tenure_days": "tenure_days", "aov": "aov", "mean_gap_days": "mean_gap_days", "trend": "trend",
    "r_score": "r_score", "f_score": "f_score", "m_score": "m_score", "value_if_retained": "value_if_retained",
    "drivers": "drivers", "top_categories": "top_categories", "top_products": "top_products",
    "suggested_products": "suggested_products", "profile_text": "profile_text",
}
LIST_FIELDS = {"drivers", "top_categories", "top_products", "suggested_products"}
INT_FIELDS = {"orders", "horizon_days", "r_score", "f_score", "m_score"}


def jsonable(value: Any) -> Any:
    """Plain JSON types from pandas/numpy values: missing -> None, timestamps -> ISO dates."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else round(v, 4)
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value).date().isoformat()
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if value is pd.NA:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


class RowReader:
    """Builds output rows column by column: a 500-row answer converts 17 slices, not 8,500 cells.

    Columns stay as the table holds them (numpy views, Arrow-backed strings) and only the requested rows
    are converted per call: converting whole columns up front (strings to Python objects, numbers to
    float64 copies) cost more memory than the table itself at 10M customers, and the result is the same
    (each conversion is elementwise)."""

    def __init__(self, store: CustomerStore):
        frame = store.frame
        # column -> (kind, values, per-call conversion of the taken rows or None)
        self._columns: dict[str, tuple[str, Any, Any]] = {}
        for column in {**ROW_FIELDS, **DETAIL_FIELDS}:
            if column in frame.columns:
                self._columns[column] = _column_source(frame[column], column, column in store.mapped)

    @staticmethod
    def _take(entry: tuple[str, Any, Any], idx: np.ndarray) -> np.ndarray:
        _, values, convert = entry
        return values[idx] if convert is None else convert(values, idx)

    @staticmethod
    def _convert(kind: str, values: np.ndarray, name: str) -> list[Any]:
        if kind == "num":
            finite = np.isfinite(values)
            if name in INT_FIELDS:
                out = values.astype(np.int64, copy=False) if finite.all() else np.where(finite, values, 0).astype(np.int64)
                return [v if ok else None for v, ok in zip(out.tolist(), finite.tolist())]
            rounded = np.round(values, 4).tolist()
            return rounded if finite.all() else [v if ok else None for v, ok in zip(rounded, finite.tolist())]
        if kind == "str":
            return values.tolist()
        if kind == "date":
            text = np.datetime_as_string(values, unit="D").tolist()
            return [None if t == "NaT" else t for t in text]
        out = [jsonable(v) for v in values]
        if name in LIST_FIELDS:
            return [[str(x) for x in v] if isinstance(v, list) else [] for v in out]
        return [v if v is None or isinstance(v, (str, int, float, bool, list, dict)) else str(v) for v in out]

    def rows(self, idx: np.ndarray | list[int], fields: dict[str, str]) -> list[dict[str, Any]]:
        idx = np.asarray(idx, dtype=np.int64)
        names, columns = [], []
        for column, name in fields.items():
            entry = self._columns.get(column)
            if entry is not None:
                names.append(name)
                columns.append(self._convert(entry[0], self._take(entry, idx), name))
        return [dict(zip(names, values)) for values in zip(*columns)] if columns else [{} for _ in idx]

    def get(self, i: int, fields: dict[str, str]) -> dict[str, Any]:
        return self.rows([i], fields)[0]


def _as_float(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return values[idx].astype(float)


def _as_objects(values: Chunks, idx: np.ndarray) -> np.ndarray:
    return values.take(idx)


def _column_source(series: pd.Series, column: str, mapped: bool = False) -> tuple[str, Any, Any]:
    """How RowReader reads one column: its kind, the values it keeps and the conversion of taken rows.
    Strings are read from their Arrow chunks (a small column's chunks joined once); a mapped column
    (tools/mapped.py) is never joined or converted whole: that would copy it into memory."""
    if mapped:
        kind = "str" if column not in LIST_FIELDS and pd.api.types.is_string_dtype(series) else "any"
        return kind, Chunks(series.array.__arrow_array__()), _as_objects
    if pd.api.types.is_datetime64_any_dtype(series):
        return "date", series.to_numpy(dtype="datetime64[ns]"), None
    if column not in LIST_FIELDS and (pd.api.types.is_string_dtype(series)
                                      or isinstance(series.dtype, pd.CategoricalDtype)):
        return "str", Chunks(series.astype("string").array.__arrow_array__(), join=True), _as_objects
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_object_dtype(series):
        return "any", series.to_numpy(dtype=object), None
    if pd.api.types.is_numeric_dtype(series):
        if isinstance(series.dtype, np.dtype):  # a view of the table's own array, widened per call
            return "num", series.to_numpy(), _as_float
        return "num", series.to_numpy(dtype=float, na_value=np.nan), None
    return "any", series.to_numpy(dtype=object), None


def row_reader(deps: ToolDeps) -> RowReader:
    """The customer store's row reader, built on first use."""
    store = deps.customers
    reader = getattr(store, "_row_reader", None)
    if reader is None:
        reader = store._row_reader = RowReader(store)
    return reader


def customer_row(deps: ToolDeps, i: int) -> dict[str, Any]:
    """The ROW_FIELDS of the customer at table position `i`."""
    return row_reader(deps).get(i, ROW_FIELDS)


def horizon_days(deps: ToolDeps) -> int | None:
    """The model's horizon, read once per customer store."""
    store = deps.customers
    horizon = getattr(store, "_horizon", None)
    if horizon is None:
        horizon = store._horizon = deps.horizon_days
    return horizon
