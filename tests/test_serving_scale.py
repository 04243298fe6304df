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


# ---------------------------------------------------------------- the memory-mapped heavy columns

import errno
import json
import shutil

import pyarrow.parquet as pq

from tools.deps import ToolDeps
from tools.mapped import Chunks, cache_paths, heavy_columns
from tools.registry import ToolRegistry
from tools.settings import ServingSettings


def flat_copy(settings, folder):
    """The real build's serving files as a flat data directory the test may write (caches land beside them)."""
    build = (settings.data_dir / "current").resolve()
    folder.mkdir()
    for name in ("customers.parquet", "transactions.parquet"):
        shutil.copy2(build / name, folder / name)
    shutil.copytree(build / "models", folder / "models")
    return ServingSettings(data_dir=folder, embedding_model="hashing", threads=1)


def pandas_registry(flat) -> ToolRegistry:
    """The straightforward path: every column read by pandas into memory."""
    return ToolRegistry(ToolDeps(flat, customers=pd.read_parquet(flat.data_dir / "customers.parquet"),
                                 transactions=pd.read_parquet(flat.data_dir / "transactions.parquet")))


def answers(registry: ToolRegistry, ids: list[str]) -> list[str]:
    out = [json.dumps(registry.call("get_customer", {"customer_id": c}).result, sort_keys=True) for c in ids]
    for flt, sort_by, (limit, offset) in itertools.product(FILTERS, SORT_KEYS, [(500, 0), (20, 40)]):
        res = registry.call("find_customers", {**flt, "sort_by": sort_by, "limit": limit, "offset": offset})
        out.append(json.dumps([res.ok, res.result, res.error and res.error.model_dump()], sort_keys=True, default=str))
    return out


@pytest.fixture
def flat(settings, tmp_path):
    return flat_copy(settings, tmp_path / "data")


def test_mapped_store_answers_exactly_like_the_pandas_path(flat):
    registry = ToolRegistry(ToolDeps(flat))
    store = registry.deps.customers
    heavy = set(heavy_columns(pq.read_schema(flat.data_dir / "customers.parquet")))
    assert store.mapped == heavy and {"profile_text", "drivers", "top_products", "f_aov"} <= heavy
    assert "f_score" not in heavy  # an RFM score get_customer shows, not a model feature
    assert all(p.exists() for p in cache_paths(flat.data_dir / "customers.parquet"))
    plain = pandas_registry(flat)
    ids = plain.deps.customers.frame["customer_id"].tolist() + ["no-such-customer"]
    assert answers(registry, ids) == answers(plain, ids)
    # Exports read rows through CustomerStore.take: the same rows, mapped columns included.
    from predictor.campaigns.export import audience_rows

    idx = np.random.default_rng(3).integers(0, store.n, 700)
    assert list(audience_rows(store.take(idx))) == list(audience_rows(plain.deps.customers.frame.iloc[idx]))
    assert store.take(idx)["top_products"].tolist() == [list(v) for v in plain.deps.customers.take(idx)["top_products"]]


def test_a_stale_cache_is_rebuilt_for_the_new_table(flat):
    ToolRegistry(ToolDeps(flat)).deps.customers  # writes the cache
    path = flat.data_dir / "customers.parquet"
    frame = pd.read_parquet(path)
    frame.loc[0, "profile_text"] = "A rewritten profile."
    frame.to_parquet(path, index=False)
    registry = ToolRegistry(ToolDeps(flat))
    got = registry.call("get_customer", {"customer_id": str(frame.loc[0, "customer_id"])}).result
    assert got["profile_text"] == "A rewritten profile."
    assert json.loads(cache_paths(path)[1].read_text())["size"] == path.stat().st_size


@pytest.mark.parametrize("damage", ["flip", "truncate", "sidecar", "missing"])
def test_a_damaged_cache_is_rebuilt_never_read(flat, damage):
    path = flat.data_dir / "customers.parquet"
    ToolRegistry(ToolDeps(flat)).deps.customers
    cache, meta = cache_paths(path)
    data = bytearray(cache.read_bytes())
    if damage == "flip":  # inside the column data: Arrow alone would read it without complaint
        data[len(data) // 2] ^= 0xFF
        cache.write_bytes(bytes(data))
    elif damage == "truncate":
        cache.write_bytes(bytes(data[: len(data) // 3]))
    elif damage == "sidecar":
        meta.write_text("{not json")
    else:
        cache.unlink()
    registry = ToolRegistry(ToolDeps(flat))
    plain = pandas_registry(flat)
    ids = plain.deps.customers.frame["customer_id"].tolist()[::5]
    assert answers(registry, ids) == answers(plain, ids)
    assert cache.read_bytes() == bytes(data) if damage == "sidecar" else len(cache.read_bytes()) > 0


def test_an_unwritable_folder_reads_the_heavy_columns_into_memory(flat, monkeypatch):
    import tools.mapped

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tools.mapped, "write_cache", refuse)
    registry = ToolRegistry(ToolDeps(flat))
    assert not cache_paths(flat.data_dir / "customers.parquet")[0].exists()
    ids = pd.read_parquet(flat.data_dir / "customers.parquet", columns=["customer_id"])["customer_id"].tolist()[::9]
    assert answers(registry, ids) == answers(pandas_registry(flat), ids)


def test_a_cache_that_cannot_be_written_for_want_of_space_is_a_specific_error(flat, monkeypatch):
    import tools.mapped

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tools.mapped, "write_cache", full)
    res = ToolRegistry(ToolDeps(flat)).call("get_customer", {"customer_id": "12347"})
    assert not res.ok and res.error.code == "not_built"
    assert "cannot write customers.cache.arrow: No space left on device" in res.error.message


def test_chunks_take_in_order_across_chunks():
    values = [["a", "b"], None, [], ["c"], ["d", None], ["e"]] * 20
    column = pa.chunked_array([pa.array(values[i:i + 7]) for i in range(0, len(values), 7)])
    idx = np.random.default_rng(5).integers(0, len(values), 300)
    chunks = Chunks(column)
    assert chunks.take_arrow(idx).to_pylist() == [values[i] for i in idx]
    assert [None if v is None else list(v) for v in chunks.take(idx)] == [values[i] for i in idx]
    assert chunks.take_arrow(np.array([], dtype=np.int64)).to_pylist() == []
