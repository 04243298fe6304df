"""The index's column store: the filterable fields and vectors of one collection, row-aligned, beside
Chroma (see predictor/search/index.py for why), and the exact rankers over a selection: a float32
gather for small selections, an 8-bit code scan (faiss) with a bitmap selector for large ones.
Selections come from the one audience engine (predictor.customers.audience_engine)."""

from __future__ import annotations

import functools
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.customers.audience import Condition
from predictor.customers.audience_engine import AudienceTable, Selection
from predictor.atomic import atomic_path, write_text_atomic


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
_scan_pools: dict[int, ThreadPoolExecutor] = {}
_scan_pools_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _faiss():
    """faiss (faiss-cpu) if installed; without it every exact plan gathers float32 vectors."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _pool(workers: int) -> ThreadPoolExecutor:
    """One pool per shard count, made once and never replaced: a pool swapped out (and shut down)
    while another thread submits to it fails that search. Shard counts are few (1 to `threads`)."""
    with _scan_pools_lock:
        pool = _scan_pools.get(workers)
        if pool is None:
            pool = _scan_pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="index-scan")
        return pool


class VectorCodes:
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


class ColumnStore:
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
        # Filters run on the one audience engine; an unknown country names the closest one.
        self.audience = AudienceTable(frame, strict_countries=True)
        self._vector_codes: VectorCodes | None = None
        self._codes_lock = threading.Lock()
        if len(self) > _GATHER_MAX:
            self.vector_codes()  # built now (about 1.5 s per million profiles), not in a first query

    def __len__(self) -> int:
        return len(self.ids)

    def values(self, field_name: str) -> list[str]:
        return self.audience.values(field_name)

    def vector_codes(self) -> VectorCodes | None:
        """The 8-bit code scanner (None without faiss)."""
        with self._codes_lock:
            if self._vector_codes is None and len(self):
                faiss = _faiss()
                if faiss is None:
                    return None
                shards = max(1, min(self.threads, len(self) // _SHARD_MIN_ROWS))
                self._vector_codes = VectorCodes(faiss, self.embeddings, shards)
            return self._vector_codes

    def exact_is_cheap(self) -> bool:
        """Whether ranking any selection exactly is cheap: few rows, or the 8-bit codes are built."""
        return len(self) <= _GATHER_MAX or self._vector_codes is not None

    def selection(self, conditions: list[Condition]) -> Selection:
        return self.audience.select(conditions)

    def mask(self, conditions: list[Condition]) -> np.ndarray:
        return self.selection(conditions).mask

    def clear_cache(self) -> None:
        self.audience.clear()

    def top(self, vector: np.ndarray, selection: Selection, limit: int) -> tuple[np.ndarray, np.ndarray, str]:
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

    def save(self, directory: Path, collection: str, model: str, dim: int) -> None:
        """Write generation-named files, then the manifest (atomically), then drop older ones."""
        directory.mkdir(parents=True, exist_ok=True)
        meta_name, emb_name = f"meta-{self.generation}.parquet", f"emb-{self.generation}.npy"
        with atomic_path(directory / meta_name, 0o644) as tmp:
            self.frame.to_parquet(tmp, index=False)
        with atomic_path(directory / emb_name, 0o644) as tmp:
            _save_array(tmp, np.ascontiguousarray(self.embeddings, dtype=np.float32))
        write_text_atomic(directory / "manifest.json", json.dumps({
            "collection": collection, "generation": self.generation, "rows": len(self),
            "model": model, "dim": dim, "meta": meta_name, "embeddings": emb_name}), 0o644)
        for old in directory.iterdir():
            if old.name not in {meta_name, emb_name, "manifest.json"}:
                old.unlink(missing_ok=True)
        # Serve from the memory map so a large index does not sit in RAM twice.
        self.embeddings = np.load(directory / emb_name, mmap_mode="r")

    @classmethod
    def load(cls, directory: Path, threads: int = 1) -> "ColumnStore | None":
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            frame = pd.read_parquet(directory / manifest["meta"])
            emb = np.load(directory / manifest["embeddings"], mmap_mode="r")
        except (OSError, ValueError, KeyError):
            return None
        if len(frame) != emb.shape[0]:
            return None
        return cls(frame, emb, int(manifest["generation"]), threads=threads)


