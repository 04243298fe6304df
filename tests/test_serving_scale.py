"""The serving structures made for 10M customers give exactly what the straightforward computation gives,
on the real built customers table (tools' fixture: a real `valuedesk build` of Online Retail customers).

- RowReader keeps columns as the table holds them and converts only the requested rows (strings from
  Arrow, chunk by chunk); the reference converts whole columns first, as it did before.
- CustomerStore.top walks precomputed orders over cached selections; the reference filters with pandas
  and sorts stably, NaN last.
- TransactionStore keeps order ids and product names Arrow-backed; the reference is Python object arrays.
No timings here: bench/bench_serving_scale.py measures them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from _tools_data import tools_settings
from predictor.customers.audience import CustomerFilter
from tools.functions.rows import DETAIL_FIELDS, LIST_FIELDS, ROW_FIELDS, RowReader
from tools.stores import SORT_KEYS, CustomerStore, TransactionStore

ALL_FIELDS = {**ROW_FIELDS, **DETAIL_FIELDS}


@pytest.fixture(scope="module")
def settings():
    return tools_settings()


@pytest.fixture(scope="module")
def customers(settings) -> pd.DataFrame:
    return pd.read_parquet(settings.customers_path)


def chunked(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The same table with every column in Arrow chunks of `rows` (as a multi-row-group file loads)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows)).to_pandas(
        types_mapper={pa.string(): pd.StringDtype("pyarrow", na_value=np.nan),
                      pa.large_string(): pd.StringDtype("pyarrow", na_value=np.nan)}.get)


def eager_columns(frame: pd.DataFrame) -> dict[str, tuple[str, np.ndarray]]:
    """The straightforward conversion: every column converted whole, up front."""
    out = {}
    for column in ALL_FIELDS:
        if column not in frame.columns:
            continue
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            out[column] = ("date", series.to_numpy(dtype="datetime64[ns]"))
        elif column not in LIST_FIELDS and (pd.api.types.is_string_dtype(series)
                                            or isinstance(series.dtype, pd.CategoricalDtype)):
            out[column] = ("str", series.astype("string").to_numpy(dtype=object, na_value=None))
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_object_dtype(series):
            out[column] = ("any", series.to_numpy(dtype=object))
        elif pd.api.types.is_numeric_dtype(series):
            out[column] = ("num", series.to_numpy(dtype=float, na_value=np.nan))
        else:
            out[column] = ("any", series.to_numpy(dtype=object))
    return out


def reference_rows(frame: pd.DataFrame, idx: np.ndarray, fields: dict[str, str]) -> list[dict]:
    columns = eager_columns(frame)
    names = [name for column, name in fields.items() if column in columns]
    values = [RowReader._convert(columns[c][0], columns[c][1][idx], name)
              for c, name in fields.items() if c in columns]
    return [dict(zip(names, row)) for row in zip(*values)]


@pytest.mark.parametrize("chunk_rows", [None, 97])
def test_row_reader_converts_only_the_asked_rows_to_the_same_values(customers, chunk_rows):
    frame = customers if chunk_rows is None else chunked(customers, chunk_rows)
    store = CustomerStore(frame)
    reader = RowReader(store)
    rng = np.random.default_rng(7)
    for idx in (rng.permutation(store.n), rng.integers(0, store.n, 500), np.array([store.n - 1, 0]),
                np.array([], dtype=np.int64)):
        assert reader.rows(idx, ALL_FIELDS) == reference_rows(store.frame, idx, ALL_FIELDS)
    assert reader.get(3, ROW_FIELDS) == reference_rows(store.frame, np.array([3]), ROW_FIELDS)[0]


def test_string_columns_read_across_chunks_like_one_object_array(customers):
    frame = chunked(customers[["customer_id", "country", "profile_text"]], 50)
    assert frame["customer_id"].array.__arrow_array__().num_chunks > 1
    reader = RowReader(CustomerStore(frame.assign(**{c: customers[c] for c in customers.columns
                                                      if c not in frame.columns})))
    idx = np.random.default_rng(1).integers(0, len(frame), 300)
    for column in ("customer_id", "country", "profile_text"):
        expected = frame[column].astype("string").to_numpy(dtype=object, na_value=None)[idx]
        assert list(reader._take(reader._columns[column], idx)) == list(expected)


FILTERS = [
    {}, {"tiers": ["Platinum", "Gold"], "at_risk": True}, {"countries": ["Germany", "France"]},
    {"lifecycle": ["lapsing", "at risk"], "min_churn_risk": 0.5},
    {"segments": ["Champions", "Loyal", "At Risk", "Lost", "New", "Promising"]},
    {"min_value": 100, "max_value": 2000, "max_recency_days": 200}, {"tiers": ["Bronze"], "at_risk": False},
    {"countries": ["Atlantis"]},
]


def reference_top(frame: pd.DataFrame, flt: dict, sort_by: str, limit: int | None, offset: int):
    keep = CustomerFilter(**flt).mask(frame)
    values = frame[sort_by].to_numpy(dtype=float, na_value=np.nan)
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
    ranked = order[np.asarray(keep)[order]]
    stop = None if limit is None else offset + limit
    return ranked[offset:stop], int(np.count_nonzero(keep))


@pytest.mark.parametrize("flt", FILTERS)
def test_top_pages_equal_a_full_filter_and_stable_sort(customers, flt):
    store = CustomerStore(customers)
    for sort_by, (limit, offset) in itertools.product(SORT_KEYS, [(20, 0), (50, 20), (5, 900), (500, 0),
                                                                 (None, 0), (10, 10**6)]):
        expected, total = reference_top(store.frame, flt, sort_by, limit, offset)
        for _ in range(2):  # computed, then from the engine's cached selection
            idx, n = store.top(CustomerFilter(**flt), sort_by, limit, offset)
            assert n == total
            assert idx.tolist() == expected.tolist()
        store.audience.clear()


def test_transaction_texts_read_like_object_arrays(settings):
    frame = chunked(pd.read_parquet(settings.data_dir / "current" / "transactions.parquet"), 1000)
    store = TransactionStore(frame)
    order_ids = store.frame["order_id"].astype(str).to_numpy(dtype=object)
    names = store.frame["product_name"].astype("string").to_numpy(dtype=object, na_value=None)
    for customer in pd.unique(store.frame["customer_id"])[::7]:
        start, stop = store.span(customer)
        assert list(store.order_id[start:stop]) == list(order_ids[start:stop])
        got = [n if isinstance(n, str) else None for n in store.product_name[start:stop]]
        assert got == list(names[start:stop])
