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
import logging
import re
import shutil
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from predictor.customers.audience import Condition, CustomerFilter, parse_conditions
from predictor.layout import collections_in_use
from predictor.search.chroma import ChromaConnection
from predictor.search.collections import Active, Progress, progress_callback, read_columns, write_collection
from predictor.search.columns import ColumnStore
from predictor.search.embeddings import Embedder, get_embedder
from predictor.search.errors import REBUILD_COMMAND, IndexMismatchError, ProfileIndexError, QueryError
from predictor.search.plan import SearchThresholds, rank
from predictor.search.prepare import (Hit, SyncReport, check_query, hit_metadata, prepare_profiles,
                                      snippet)
from predictor.search.sync import sync_collection
from predictor.settings import Settings

log = logging.getLogger(__name__)

MAX_LIMIT = 500


def _default(name: str) -> Any:
    """A setting's declared default (no environment read): for indexes opened without settings."""
    return Settings.model_fields[name].default

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
        `exact_max` are, and the rest go through HNSW first. Without settings, the settings' declared
        defaults apply (nothing is read from the environment here)."""
        if isinstance(data_dir, Settings):
            settings, data_dir = data_dir, data_dir.data_dir
            chroma_url = chroma_url if chroma_url is not None else settings.chroma_url
            embedder = embedder if embedder is not None else settings.embedding_model
            value = settings.__getattribute__
        else:
            value = _default
        if data_dir is None:
            raise ProfileIndexError("the profile index needs a data directory (or the settings that name one)")
        self.data_dir = Path(data_dir)
        self.timeout_s = float(timeout_s if timeout_s is not None else value("chroma_timeout_s"))
        self.threads = value("threads")  # the column store's scans and the embedder
        if embedder is None or isinstance(embedder, str):
            embedder = get_embedder(embedder, self.data_dir / "embeddings", threads=self.threads)
        self.embedder: Embedder = embedder
        self.thresholds = SearchThresholds(
            scan_max=value("index_scan_max") if scan_max is None else scan_max,
            exact_max=value("index_exact_max") if exact_max is None else exact_max,
            overfetch=value("index_overfetch") if overfetch is None else overfetch, ann_max=ann_max)
        self.write_batch = write_batch
        # Several indexes (tests, tenants) can share one Chroma server under distinct namespaces.
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,40}", namespace):
            raise ProfileIndexError(f"index namespace '{namespace}' must be 2-41 lowercase letters, digits or '-'")
        self.alias_name, self.prefix = f"{namespace}-alias", f"{namespace}-profiles-"
        self.columns_root = self.data_dir / "chroma_columns"
        self._lock = threading.RLock()
        self._pinned = collection
        self.chroma = ChromaConnection(self.data_dir, chroma_url, self.timeout_s)
        self._active: Active | None = self._load_active()
        self.last_plan: str | None = None  # which search plan the last query used (for benches/tests)
        if verify:
            self.check_model()

    @property
    def client(self):
        """The Chroma client (tests and benches reach collections through it)."""
        return self.chroma.client

    @property
    def mode(self) -> str:
        return "server" if self.chroma.chroma_url else "embedded"

    def has_collection(self, name: str) -> bool:
        return any(c.name == name for c in self.chroma.call("listing collections", self.client.list_collections))

    # alias and active collection -----------------------------------------------------------
    def _alias(self):
        return self.chroma.call("reading the index alias", lambda: self.client.get_or_create_collection(
            self.alias_name, embedding_function=None))

    def _load_active(self) -> Active | None:
        name = self._pinned or (self._alias().metadata or {}).get("active")
        if not name:
            return None
        import chromadb.errors

        try:
            collection = self.client.get_collection(name, embedding_function=None)
        except chromadb.errors.NotFoundError as exc:
            pointer = "the serving build records" if self._pinned else "the index alias points at"
            raise ProfileIndexError(f"{pointer} collection '{name}', which is missing from "
                                    f"{self.chroma.where()}; run `{REBUILD_COMMAND}`") from exc
        except Exception as exc:
            raise self.chroma.translate("opening the profile collection", exc) from exc
        meta = dict(collection.metadata or {})
        generation = int(meta.get("generation", 0))
        columns = ColumnStore.load(self.columns_root / name, threads=self.threads)
        if columns is None or columns.generation != generation:
            log.info("column store of %s is missing or stale; reloading it from Chroma", name)
            columns = read_columns(self, collection, generation)
            columns.save(self.columns_root / name, name, str(meta.get("model")), int(meta.get("dim", 0)))
        return Active(name=name, collection=collection, columns=columns, model=str(meta.get("model")),
                       dim=int(meta.get("dim", 0)), generation=generation, meta=meta)

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
    def collection_meta(self, generation: int, state: str, extra: dict | None = None) -> dict[str, Any]:
        meta = {"model": self.embedder.name, "dim": int(self.embedder.dim), "generation": int(generation),
                "state": state, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        meta.update(extra or {})
        return meta

    def write(self, collection, method: str, ids: list[str], **payload) -> None:
        fn = getattr(collection, method)
        for start in range(0, len(ids), self.write_batch):
            part = {k: (v[start:start + self.write_batch] if v is not None else None) for k, v in payload.items()}
            self.chroma.call(f"writing profiles to the index ({method})",
                       lambda: fn(ids=ids[start:start + self.write_batch], **part))

    def embed(self, texts: list[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
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
            report, active = write_collection(self, profiles, embeddings, progress, previous)
            try:
                self._switch_alias(active.name)
            except BaseException:
                self.discard(active.name, active.collection)
                raise
            self._active = active
            # The previous collection and leftovers of killed rebuilds go, unless a kept build reads them.
            self.drop_unused(collections_in_use(self.data_dir) | {active.name})
        return report

    def stage(self, profiles: pd.DataFrame, *, progress: Progress = None, writer=None) -> SyncReport:
        """Index every profile into a new collection without switching anything: a build records the
        collection in its version folder and switches alias and version together (`activate`).
        Texts already embedded come from the embedder's cache, so `embedded` counts only new texts.
        `writer`: who writes the rows into a server's collection (collections.write_collection)."""
        before = getattr(self.embedder, "embedded", None)
        with self._lock:
            report, active = write_collection(self, profiles, None, progress, self._active, writer)
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

    def _load_active_named(self, name: str) -> Active | None:
        pinned, self._pinned = self._pinned, name
        try:
            return self._load_active()
        finally:
            self._pinned = pinned

    def drop_unused(self, keep: set[str]) -> list[str]:
        """Drop profile collections (and column stores) no kept build reads; returns their names."""
        dropped = []
        with contextlib.suppress(Exception):
            for col in self.client.list_collections():
                if col.name.startswith(self.prefix) and col.name not in keep:
                    self.discard(col.name, None)
                    dropped.append(col.name)
        if self.columns_root.exists():
            for path in self.columns_root.iterdir():
                if path.name.startswith(self.prefix) and path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)
        return dropped

    def _switch_alias(self, name: str) -> None:
        alias = self._alias()
        self.chroma.call("switching the index alias", lambda: alias.modify(metadata={
            "active": name, "model": self.embedder.name, "dim": int(self.embedder.dim),
            "switched": datetime.now(timezone.utc).isoformat(timespec="seconds")}))

    def discard(self, name: str, collection) -> None:
        """Best effort: a leftover collection wastes space but is never served."""
        with contextlib.suppress(Exception):
            self.client.delete_collection(name)
        shutil.rmtree(self.columns_root / name, ignore_errors=True)


    def sync(self, profiles: pd.DataFrame, *, progress: Progress = None) -> SyncReport:
        """Bring the index in line with `profiles`: embed only new or changed texts, drop removed customers."""
        with self._lock:
            if self._active is None:
                return self.rebuild(profiles, progress=progress)
            self.check_model()
            active = self._active
            report, columns = sync_collection(self, active, prepare_profiles(profiles),
                                              progress_callback(progress, "embedding changed profiles"))
            if columns is not None:
                self._active = Active(name=active.name, collection=active.collection, columns=columns,
                                       model=active.model, dim=active.dim, generation=columns.generation)
            return report

    # searching ------------------------------------------------------------------------------
    def search(self, query: str, filters: dict | CustomerFilter | None = None, limit: int = 10) -> list[Hit]:
        """Profiles closest in meaning to `query`, among those matching `filters`, best first."""
        text = check_query(query)
        conditions = parse_conditions(filters)
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
        return self._search(self._require_active(), vector, parse_conditions(filters), limit)

    @staticmethod
    def _check_limit(limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")

    def _require_active(self) -> Active:
        active = self._active
        if active is None:
            # Opened before the first build finished (a UI indexing in the background, another
            # process): the alias may point at a collection by now.
            with self._lock:
                if self._active is None:
                    self._active = self._load_active()
                active = self._active
        if active is None:
            raise ProfileIndexError(f"the profile index is empty ({self.chroma.where()}); build it with `valuedesk build`")
        self.check_model()
        return active

    def _search(self, active: Active, vector: np.ndarray, conditions: list[Condition], limit: int) -> list[Hit]:
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
    def _rank(self, active: Active, vector: np.ndarray, conditions: list[Condition],
              limit: int) -> tuple[np.ndarray, np.ndarray]:
        positions, scores, self.last_plan = rank(active.columns, vector, conditions, limit,
                                                 lambda k: self._ann(active, vector, k), self.thresholds)
        return positions, scores

    def _ann(self, active: Active, vector: np.ndarray, k: int) -> np.ndarray:
        res = self.chroma.call("searching the index", lambda: active.collection.query(
            query_embeddings=[vector], n_results=k, include=["distances"]))
        positions = active.columns.position.get_indexer(res["ids"][0])
        # Ids Chroma has but the column store lacks can only come from an interrupted write; skip them.
        return positions[positions >= 0]

    def _hits(self, active: Active, positions: np.ndarray, scores: np.ndarray) -> list[Hit]:
        if len(positions) == 0:
            return []
        ids = [str(active.columns.ids[p]) for p in positions]
        got = self.chroma.call("reading matched profiles", lambda: active.collection.get(
            ids=ids, include=["documents", "metadatas"]))
        by_id = {i: (d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}
        hits = []
        for cid, score in zip(ids, scores):
            doc, meta = by_id.get(cid, (None, None))
            if meta is None:
                continue
            meta = hit_metadata(meta)
            hits.append(Hit(customer_id=cid, score=round(float(score), 6), snippet=snippet(doc), metadata=meta))
        return hits

    def close(self) -> None:
        self.chroma.close()


def open_index(settings: Settings, *, verify: bool = True, collection: str | None = None) -> ProfileIndex:
    """The index configured by settings (what the tools' dependencies object holds); `collection`
    pins the one a build version recorded."""
    return ProfileIndex(settings.data_dir, settings.chroma_url,
                        get_embedder(settings.embedding_model, settings.data_dir / "embeddings", threads=settings.threads),
                        settings.chroma_timeout_s, verify=verify, collection=collection)
