"""The Chroma profile index: semantic search over customer profiles with metadata filters.

Storage
    Chroma (embedded ``PersistentClient`` under ``data_dir/chroma`` or a server through
    ``HttpClient``) holds each profile's text, metadata and vector, and the HNSW graph.
    A tiny collection ``valuedesk-alias`` records, in its metadata, which profile collection is
    live. Rebuilds write a fresh collection and switch the alias only once it is complete, so a
    failed rebuild never touches the one being served.

Filtered search (why there is a column store beside Chroma)
    Chroma evaluates a ``where`` filter by scanning metadata in SQLite before the vector search;
    with a quarter of 100k profiles matching it took ~80-200 ms per query here, against 2-4 ms
    unfiltered. So filters are evaluated on a column store kept beside the collection
    (``data_dir/chroma_columns/<collection>/``: a parquet file of the filterable fields and a
    memory-mapped float32 ``.npy`` of the vectors), held as small-integer category codes and
    number arrays, so a condition is one vectorised pass (well under a millisecond per million
    profiles). The selection (a boolean mask and the same rows as a bitmap; the last 16 filters
    are cached) picks a plan:

    * up to ``exact_max`` candidates (any number, filter or not, while the index holds at most
      ``scan_max`` profiles), exact ranking: up to 4,096 of them by gathering their float32
      vectors; above that by scanning an 8-bit copy of the vectors (per-dimension scalar
      quantisation held in memory, built at open: faiss ``IndexScalarQuantizer``) in place with the
      bitmap as selector, in row shards on ``threads`` threads, for a pool of max(4 x limit,
      limit + 32) that is re-scored in float32. Scores are exact float32 cosines, and the order
      is brute force's unless more than 3x the limit tie within the ~1e-3 quantisation error.
    * no filter, above ``scan_max`` profiles: Chroma's HNSW, re-scored in float32.
    * more candidates: unfiltered HNSW search in Chroma, over-fetching by 1/selectivity, and
      post-filtering the ids with the mask. When fewer than the limit pass (the filter fields are
      written into the profile text, so they correlate with the vectors: the nearest profiles often
      all fail the filter), the selection is ranked exactly as above; without faiss the over-fetch
      is first widened up to ``ann_max``.

    Without faiss installed every exact plan gathers float32 vectors (correct, several times slower
    for large candidate sets). Figures: README "Profile search" and bench/bench_index.py.

    The column store is a cache of what Chroma holds: it carries the collection's ``generation``
    (bumped before every write), and when they disagree (a crash mid-sync, another machine wrote
    to the server) it is rebuilt from Chroma.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from predictor.search.embeddings import Embedder, get_embedder
from predictor.errors import ValueDeskError
from predictor.customers.audience import (LIFECYCLE_STAGES, RFM_SEGMENTS, TIERS, CustomerFilter, FilterError,
                               canonical_names)
from predictor.layout import collections_in_use, write_text_atomic
from predictor.settings import Settings, get_settings

log = logging.getLogger(__name__)

REBUILD_COMMAND = "valuedesk build --rebuild-index"
MAX_QUERY_CHARS = 1000
MAX_LIMIT = 500
SNIPPET_CHARS = 240


class ProfileIndexError(ValueDeskError):
    """The profile index cannot be opened, reached or written."""


class IndexMismatchError(ProfileIndexError):
    """The index was built with another embedding model than the one configured."""


class QueryError(ValueDeskError):
    """A search query is empty, too long or not text."""


__all__ = ["ProfileIndex", "ProfileIndexError", "IndexMismatchError", "QueryError", "FilterError",
           "Hit", "SyncReport", "Condition", "parse_filters", "to_chroma_where", "FILTER_FIELDS"]


# --- filters ----------------------------------------------------------------------------------

# field -> (column in the profile frame, kind)
FILTER_FIELDS: dict[str, tuple[str, str]] = {
    "tier": ("tier", "category"),
    "lifecycle": ("lifecycle", "category"),
    "segment": ("segment", "category"),  # build_profiles' name; 'rfm_segment' is read as it too
    "country": ("country", "category"),
    "churn_risk": ("churn_risk", "number"),
    "predicted_value": ("predicted_value", "number"),
    "value_at_risk": ("value_at_risk", "number"),
    "recency_days": ("recency_days", "number"),
    "orders": ("orders", "number"),
    "last_order_date": ("last_order_date", "date"),
}
_ALIASES = {
    "tiers": "tier", "segments": "segment", "rfm_segment": "segment", "countries": "country",
    "recency": "recency_days", "value": "predicted_value", "last_order": "last_order_date",
    "lifecycle_stage": "lifecycle", "stage": "lifecycle",
}
_OPS = {
    "==": "==", "=": "==", "eq": "==", "$eq": "==",
    "!=": "!=", "ne": "!=", "$ne": "!=",
    ">": ">", "gt": ">", "$gt": ">",
    ">=": ">=", "gte": ">=", "ge": ">=", "$gte": ">=",
    "<": "<", "lt": "<", "$lt": "<",
    "<=": "<=", "lte": "<=", "le": "<=", "$lte": "<=",
    "in": "in", "$in": "in",
    "not in": "not in", "nin": "not in", "$nin": "not in",
    "between": "between",
}
_CATEGORY_OPS = ("==", "!=", "in", "not in")
_NUMBER_OPS = ("==", "!=", ">", ">=", "<", "<=", "between")
_KNOWN_VALUES = {"tier": (TIERS, "tiers"), "lifecycle": (LIFECYCLE_STAGES, "lifecycle stages"),
                 "segment": (RFM_SEGMENTS, "segments")}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any


def _valid_fields() -> str:
    return ", ".join(FILTER_FIELDS)


def _resolve_field(name: str) -> str:
    key = str(name).strip().lower().replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in FILTER_FIELDS:
        raise FilterError(f"Unknown filter field '{name}'. Valid fields: {_valid_fields()} "
                          "(or min_<field>/max_<field> for numeric ones).")
    return key


def _number(field_name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise FilterError(f"Filter '{field_name}' needs a number, got {value!r}.")
    if not math.isfinite(float(value)):
        raise FilterError(f"Filter '{field_name}' needs a finite number, got {value!r}.")
    return float(value)


def _date(field_name: str, value: Any) -> int:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise FilterError(f"Filter '{field_name}' needs a date like 2011-06-30, got {value!r}.") from exc
    if ts is pd.NaT:
        raise FilterError(f"Filter '{field_name}' needs a date like 2011-06-30, got {value!r}.")
    return int(ts.tz_localize(None).value if ts.tzinfo else ts.value)


def _condition(field_name: str, op: str, value: Any) -> list[Condition]:
    kind = FILTER_FIELDS[field_name][1]
    norm = _OPS.get(str(op).strip().lower())
    valid = _CATEGORY_OPS if kind == "category" else _NUMBER_OPS
    if norm is None or norm not in valid:
        raise FilterError(f"Unknown operator '{op}' for filter '{field_name}'. Valid operators: {', '.join(valid)}.")
    if kind == "category":
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, (list, tuple, set, frozenset)) or not values:
            raise FilterError(f"Filter '{field_name}' needs a name or a non-empty list of names, got {value!r}.")
        if any(not isinstance(v, str) for v in values):
            raise FilterError(f"Filter '{field_name}' takes names (text), got {value!r}.")
        if field_name in _KNOWN_VALUES:
            allowed, label = _KNOWN_VALUES[field_name]
            values = canonical_names(list(values), allowed, label)
        if norm == "==":
            norm = "in"
        elif norm == "!=":
            norm = "not in"
        return [Condition(field_name, norm, tuple(values))]
    convert = _number if kind == "number" else _date
    if norm == "between":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise FilterError(f"Filter '{field_name}' between needs [low, high], got {value!r}.")
        low, high = convert(field_name, value[0]), convert(field_name, value[1])
        if low > high:
            raise FilterError(f"Filter '{field_name}' between has low {value[0]!r} above high {value[1]!r}.")
        return [Condition(field_name, ">=", low), Condition(field_name, "<=", high)]
    return [Condition(field_name, norm, convert(field_name, value))]


def parse_filters(filters: dict | CustomerFilter | None) -> list[Condition]:
    """Turn a filter (dict or CustomerFilter) into conditions, refusing unknown fields/operators.

    Dict form: ``{"tier": ["Gold", "Platinum"], "churn_risk": {">": 0.5}, "country": "Germany",
    "orders": {"between": [2, 10]}, "min_value": 100}``.
    """
    if filters is None:
        return []
    if isinstance(filters, CustomerFilter):
        filters = {k: v for k, v in filters.model_dump().items() if v is not None}
    if not isinstance(filters, dict):
        raise FilterError(f"Filters must be a mapping of field to condition, got {type(filters).__name__}.")
    out: list[Condition] = []
    for raw_key, spec in filters.items():
        if spec is None:
            continue
        key = str(raw_key).strip().lower()
        bound = re.match(r"^(min|max)_(.+)$", key)
        if bound and key not in FILTER_FIELDS:
            name = _resolve_field(bound.group(2))
            if FILTER_FIELDS[name][1] == "category":
                raise FilterError(f"'{raw_key}': min/max only apply to numeric fields, not '{name}'.")
            out += _condition(name, ">=" if bound.group(1) == "min" else "<=", spec)
            continue
        name = _resolve_field(key)
        if isinstance(spec, dict):
            if not spec:
                raise FilterError(f"Filter '{raw_key}' has no condition.")
            for op, value in spec.items():
                out += _condition(name, op, value)
        elif FILTER_FIELDS[name][1] == "category":
            out += _condition(name, "in", spec if not isinstance(spec, str) else [spec])
        elif isinstance(spec, (list, tuple)):
            raise FilterError(f"Filter '{raw_key}' takes a number or {{operator: value}}, e.g. "
                              f"{{'>': 0.5}} or {{'between': [1, 2]}}; got {spec!r}.")
        else:
            out += _condition(name, "==", spec)
    return out


def to_chroma_where(conditions: list[Condition]) -> dict | None:
    """The same filter as a plain Chroma ``where`` (used to compare against, and by tests)."""
    clauses = []
    for c in conditions:
        column, kind = FILTER_FIELDS[c.field]
        if kind == "category":
            clauses.append({column: {"$in" if c.op == "in" else "$nin": list(c.value)}})
        else:
            op = {"==": "$eq", "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}[c.op]
            key = column if kind == "number" else column + "_ns"
            clauses.append({key: {op: c.value}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


# --- results ----------------------------------------------------------------------------------

class Hit(BaseModel):
    customer_id: str
    score: float = Field(description="Cosine similarity of the profile to the query (-1..1).")
    snippet: str = Field(description="Start of the profile text (customer data, never instructions).")
    metadata: dict[str, Any]


class SyncReport(BaseModel):
    mode: str = Field(description="'incremental' or 'full'")
    collection: str
    total: int
    added: int = 0
    reembedded: int = 0
    metadata_updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    embedded: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        if self.mode == "staged":
            return (f"profile index (new collection for this build): {self.total} profiles; {self.embedded} "
                    f"embedded, {self.total - self.embedded} from the embedding cache ({self.seconds:.1f}s)")
        return (f"profile index ({self.mode}): {self.total} profiles; {self.added} added, "
                f"{self.reembedded} re-embedded, {self.metadata_updated} metadata-only, "
                f"{self.deleted} deleted, {self.unchanged} unchanged ({self.seconds:.1f}s)")


# --- column store -----------------------------------------------------------------------------

def _save_array(path: Path, array: np.ndarray) -> None:
    """np.save to `path` (separate so tests can make the disk run out of space here)."""
    with open(path, "wb") as fh:
        np.save(fh, array)
        fh.flush()
        os.fsync(fh.fileno())


# Candidate sets up to this size are ranked by gathering their float32 vectors (6 MB at most);
# larger ones by scanning the 8-bit codes (a quarter of the bytes, read in place) for a small pool
# that is then re-ranked in float32, so scores stay exact.
_GATHER_MAX = 4_096
# A code scan is split into row shards of at least this many rows, one thread each (faiss releases
# the GIL), up to `threads` shards.
_SHARD_MIN_ROWS = 131_072
_scan_pool: ThreadPoolExecutor | None = None
_scan_pool_workers = 0
_scan_pool_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _faiss():
    """faiss (faiss-cpu) if installed; without it every exact plan gathers float32 vectors."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _pool(workers: int) -> ThreadPoolExecutor:
    global _scan_pool, _scan_pool_workers
    with _scan_pool_lock:
        if _scan_pool is None or _scan_pool_workers < workers:
            _scan_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="index-scan")
            _scan_pool_workers = workers
        return _scan_pool


@dataclass(frozen=True)
class _Selection:
    """The rows a filter keeps: a boolean mask, the same rows as a little-endian bitmap (what the
    code scan's selector reads, 1 bit per profile), and how many."""
    mask: np.ndarray
    bits: np.ndarray
    count: int


class _Codes:
    """The vectors as 8-bit codes (per-dimension min/max scalar quantisation, 1 byte per value:
    384 MB per million MiniLM profiles, in memory), scanned by faiss with a bitmap selector: no
    gather and a quarter of float32's memory traffic. Used to find a candidate pool only; the pool
    is re-scored in float32."""

    def __init__(self, faiss, embeddings: np.ndarray, shards: int):
        self.faiss = faiss
        n, dim = embeddings.shape
        # One OpenMP thread per search: parallelism comes from the shards, and OpenMP teams inside
        # each shard's thread would only oversubscribe the cores.
        faiss.omp_set_num_threads(1)
        trained = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        # Per-dimension ranges over every row, so no value is clipped: training on just the two rows
        # of minima and maxima gives the same minmax ranges without a float32 copy of the whole set.
        step = 131_072
        lo = np.full(dim, np.inf, dtype=np.float32)
        hi = np.full(dim, -np.inf, dtype=np.float32)
        for start in range(0, n, step):
            block = np.asarray(embeddings[start:start + step], dtype=np.float32)
            lo, hi = np.minimum(lo, block.min(axis=0)), np.maximum(hi, block.max(axis=0))
        trained.train(np.ascontiguousarray(np.stack([lo, hi])))
        bounds = [0]
        per = -(-n // shards)
        per += -per % 8  # shard starts on a byte of the bitmap
        while bounds[-1] + per < n:
            bounds.append(bounds[-1] + per)
        self.shards: list[tuple[int, Any]] = []
        for a, b in zip(bounds, bounds[1:] + [n]):
            index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
            index.sq = trained.sq
            index.is_trained = True
            for start in range(a, b, step):
                index.add(np.ascontiguousarray(embeddings[start:min(b, start + step)], dtype=np.float32))
            self.shards.append((a, index))

    def pool(self, vector: np.ndarray, bits: np.ndarray, k: int, everyone: bool = False) -> np.ndarray:
        """Rows of the (approximately) `k` best-scoring selected profiles, in no particular order;
        `everyone`: all rows are selected (a scan without the selector's per-row test)."""
        faiss = self.faiss
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)

        def scan(shard: tuple[int, Any]) -> tuple[np.ndarray, np.ndarray]:
            start, index = shard
            part = bits[start // 8:]
            if everyone:
                scores, rows = index.search(query, k)
            else:
                selector = faiss.IDSelectorBitmap(index.ntotal, faiss.swig_ptr(part))
                scores, rows = index.search(query, k, params=faiss.SearchParameters(sel=selector))
            found = rows[0] >= 0
            return scores[0][found], rows[0][found] + start

        parts = [scan(self.shards[0])] if len(self.shards) == 1 else \
            list(_pool(len(self.shards)).map(scan, self.shards))
        scores = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        if len(rows) > k:
            rows = rows[np.argpartition(-scores, k - 1)[:k]]
        return rows


class _Columns:
    """Filterable fields and vectors of one collection, row-aligned, loaded for fast masks."""

    def __init__(self, frame: pd.DataFrame, embeddings: np.ndarray, generation: int, threads: int | None = None):
        self.generation = generation
        self.ids = frame["customer_id"].astype(str).to_numpy(dtype=object)
        self.position = pd.Index(self.ids)
        self.text_hash = frame["text_hash"].astype(str).to_numpy(dtype=object)
        self.meta_hash = frame["meta_hash"].astype(np.uint64).to_numpy()
        self.embeddings = embeddings
        self.frame = frame
        self.threads = max(1, threads or 1)  # the index passes settings.threads; no settings are read here
        self._codes: dict[str, tuple[np.ndarray, list[str]]] = {}
        # Marketers repeat a filter while rephrasing the query (and pages re-ask it): selections
        # of the last few filters are kept (9 bits per profile each).
        self._mask_cache: "OrderedDict[tuple[Condition, ...], _Selection]" = OrderedDict()
        self._mask_lock = threading.Lock()
        self._vector_codes: _Codes | None = None
        self._codes_lock = threading.Lock()
        self._numbers: dict[str, np.ndarray] = {}
        for name, (column, kind) in FILTER_FIELDS.items():
            if column not in frame:
                continue
            if kind == "category":
                cat = pd.Categorical(frame[column].astype("string"))
                # Shifted by one so a missing value (-1) becomes 0 and indexes a lookup table.
                dtype = np.int16 if len(cat.categories) < 32_000 else np.int32
                self._codes[name] = ((cat.codes + 1).astype(dtype), [str(c) for c in cat.categories])
            elif kind == "number":
                self._numbers[name] = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
            else:
                self._numbers[name] = _to_ns(frame[column])
        if len(self) > _GATHER_MAX:
            self.vector_codes()  # built now (about 1.5 s per million profiles), not in a first query

    def __len__(self) -> int:
        return len(self.ids)

    def values(self, field_name: str) -> list[str]:
        return self._codes[field_name][1] if field_name in self._codes else []

    def vector_codes(self) -> _Codes | None:
        """The 8-bit code scanner (None without faiss)."""
        with self._codes_lock:
            if self._vector_codes is None and len(self):
                faiss = _faiss()
                if faiss is None:
                    return None
                shards = max(1, min(self.threads, len(self) // _SHARD_MIN_ROWS))
                self._vector_codes = _Codes(faiss, self.embeddings, shards)
            return self._vector_codes

    def exact_is_cheap(self) -> bool:
        """Whether ranking any selection exactly is cheap: few rows, or the 8-bit codes are built."""
        return len(self) <= _GATHER_MAX or self._vector_codes is not None

    def selection(self, conditions: list[Condition]) -> _Selection:
        key = tuple(conditions)
        with self._mask_lock:
            hit = self._mask_cache.get(key)
            if hit is not None:
                self._mask_cache.move_to_end(key)
                return hit
        keep = self._compute_mask(conditions)
        keep.flags.writeable = False
        bits = np.packbits(keep, bitorder="little")
        bits.flags.writeable = False
        found = _Selection(mask=keep, bits=bits, count=int(np.count_nonzero(keep)))
        with self._mask_lock:
            self._mask_cache[key] = found
            while len(self._mask_cache) > 16:
                self._mask_cache.popitem(last=False)
        return found

    def mask(self, conditions: list[Condition]) -> np.ndarray:
        return self.selection(conditions).mask

    def clear_cache(self) -> None:
        with self._mask_lock:
            self._mask_cache.clear()

    def top(self, vector: np.ndarray, selection: _Selection, limit: int) -> tuple[np.ndarray, np.ndarray, str]:
        """The `limit` selected rows closest to `vector`, best first, with float32 cosine scores."""
        pool = max(4 * limit, limit + 32)
        codes = self.vector_codes() if selection.count > max(_GATHER_MAX, pool) else None
        if codes is None:
            return (*self.exact_scores(vector, np.flatnonzero(selection.mask), limit), "exact")
        # 8-bit scores are off by ~1e-3 at most here; re-ranking a pool of 4x the limit in float32
        # returns the exact top `limit` unless more than 3x the limit sit within that error of it.
        rows = codes.pool(vector, selection.bits, pool, everyone=selection.count == len(self))
        return (*self.exact_scores(vector, rows, limit), "exact-sq8")

    def exact_scores(self, vector: np.ndarray, positions: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        if len(positions) == 0:
            return positions, np.zeros(0, dtype=np.float32)
        positions = np.sort(positions)  # sequential reads from the memory map
        scores = np.take(self.embeddings, positions, axis=0) @ vector  # take: faster gather than fancy indexing
        if len(scores) > limit:
            top = np.argpartition(-scores, limit - 1)[:limit]
            positions, scores = positions[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return positions[order], scores[order]

    def _category(self, c: Condition) -> np.ndarray:
        column = FILTER_FIELDS[c.field][0]
        if c.field not in self._codes:
            raise FilterError(f"Filter '{c.field}' is not available: the indexed profiles have no "
                              f"'{column}' field.")
        codes, cats = self._codes[c.field]
        lookup = {v.lower(): i for i, v in enumerate(cats)}
        wanted = []
        for v in c.value:
            hit = lookup.get(v.strip().lower())
            if hit is None and c.field == "country":
                close = difflib.get_close_matches(v.strip().lower(), list(lookup), n=1)
                hint = f" Did you mean '{cats[lookup[close[0]]]}'?" if close else ""
                raise FilterError(f"Unknown country '{v}'.{hint} Countries in the index: "
                                  f"{', '.join(sorted(cats)[:50])}.")
            if hit is not None:
                wanted.append(hit + 1)
        if len(wanted) <= 4:
            # A few equality passes over the small-integer codes are several times faster than a
            # lookup-table gather.
            inside = np.zeros(len(codes), dtype=bool)
            for code in wanted:
                inside |= codes == code
        else:
            table = np.zeros(len(cats) + 1, dtype=bool)
            table[np.asarray(wanted, dtype=np.int64)] = True
            inside = table[codes]
        if c.op == "not in":
            inside = ~inside
            inside &= codes != 0  # a missing value is in no set and in no complement
        return inside

    def _compute_mask(self, conditions: list[Condition]) -> np.ndarray:
        keep: np.ndarray | None = None
        for c in conditions:
            column, kind = FILTER_FIELDS[c.field]
            if kind == "category":
                sel = self._category(c)
            else:
                if c.field not in self._numbers:
                    raise FilterError(f"Filter '{c.field}' is not available: the indexed profiles have no "
                                      f"'{column}' field.")
                col = self._numbers[c.field]
                with np.errstate(invalid="ignore"):
                    sel = {"==": np.equal, "!=": np.not_equal, ">": np.greater, ">=": np.greater_equal,
                           "<": np.less, "<=": np.less_equal}[c.op](col, c.value)
                if kind == "date":
                    sel &= col != _NAT
            if keep is None:
                keep = sel
            else:
                keep &= sel
        return keep if keep is not None else np.ones(len(self), dtype=bool)

    def save(self, directory: Path, collection: str, model: str, dim: int) -> None:
        """Write generation-named files, then the manifest (atomically), then drop older ones."""
        directory.mkdir(parents=True, exist_ok=True)
        meta_name, emb_name = f"meta-{self.generation}.parquet", f"emb-{self.generation}.npy"
        tmp_meta = directory / (meta_name + ".tmp")
        tmp_emb = directory / (emb_name + ".tmp")
        try:
            self.frame.to_parquet(tmp_meta, index=False)
            _save_array(tmp_emb, np.ascontiguousarray(self.embeddings, dtype=np.float32))
            os.replace(tmp_meta, directory / meta_name)
            os.replace(tmp_emb, directory / emb_name)
            write_text_atomic(directory / "manifest.json", json.dumps({
                "collection": collection, "generation": self.generation, "rows": len(self),
                "model": model, "dim": dim, "meta": meta_name, "embeddings": emb_name}))
        except BaseException:
            tmp_meta.unlink(missing_ok=True)
            tmp_emb.unlink(missing_ok=True)
            raise
        for old in directory.iterdir():
            if old.name not in {meta_name, emb_name, "manifest.json"}:
                old.unlink(missing_ok=True)
        # Serve from the memory map so a large index does not sit in RAM twice.
        self.embeddings = np.load(directory / emb_name, mmap_mode="r")

    @classmethod
    def load(cls, directory: Path, threads: int = 1) -> "_Columns | None":
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            frame = pd.read_parquet(directory / manifest["meta"])
            emb = np.load(directory / manifest["embeddings"], mmap_mode="r")
        except (OSError, ValueError, KeyError):
            return None
        if len(frame) != emb.shape[0]:
            return None
        return cls(frame, emb, int(manifest["generation"]), threads=threads)


_NAT = np.iinfo(np.int64).min


def _to_ns(series: pd.Series) -> np.ndarray:
    values = pd.to_datetime(series, errors="coerce")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_localize(None)
    return values.astype("datetime64[ns]").to_numpy().view(np.int64)


# --- profile preparation ----------------------------------------------------------------------

_RESERVED = {"customer_id", "text", "profile_text", "embedding_text", "content_hash", "text_hash", "meta_hash"}
_COLUMN_ALIASES = {"rfm_segment": "segment"}


@dataclass
class _Prepared:
    frame: pd.DataFrame  # customer_id, content_hash, meta_hash + metadata columns
    texts: list[str]  # display text: the Chroma document
    metadatas: list[dict[str, Any]]
    embed_texts: list[str]  # what the vector is computed from (the display text for old profiles)


def _prepare(profiles: pd.DataFrame) -> _Prepared:
    if not isinstance(profiles, pd.DataFrame):
        raise ProfileIndexError(f"profiles must be a DataFrame, got {type(profiles).__name__}")
    text_col = "profile_text" if "profile_text" in profiles.columns else "text"
    missing = {"customer_id", text_col} - set(profiles.columns)
    if missing:
        raise ProfileIndexError(f"profiles are missing column(s) {sorted(missing)}; expected customer_id, "
                                "profile_text, content_hash and metadata columns")
    df = profiles.reset_index(drop=True).rename(
        columns={k: v for k, v in _COLUMN_ALIASES.items() if k in profiles.columns and v not in profiles.columns})
    ids = df["customer_id"].astype("string")
    if ids.isna().any():
        raise ProfileIndexError(f"{int(ids.isna().sum())} profile(s) have no customer_id")
    dupes = ids[ids.duplicated()]
    if len(dupes):
        raise ProfileIndexError(f"duplicate customer_id in profiles, e.g. {dupes.iloc[0]!r}")
    texts = df[text_col].fillna("").astype(str).tolist()
    # Vectors come from the score-free embedding text, so a rescore with unchanged purchases
    # re-embeds nothing; profiles written before that column existed embed their display text.
    embed_col = "embedding_text" if "embedding_text" in df.columns else text_col
    embed_texts = df[embed_col].fillna("").astype(str).tolist()
    # Re-embedding is decided on the embedded text alone: a metadata-only change (the profiles'
    # own content_hash covers both) just rewrites metadata, which costs no model time.
    text_hash = pd.Series([hashlib.sha256(t.encode()).hexdigest()[:20] for t in embed_texts])
    content_hash = df["content_hash"].astype(str) if "content_hash" in df else text_hash
    meta_cols = [c for c in df.columns if c not in _RESERVED]
    meta = pd.DataFrame(index=df.index)
    for c in meta_cols:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            meta[c] = s
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            meta[c] = s
        else:
            # Lists (top categories, drivers) become readable text: Chroma metadata is scalar.
            meta[c] = s.map(lambda v: "; ".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray))
                            else (None if pd.isna(v) else str(v))).astype(object)
    for name, (column, kind) in FILTER_FIELDS.items():
        if kind == "date" and column in meta:
            meta[column] = pd.to_datetime(meta[column], errors="coerce")
    # The display text is not covered by text_hash any more: hashing it with the metadata sends
    # a changed display text (new scores) down the metadata-update path, without re-embedding.
    hashed = meta.astype(str).assign(**{"\0document": texts})
    meta_hash = pd.util.hash_pandas_object(hashed, index=False).to_numpy(np.uint64)
    frame = pd.concat([pd.DataFrame({"customer_id": ids.astype(str).to_numpy(), "text_hash": text_hash.to_numpy(),
                                     "content_hash": content_hash.to_numpy(), "meta_hash": meta_hash}), meta], axis=1)
    return _Prepared(frame=frame, texts=texts, metadatas=_chroma_metadatas(meta, text_hash, content_hash),
                     embed_texts=embed_texts)


def _chroma_metadatas(meta: pd.DataFrame, text_hash: pd.Series, content_hash: pd.Series) -> list[dict[str, Any]]:
    columns: dict[str, list[Any]] = {}
    for c in meta.columns:
        s = meta[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            columns[c] = [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in s]
            # A sortable integer twin so plain Chroma `where` can compare dates too.
            ns = _to_ns(s)
            columns[c + "_ns"] = [None if v == _NAT else int(v) for v in ns]
        elif pd.api.types.is_bool_dtype(s):
            columns[c] = [None if pd.isna(v) else bool(v) for v in s]
        elif pd.api.types.is_integer_dtype(s):
            columns[c] = [None if pd.isna(v) else int(v) for v in s]
        elif pd.api.types.is_numeric_dtype(s):
            columns[c] = [None if pd.isna(v) else float(v) for v in s]
        else:
            columns[c] = s.tolist()
    columns["text_hash"] = text_hash.astype(str).tolist()
    columns["content_hash"] = content_hash.astype(str).tolist()
    keys = list(columns)
    rows = zip(*(columns[k] for k in keys))
    # Chroma rejects None values: absent fields are simply left out.
    return [{k: v for k, v in zip(keys, row) if v is not None} for row in rows]


def check_query(query: Any) -> str:
    """The query with whitespace collapsed, or a QueryError saying what is wrong with it."""
    if not isinstance(query, str):
        raise QueryError(f"query must be text, got {type(query).__name__}")
    text = " ".join(query.split())
    if not text:
        raise QueryError("query is empty; describe the customers to find, e.g. 'buys vintage tea sets'")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query is {len(text)} characters; the limit is {MAX_QUERY_CHARS}")
    return text


def hit_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """A profile's metadata as search hits show it (no integer date twins, no hashes)."""
    return {k: v for k, v in meta.items() if not k.endswith("_ns") and k != "text_hash"}


def _snippet(text: str | None) -> str:
    text = " ".join((text or "").split())
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text.rfind(" ", 0, SNIPPET_CHARS)
    return text[: cut if cut > SNIPPET_CHARS // 2 else SNIPPET_CHARS] + "…"


# --- the index --------------------------------------------------------------------------------

@dataclass
class _Active:
    name: str
    collection: Any
    columns: _Columns
    model: str
    dim: int
    generation: int
    meta: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[int, int], None] | bool | None


def _progress(progress: Progress, label: str) -> Callable[[int, int], None] | None:
    """True means a tqdm bar (the CLI); a callable gets (done, total)."""
    if not progress:
        return None
    if callable(progress):
        return progress
    from tqdm.auto import tqdm

    bar = tqdm(desc=label, unit="profile", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(exc).lower()
    return "no space left" in text or "disk is full" in text or "database or disk is full" in text


class ProfileIndex:
    """Customer profiles in Chroma, kept in sync with the scores and searchable with filters."""

    def __init__(self, data_dir: Path | str | Settings | None = None, chroma_url: str | None = None,
                 embedder: Embedder | str | None = None, timeout_s: float | None = None, *,
                 verify: bool = False, exact_max: int | None = None, ann_max: int = 4_000,
                 scan_max: int | None = None,
                 overfetch: float | None = None,
                 write_batch: int = 2_000, namespace: str = "valuedesk", collection: str | None = None):
        """`verify=True` refuses a model mismatch at open; otherwise search/sync refuse it on use and
        only `rebuild` (the fix) proceeds. A Settings object may stand in for `data_dir`.
        `collection` pins the collection a build version recorded (predictor.layout) instead of
        following the alias, so a reader's index and tables come from the same build.
        Every query is ranked exactly while the index holds at most `scan_max` profiles (a full 8-bit
        code scan of a million takes ~25 ms on 2 threads); above, filters selecting at most
        `exact_max` are, and the rest go through HNSW first."""
        if isinstance(data_dir, Settings):
            settings, data_dir = data_dir, data_dir.data_dir
            chroma_url = chroma_url if chroma_url is not None else settings.chroma_url
            embedder = embedder if embedder is not None else settings.embedding_model
        else:
            settings = get_settings()
        self.data_dir = Path(data_dir) if data_dir is not None else settings.data_dir
        self.chroma_url = chroma_url if chroma_url is not None else settings.chroma_url
        self.timeout_s = float(timeout_s if timeout_s is not None else settings.chroma_timeout_s)
        if embedder is None or isinstance(embedder, str):
            embedder = get_embedder(embedder, self.data_dir / "embeddings")
        self.embedder: Embedder = embedder
        self.exact_max = settings.index_exact_max if exact_max is None else exact_max
        self.overfetch = settings.index_overfetch if overfetch is None else overfetch
        self.ann_max = ann_max
        self.scan_max = settings.index_scan_max if scan_max is None else scan_max
        self.write_batch = write_batch
        self.threads = settings.threads  # for the column store's scans
        # Several indexes (tests, tenants) can share one Chroma server under distinct namespaces.
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,40}", namespace):
            raise ProfileIndexError(f"index namespace '{namespace}' must be 2-41 lowercase letters, digits or '-'")
        self.alias_name, self.prefix = f"{namespace}-alias", f"{namespace}-profiles-"
        self.columns_root = self.data_dir / "chroma_columns"
        self._lock = threading.RLock()
        self._pinned = collection
        self._client = self._connect()
        self._active: _Active | None = self._load_active()
        self.last_plan: str | None = None  # which search plan the last query used (for benches/tests)
        if verify:
            self.check_model()

    # connection ---------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return "server" if self.chroma_url else "embedded"

    def _where(self) -> str:
        return f"Chroma server {self.chroma_url}" if self.chroma_url else "the embedded Chroma index (chroma/ in the data directory)"

    def _connect(self):
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if not self.chroma_url:
            path = self.data_dir / "chroma"
            try:
                path.mkdir(parents=True, exist_ok=True)
                return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            except Exception as exc:
                raise ProfileIndexError(f"cannot open the embedded Chroma index (chroma/ in the data directory): {exc}") from exc
        import httpx

        url = urlparse(self.chroma_url if "://" in self.chroma_url else f"http://{self.chroma_url}")
        if url.scheme not in {"http", "https"} or not url.hostname:
            raise ProfileIndexError(f"VALUEDESK_CHROMA_URL '{self.chroma_url}' is not an http(s)://host:port URL")
        port = url.port or (443 if url.scheme == "https" else 8000)
        base = f"{url.scheme}://{url.hostname}:{port}"
        # Chroma's HttpClient uses httpx with no timeout at all, so a dead or hung server would
        # block forever: probe it with a bounded request first.
        try:
            httpx.get(f"{base}/api/v2/heartbeat", timeout=self.timeout_s).raise_for_status()
        except httpx.HTTPError as exc:
            raise ProfileIndexError(
                f"Chroma server {base} is not reachable within {self.timeout_s:g}s ({type(exc).__name__}: {exc}). "
                "Start it (chroma run --path <dir> --port <port>) or unset VALUEDESK_CHROMA_URL to use the "
                "embedded index.") from exc
        try:
            client = chromadb.HttpClient(host=url.hostname, port=port, ssl=url.scheme == "https",
                                         settings=chroma_settings)
        except Exception as exc:
            raise ProfileIndexError(f"cannot connect to Chroma server {base}: {exc}") from exc
        self._http_session = getattr(getattr(client, "_server", None), "_session", None)
        self._set_timeout(self.timeout_s)
        return client

    def _set_timeout(self, seconds: float) -> None:
        session = getattr(self, "_http_session", None)
        if session is not None:
            import httpx
            session.timeout = httpx.Timeout(seconds, connect=self.timeout_s)

    @contextlib.contextmanager
    def _bulk(self) -> Iterator[None]:
        """Bulk writes legitimately take longer than a query; still bounded."""
        self._set_timeout(max(60.0, 12 * self.timeout_s))
        try:
            yield
        finally:
            self._set_timeout(self.timeout_s)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ValueDeskError:
            raise
        except Exception as exc:
            raise self._translate(what, exc) from exc

    def _translate(self, what: str, exc: BaseException) -> ProfileIndexError:
        import httpx

        if _is_disk_full(exc):
            return ProfileIndexError(f"{what} failed: disk full ({exc}); free space in the data directory and retry")
        if isinstance(exc, httpx.TimeoutException):
            return ProfileIndexError(f"{what} failed: {self._where()} did not answer within {self.timeout_s:g}s")
        if isinstance(exc, httpx.HTTPError):
            return ProfileIndexError(f"{what} failed: {self._where()} is unreachable ({type(exc).__name__}: {exc})")
        return ProfileIndexError(f"{what} failed on {self._where()}: {type(exc).__name__}: {exc}")

    # alias and active collection -----------------------------------------------------------
    def _alias(self):
        return self._call("reading the index alias", lambda: self._client.get_or_create_collection(
            self.alias_name, embedding_function=None))

    def _load_active(self) -> _Active | None:
        name = self._pinned or (self._alias().metadata or {}).get("active")
        if not name:
            return None
        import chromadb.errors

        try:
            collection = self._client.get_collection(name, embedding_function=None)
        except chromadb.errors.NotFoundError as exc:
            pointer = "the serving build records" if self._pinned else "the index alias points at"
            raise ProfileIndexError(f"{pointer} collection '{name}', which is missing from "
                                    f"{self._where()}; run `{REBUILD_COMMAND}`") from exc
        except Exception as exc:
            raise self._translate("opening the profile collection", exc) from exc
        meta = dict(collection.metadata or {})
        generation = int(meta.get("generation", 0))
        columns = _Columns.load(self.columns_root / name, threads=self.threads)
        if columns is None or columns.generation != generation:
            log.info("column store of %s is missing or stale; reloading it from Chroma", name)
            columns = self._columns_from_chroma(collection, generation)
            columns.save(self.columns_root / name, name, str(meta.get("model")), int(meta.get("dim", 0)))
        return _Active(name=name, collection=collection, columns=columns, model=str(meta.get("model")),
                       dim=int(meta.get("dim", 0)), generation=generation, meta=meta)

    def _columns_from_chroma(self, collection, generation: int) -> _Columns:
        ids: list[str] = []
        metas: list[dict] = []
        vectors: list[np.ndarray] = []
        page = 5_000
        total = self._call("counting profiles", collection.count)
        with self._bulk():
            for offset in range(0, total, page):
                got = self._call("reading profiles", lambda: collection.get(
                    limit=page, offset=offset, include=["metadatas", "embeddings"]))
                ids += got["ids"]
                metas += got["metadatas"]
                vectors.append(np.asarray(got["embeddings"], dtype=np.float32))
        frame = pd.DataFrame(metas)
        frame.insert(0, "customer_id", ids)
        for column in ("text_hash", "content_hash"):
            if column not in frame:
                frame[column] = ""
        for column, kind in FILTER_FIELDS.values():
            if kind == "date" and column in frame:
                frame[column] = pd.to_datetime(frame[column], errors="coerce")
        frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_ns")])
        # Metadata hashes cannot be recomputed exactly from Chroma's copy; a zero hash makes the
        # next sync refresh every profile's metadata (cheap: no embedding).
        frame["meta_hash"] = np.zeros(len(frame), dtype=np.uint64)
        dim = int(self.embedder.dim)
        emb = np.concatenate(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        return _Columns(frame, emb, generation, threads=self.threads)

    def check_model(self) -> None:
        active = self._active
        if active is None:
            return
        if active.model != self.embedder.name or active.dim != self.embedder.dim:
            raise IndexMismatchError(
                f"the profile index ({active.name}) was built with embedding model '{active.model}' "
                f"({active.dim} dims) but '{self.embedder.name}' ({self.embedder.dim} dims) is configured; "
                f"rebuild it with `{REBUILD_COMMAND}` or set VALUEDESK_EMBEDDING_MODEL to the model it was built with")

    @property
    def collection_name(self) -> str | None:
        return self._active.name if self._active else None

    def count(self) -> int:
        return len(self._active.columns) if self._active else 0

    def generation(self) -> int:
        return self._active.generation if self._active else 0

    # writing --------------------------------------------------------------------------------
    def _collection_meta(self, generation: int, state: str, extra: dict | None = None) -> dict[str, Any]:
        meta = {"model": self.embedder.name, "dim": int(self.embedder.dim), "generation": int(generation),
                "state": state, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        meta.update(extra or {})
        return meta

    def _write(self, collection, method: str, ids: list[str], **payload) -> None:
        fn = getattr(collection, method)
        for start in range(0, len(ids), self.write_batch):
            part = {k: (v[start:start + self.write_batch] if v is not None else None) for k, v in payload.items()}
            self._call(f"writing profiles to the index ({method})",
                       lambda: fn(ids=ids[start:start + self.write_batch], **part))

    def _embed(self, texts: list[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        step = max(256, self.write_batch)
        for start in range(0, len(texts), step):
            out[start:start + step] = self.embedder.embed(texts[start:start + step])
            if progress:
                progress(min(start + step, len(texts)), len(texts))
        return out

    def rebuild(self, profiles: pd.DataFrame, *, embeddings: np.ndarray | None = None,
                progress: Progress = None) -> SyncReport:
        """Index every profile into a new collection, then switch to it; the old one serves until then.

        `embeddings` (row-aligned with `profiles`) skips embedding, for benchmarks with precomputed vectors.
        """
        with self._lock:
            previous = self._active
            report, active = self._new_collection(profiles, embeddings, progress, previous)
            try:
                self._switch_alias(active.name)
            except BaseException:
                self._discard(active.name, active.collection)
                raise
            self._active = active
            # The previous collection and leftovers of killed rebuilds go, unless a kept build reads them.
            self.drop_unused(collections_in_use(self.data_dir) | {active.name})
        return report

    def stage(self, profiles: pd.DataFrame, *, progress: Progress = None) -> SyncReport:
        """Index every profile into a new collection without switching anything: a build records the
        collection in its version folder and switches alias and version together (`activate`).
        Texts already embedded come from the embedder's cache, so `embedded` counts only new texts."""
        before = getattr(self.embedder, "embedded", None)
        with self._lock:
            report, active = self._new_collection(profiles, None, progress, self._active)
        report.mode = "staged"
        if before is not None:
            report.embedded = int(self.embedder.embedded - before)
        self._staged = active
        return report

    def activate(self, name: str) -> None:
        """Point the alias (and this object) at collection `name`."""
        with self._lock:
            self._switch_alias(name)
            staged = getattr(self, "_staged", None)
            self._pinned = name if self._pinned else None
            self._active = staged if staged is not None and staged.name == name else self._load_active_named(name)

    def _load_active_named(self, name: str) -> _Active | None:
        pinned, self._pinned = self._pinned, name
        try:
            return self._load_active()
        finally:
            self._pinned = pinned

    def drop_unused(self, keep: set[str]) -> list[str]:
        """Drop profile collections (and column stores) no kept build reads; returns their names."""
        dropped = []
        with contextlib.suppress(Exception):
            for col in self._client.list_collections():
                if col.name.startswith(self.prefix) and col.name not in keep:
                    self._discard(col.name, None)
                    dropped.append(col.name)
        if self.columns_root.exists():
            for path in self.columns_root.iterdir():
                if path.name.startswith(self.prefix) and path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)
        return dropped

    def _switch_alias(self, name: str) -> None:
        alias = self._alias()
        self._call("switching the index alias", lambda: alias.modify(metadata={
            "active": name, "model": self.embedder.name, "dim": int(self.embedder.dim),
            "switched": datetime.now(timezone.utc).isoformat(timespec="seconds")}))

    def _new_collection(self, profiles: pd.DataFrame, embeddings: np.ndarray | None, progress: Progress,
                        previous: _Active | None) -> tuple[SyncReport, _Active]:
        """Write every profile into a fresh collection (and its column store), marked ready; nothing switched."""
        started = time.perf_counter()
        prepared = _prepare(profiles)
        n = len(prepared.frame)
        progress = _progress(progress, "indexing profiles")
        if embeddings is not None and (embeddings.shape[0] != n or embeddings.shape[1] != self.embedder.dim):
            raise ProfileIndexError(f"precomputed embeddings have shape {embeddings.shape}, expected ({n}, {self.embedder.dim})")
        name = f"{self.prefix}{datetime.now(timezone.utc):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
        collection = None
        try:
            collection = self._call("creating a profile collection", lambda: self._client.create_collection(
                name, metadata=self._collection_meta(1, "building", {"rows": n}),
                configuration={"hnsw": {"space": "cosine"}}, embedding_function=None))
            vectors = np.zeros((n, self.embedder.dim), dtype=np.float32) if embeddings is None \
                else np.asarray(embeddings, dtype=np.float32)
            step = self.write_batch
            with self._bulk():
                for start in range(0, n, step):
                    stop = min(n, start + step)
                    if embeddings is None:
                        vectors[start:stop] = self.embedder.embed(prepared.embed_texts[start:stop])
                    ids = prepared.frame["customer_id"].iloc[start:stop].tolist()
                    self._call("writing profiles to the new collection", lambda: collection.add(
                        ids=ids, embeddings=vectors[start:stop], documents=prepared.texts[start:stop],
                        metadatas=prepared.metadatas[start:stop]))
                    if progress:
                        progress(stop, n)
            columns = _Columns(prepared.frame, vectors, 1, threads=self.threads)
            try:
                columns.save(self.columns_root / name, name, self.embedder.name, self.embedder.dim)
            except OSError as exc:
                raise self._translate("writing the index column store", exc) from exc
            self._call("marking the new collection ready", lambda: collection.modify(
                metadata=self._collection_meta(1, "ready", {"rows": n})))
        except BaseException as exc:
            self._discard(name, collection)
            served = f"the previous index ({previous.name}) still serves" if previous else "no index was active"
            if isinstance(exc, ProfileIndexError):
                raise ProfileIndexError(f"index rebuild failed, {served}: {exc}") from exc
            if isinstance(exc, Exception):
                raise ProfileIndexError(f"index rebuild failed, {served}: {self._translate('rebuild', exc)}") from exc
            raise
        active = _Active(name=name, collection=collection, columns=columns, model=self.embedder.name,
                         dim=int(self.embedder.dim), generation=1)
        report = SyncReport(mode="full", collection=name, total=n, added=n,
                            embedded=0 if embeddings is not None else n, seconds=time.perf_counter() - started)
        return report, active

    def _discard(self, name: str, collection) -> None:
        """Best effort: a leftover collection wastes space but is never served."""
        with contextlib.suppress(Exception):
            self._client.delete_collection(name)
        shutil.rmtree(self.columns_root / name, ignore_errors=True)

    def sync(self, profiles: pd.DataFrame, *, progress: Progress = None) -> SyncReport:
        """Bring the index in line with `profiles`: embed only new or changed texts, drop removed customers."""
        with self._lock:
            if self._active is None:
                return self.rebuild(profiles, progress=progress)
            progress = _progress(progress, "embedding changed profiles")
            self.check_model()
            started = time.perf_counter()
            prepared = _prepare(profiles)
            active = self._active
            old = active.columns
            new = prepared.frame
            new_ids = new["customer_id"].to_numpy(dtype=object)
            pos_in_old = old.position.get_indexer(new_ids)
            is_new = pos_in_old < 0
            known = ~is_new
            text_changed = np.zeros(len(new), dtype=bool)
            meta_changed = np.zeros(len(new), dtype=bool)
            text_changed[known] = old.text_hash[pos_in_old[known]] != new["text_hash"].to_numpy(dtype=object)[known]
            meta_changed[known] = (old.meta_hash[pos_in_old[known]] != new["meta_hash"].to_numpy()[known]) & ~text_changed[known]
            removed = np.setdiff1d(old.ids.astype(str), new_ids.astype(str), assume_unique=True).tolist()
            embed_rows = np.flatnonzero(is_new | text_changed)
            meta_rows = np.flatnonzero(meta_changed)

            report = SyncReport(mode="incremental", collection=active.name, total=len(new),
                                added=int(is_new.sum()), reembedded=int(text_changed.sum()),
                                metadata_updated=int(len(meta_rows)), deleted=len(removed),
                                unchanged=int(len(new) - len(embed_rows) - len(meta_rows)),
                                embedded=int(len(embed_rows)))
            if not len(embed_rows) and not len(meta_rows) and not removed:
                report.seconds = time.perf_counter() - started
                return report

            vectors = np.zeros((len(new), self.embedder.dim), dtype=np.float32)
            keep_rows = np.flatnonzero(known & ~text_changed)
            vectors[keep_rows] = old.embeddings[pos_in_old[keep_rows]]
            texts = [prepared.texts[i] for i in embed_rows]  # the documents; vectors come from embed_texts
            vectors[embed_rows] = self._embed([prepared.embed_texts[i] for i in embed_rows], progress)

            generation = active.generation + 1
            collection = active.collection
            # Bump the generation before writing: if we die half-way, the column store no longer
            # matches and is reloaded from Chroma on the next open.
            self._call("marking the collection for update", lambda: collection.modify(
                metadata=self._collection_meta(generation, "syncing", {"rows": len(new)})))
            ids_all = new["customer_id"].tolist()
            with self._bulk():
                if len(embed_rows):
                    self._write(collection, "upsert", [ids_all[i] for i in embed_rows],
                                embeddings=vectors[embed_rows], documents=texts,
                                metadatas=[prepared.metadatas[i] for i in embed_rows])
                if len(meta_rows):
                    # The display text may have changed (new scores) with the vector kept: Chroma
                    # embeds documents sent without vectors, so the kept vectors go along.
                    self._write(collection, "update", [ids_all[i] for i in meta_rows],
                                embeddings=vectors[meta_rows], documents=[prepared.texts[i] for i in meta_rows],
                                metadatas=[prepared.metadatas[i] for i in meta_rows])
                if removed:
                    self._write(collection, "delete", removed)
            columns = _Columns(new, vectors, generation, threads=self.threads)
            try:
                columns.save(self.columns_root / active.name, active.name, self.embedder.name, self.embedder.dim)
            except OSError as exc:
                raise self._translate("writing the index column store", exc) from exc
            self._call("marking the collection ready", lambda: collection.modify(
                metadata=self._collection_meta(generation, "ready", {"rows": len(new)})))
            self._active = _Active(name=active.name, collection=collection, columns=columns, model=active.model,
                                   dim=active.dim, generation=generation)
            report.seconds = time.perf_counter() - started
            return report

    # searching ------------------------------------------------------------------------------
    def search(self, query: str, filters: dict | CustomerFilter | None = None, limit: int = 10) -> list[Hit]:
        """Profiles closest in meaning to `query`, among those matching `filters`, best first."""
        text = check_query(query)
        conditions = parse_filters(filters)
        self._check_limit(limit)
        active = self._require_active()
        vector = self.embedder.embed([text])[0]
        return self._search(active, vector, conditions, limit)

    def search_vector(self, vector: np.ndarray, filters: dict | CustomerFilter | None = None,
                      limit: int = 10) -> list[Hit]:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.embedder.dim:
            raise QueryError(f"query vector has {vector.shape[0]} dims, the index has {self.embedder.dim}")
        self._check_limit(limit)
        return self._search(self._require_active(), vector, parse_filters(filters), limit)

    @staticmethod
    def _check_limit(limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")

    def _require_active(self) -> _Active:
        active = self._active
        if active is None:
            # Opened before the first build finished (a UI indexing in the background, another
            # process): the alias may point at a collection by now.
            with self._lock:
                if self._active is None:
                    self._active = self._load_active()
                active = self._active
        if active is None:
            raise ProfileIndexError(f"the profile index is empty ({self._where()}); build it with `valuedesk build`")
        self.check_model()
        return active

    def _search(self, active: _Active, vector: np.ndarray, conditions: list[Condition], limit: int) -> list[Hit]:
        import chromadb.errors

        try:
            positions, scores = self._rank(active, vector, conditions, limit)
            return self._hits(active, positions, scores)
        except ProfileIndexError as exc:
            if not isinstance(exc.__cause__, chromadb.errors.NotFoundError):
                raise
            # Another process rebuilt the index and dropped this collection: follow the alias once.
            with self._lock:
                self._active = self._load_active()
                self.check_model()
                active = self._require_active()
            positions, scores = self._rank(active, vector, conditions, limit)
            return self._hits(active, positions, scores)

    def _rank(self, active: _Active, vector: np.ndarray, conditions: list[Condition],
              limit: int) -> tuple[np.ndarray, np.ndarray]:
        cols = active.columns
        n = len(cols)
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        # Up to scan_max profiles even a full code scan is cheap, so every query is ranked exactly:
        # on the bench's profiles Chroma's HNSW found 87-92% of the true top 10 at 100k, 51% at 1M
        # (templated profile texts make tight clusters of near-identical vectors).
        scan_all = n <= self.scan_max and cols.exact_is_cheap()
        if not conditions and not scan_all:
            self.last_plan = "ann"
            positions = self._ann(active, vector, min(limit, n))
            return cols.exact_scores(vector, positions, limit)
        selection = cols.selection(conditions)
        if selection.count == 0:
            self.last_plan = "empty"
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if selection.count <= self.exact_max or selection.count <= limit or scan_all:
            positions, scores, self.last_plan = cols.top(vector, selection, limit)
            return positions, scores
        k = int(math.ceil(limit * n / selection.count * self.overfetch)) + 10
        while True:
            k = min(k, n)
            positions = self._ann(active, vector, k)
            kept = positions[selection.mask[positions]]
            if len(kept) >= limit or k >= n:
                self.last_plan = f"ann+postfilter(k={k})"
                return cols.exact_scores(vector, kept, limit)
            if k >= self.ann_max or cols.exact_is_cheap():
                # Too few of the nearest profiles pass the filter. The filter fields are written
                # into the profile text, so they correlate with the vector and widening k rarely
                # pays (at 1M it took a 10%-selective filter to p95 150 ms); ranking the selection
                # exactly costs at most a full code scan (~25 ms per million profiles on 2 threads).
                positions, scores, plan = cols.top(vector, selection, limit)
                self.last_plan = f"{plan}-fallback"
                return positions, scores
            k *= 4

    def _ann(self, active: _Active, vector: np.ndarray, k: int) -> np.ndarray:
        res = self._call("searching the index", lambda: active.collection.query(
            query_embeddings=[vector], n_results=k, include=["distances"]))
        positions = active.columns.position.get_indexer(res["ids"][0])
        # Ids Chroma has but the column store lacks can only come from an interrupted write; skip them.
        return positions[positions >= 0]

    def _hits(self, active: _Active, positions: np.ndarray, scores: np.ndarray) -> list[Hit]:
        if len(positions) == 0:
            return []
        ids = [str(active.columns.ids[p]) for p in positions]
        got = self._call("reading matched profiles", lambda: active.collection.get(
            ids=ids, include=["documents", "metadatas"]))
        by_id = {i: (d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}
        hits = []
        for cid, score in zip(ids, scores):
            doc, meta = by_id.get(cid, (None, None))
            if meta is None:
                continue
            meta = hit_metadata(meta)
            hits.append(Hit(customer_id=cid, score=round(float(score), 6), snippet=_snippet(doc), metadata=meta))
        return hits

    def close(self) -> None:
        with contextlib.suppress(Exception):
            session = getattr(self, "_http_session", None)
            if session is not None:
                session.close()


def open_index(settings=None, *, verify: bool = True, collection: str | None = None) -> ProfileIndex:
    """The index configured by settings (what the tools' dependencies object holds); `collection`
    pins the one a build version recorded."""
    settings = settings or get_settings()
    return ProfileIndex(settings.data_dir, settings.chroma_url,
                        get_embedder(settings.embedding_model, settings.data_dir / "embeddings"),
                        settings.chroma_timeout_s, verify=verify, collection=collection)

