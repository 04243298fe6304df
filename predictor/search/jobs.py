"""Indexing the profiles in the background, with progress anyone can read, and search meanwhile.

A first run needs minutes to embed every profile and only about a minute for everything else, so
the UI builds the customer tables first, starts serving, and indexes in an `IndexJob` thread:

1. embed the profiles whose vectors are not in the embedding cache yet, most valuable customers
   first, chunk by chunk (each chunk is on disk as soon as it is computed: a restart resumes);
2. write the index from the cache (`predictor.build_index.sync_index`: seconds, nothing is re-embedded);
3. record the result in build.json, so the next start knows the index is complete.

Progress lives in ``<data_dir>/index_state.json`` (written atomically after each chunk), which this
layer owns and every other one only reads (`read_index_state`): the tools answer "still being
built, 1,200 of 4,333 profiles" from it and the UI shows it. While it is not ready,
`PartialSearch` ranks the profiles already embedded, exactly, straight from the cache.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.search.embedding_cache import DEFAULT_CHUNK, EmbeddingCache, cache_dir, caching_embedder, text_key
from predictor.errors import ValueDeskError
from predictor.atomic import write_text_atomic
from predictor.settings import Settings

log = logging.getLogger(__name__)

STATE_FILE = "index_state.json"
RUNNING = ("embedding", "writing")
# Nice value of the indexing thread: the questions a marketer asks meanwhile get the CPU first.
JOB_NICENESS = 10


def state_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / STATE_FILE


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class IndexState:
    """Where profile indexing stands. `state`: embedding, writing, ready, failed, or interrupted
    (the process that was indexing is gone: a restart resumes it)."""

    state: str
    total: int = 0
    done: int = 0  # profiles whose vectors are computed (from the cache or this run)
    embedded: int = 0  # of those, embedded by this run
    model: str = ""
    message: str = ""
    started_at: str = ""
    updated_at: str = ""
    finished_at: str | None = None
    pid: int = 0
    host: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def running(self) -> bool:
        return self.state in RUNNING

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_index_state(data_dir: Path | str) -> IndexState | None:
    """The indexing state recorded under `data_dir`; None when no background indexing ever ran there."""
    try:
        raw = json.loads(state_path(data_dir).read_text())
        state = IndexState(**{k: v for k, v in raw.items() if k in IndexState.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None
    if state.running and state.host == socket.gethostname() and not _alive(state.pid):
        state.state = "interrupted"
    return state


def write_index_state(data_dir: Path | str, state: IndexState) -> None:
    path = state_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    state.updated_at = _now()
    write_text_atomic(path, json.dumps(asdict(state)), mode=0o644)


def mark_index_ready(data_dir: Path | str, summary: str) -> None:
    """Record a complete index where background indexing had left a state (a foreground build
    finished what an interrupted or failed job started)."""
    state = read_index_state(data_dir)
    if state is None or state.ready:
        return
    state.state, state.message, state.finished_at, state.done = "ready", summary, _now(), state.total
    write_index_state(data_dir, state)


def _profiles(path: Path, version: Any) -> pd.DataFrame:
    if not path.exists():
        raise ValueDeskError(f"no profiles at {version.rel(path)}; run `valuedesk build` first")
    version.verify(path.name)
    return pd.read_parquet(path)


def _priority(profiles: pd.DataFrame) -> np.ndarray:
    """Row order to embed in: most valuable customers first, so early searches cover them."""
    for column in ("customer_value", "predicted_value"):
        if column in profiles:
            values = pd.to_numeric(profiles[column], errors="coerce").fillna(-np.inf).to_numpy()
            return np.argsort(-values, kind="stable")
    return np.arange(len(profiles))


def embedded_texts(prepared: Any) -> list[str]:
    """The texts the index computes vectors from (`prepare_profiles`'s embed_texts where it has them, else
    the profile texts): the job embeds and looks up exactly these, so the index's own sync finds
    every vector in the cache."""
    texts = getattr(prepared, "embed_texts", None)
    return list(texts) if texts is not None else list(prepared.texts)


def _embedder(settings: Settings):
    from predictor.search.embeddings import configured_embedder

    return configured_embedder(settings)


class IndexJob:
    """Embeds and indexes the built profiles of one data directory, in a thread or inline (`run`)."""

    def __init__(self, settings: Settings, *, embedder: Any = None, chunk: int = DEFAULT_CHUNK,
                 niceness: int = JOB_NICENESS):
        self.settings, self.chunk, self.niceness = settings, chunk, niceness
        self._embedder = embedder
        self.state = IndexState(state="embedding", pid=os.getpid(), host=socket.gethostname(), started_at=_now())
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()

    def start(self) -> "IndexJob":
        self._write()  # visible before the thread gets the CPU: the UI says "indexing" from the start
        self._thread = threading.Thread(target=self._background, name="valuedesk-index", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def _background(self) -> None:
        try:
            # Linux nices threads one by one; the model's worker threads, started from here, inherit it.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.niceness)
        except (AttributeError, OSError):
            pass
        try:
            self.run()
        except BaseException:  # noqa: BLE001 - recorded in the state file and the log; the server keeps serving
            log.exception("background profile indexing failed")

    def run(self) -> str:
        """Embed what is missing, write the index, record it; returns the index summary."""
        try:
            summary = self._run()
        except BaseException as exc:
            self.error = exc
            self.state.state, self.state.finished_at = "failed", _now()
            self.state.message = str(exc) or type(exc).__name__
            self._write()
            raise
        finally:
            self._finished.set()
        return summary

    def _run(self) -> str:
        from predictor.build_index import sync_index
        from predictor.layout import PROFILES
        from predictor.search.prepare import prepare_profiles
        from predictor.layout import current_version

        version = current_version(self.settings.data_dir)  # index the build serving now, recorded in it
        profiles = _profiles(version.path(PROFILES), version)
        texts = embedded_texts(prepare_profiles(profiles))
        embedder = caching_embedder(self._embedder or _embedder(self.settings), self.settings.data_dir,
                                    chunk=self.chunk, on_chunk=self._advance)
        have = embedder.cache.has(embedder.keys(texts))
        self.state.total, self.state.done, self.state.model = len(texts), int(have.sum()), embedder.name
        self._write()
        todo = [texts[i] for i in _priority(profiles) if not have[i]]
        embedder.embed(todo)  # stores each chunk as it goes; _advance reports it
        self.state.state, self.state.done = "writing", self.state.total
        self._write()
        summary = sync_index(profiles, self.settings, version=version, progress=False, embedder=embedder)
        self.state.state, self.state.message, self.state.finished_at = "ready", summary, _now()
        self._write()
        log.info("profile search ready: %s", summary)
        return summary

    def _advance(self, n: int) -> None:
        self.state.done = min(self.state.total, self.state.done + n)
        self.state.embedded += n
        self._write()

    def _write(self) -> None:
        try:
            write_index_state(self.settings.data_dir, self.state)
        except OSError as exc:  # progress display only; indexing goes on
            log.warning("could not write %s: %s", STATE_FILE, exc)


_JOBS: dict[str, IndexJob] = {}
_JOBS_LOCK = threading.Lock()


def start_index_job(settings: Settings, **kwargs) -> IndexJob:
    """Start indexing `settings.data_dir` in the background, unless this process already is."""
    key = str(Path(settings.data_dir).resolve())
    with _JOBS_LOCK:
        job = _JOBS.get(key)
        if job is None or job.finished:
            job = _JOBS[key] = IndexJob(settings, **kwargs).start()
        return job


@dataclass
class _Snapshot:
    stamp: tuple
    texts: list[str]
    metadatas: list[dict[str, Any]]
    rows: np.ndarray  # rows of the prepared profiles that have a vector
    columns: Any  # predictor.search.columns.ColumnStore over those rows
    total: int


@dataclass
class PartialSearch:
    """Exact search over the profiles whose vectors are already in the embedding cache (while the
    index is being built). Reloads when the profiles file or the cache grows."""

    settings: Settings
    embedder: Any = None
    _snapshot: _Snapshot | None = field(default=None, repr=False)
    _keys: tuple[tuple, list[bytes], Any] | None = field(default=None, repr=False)
    _cache: EmbeddingCache | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def search(self, query: str, filters: Any = None, limit: int = 10) -> tuple[list[Any], int, int]:
        """(hits, profiles searched, profiles in total)."""
        from predictor.customers.audience import parse_conditions
        from predictor.search.index import ProfileIndex
        from predictor.search.prepare import Hit, check_query, hit_metadata, snippet

        text = check_query(query)
        conditions = parse_conditions(filters)
        ProfileIndex._check_limit(limit)
        with self._lock:
            snap = self._load()
        if snap.columns is None:
            return [], 0, snap.total
        selection = snap.columns.selection(conditions)
        if selection.count == 0:
            return [], len(snap.rows), snap.total
        vector = self.embedder.embed([text])[0]
        positions, scores, _ = snap.columns.top(vector, selection, limit)
        hits = [Hit(customer_id=str(snap.columns.ids[p]), score=round(float(s), 6),
                    snippet=snippet(snap.texts[snap.rows[p]]), metadata=hit_metadata(snap.metadatas[snap.rows[p]]))
                for p, s in zip(positions.tolist(), scores.tolist())]
        return hits, len(snap.rows), snap.total

    def _load(self) -> _Snapshot:
        from predictor.build_state import profiles_path
        from predictor.search.columns import ColumnStore
        from predictor.search.prepare import prepare_profiles

        if self.embedder is None:
            self.embedder = _embedder(self.settings)
        if self._cache is None:
            # merge_over=None: the indexing job may be writing next to us; only it tidies the files.
            self._cache = EmbeddingCache(cache_dir(self.settings.data_dir, self.embedder.name, self.embedder.dim),
                                         self.embedder.dim, merge_over=None)
        path = profiles_path(self.settings)
        stat = path.stat()
        profile_stamp = (stat.st_mtime_ns, stat.st_size)
        if self._keys is None or self._keys[0] != profile_stamp:
            prepared = prepare_profiles(pd.read_parquet(path))
            self._keys = (profile_stamp, [text_key(self.embedder.name, t) for t in embedded_texts(prepared)], prepared)
        self._cache.refresh()
        stamp = (profile_stamp, len(self._cache))
        if self._snapshot is not None and self._snapshot.stamp == stamp:
            return self._snapshot
        _, keys, prepared = self._keys
        vectors, found = self._cache.get(keys)
        rows = np.flatnonzero(found)
        columns = (ColumnStore(prepared.frame.iloc[rows].reset_index(drop=True), vectors[rows], 0,
                            threads=self.settings.threads) if len(rows) else None)
        self._snapshot = _Snapshot(stamp, prepared.texts, prepared.metadatas, rows, columns, len(keys))
        return self._snapshot
