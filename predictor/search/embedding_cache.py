"""Embedded profile vectors kept on disk by text, so no text is ever embedded twice.

Embedding is the slow part of indexing (minutes for a few thousand profiles on two cores). Each
chunk of new vectors is written as one file the moment it is computed, so an indexing run that is
killed, or a rebuild after a restart, looks its texts up here first and embeds only what is missing.

Layout: ``<data_dir>/embeddings/vectors/<model>-<dim>/chunk-<time>-<random>.npz``, each with
``keys`` (sha256 of the model name and the exact text passed to the embedder, 32 bytes each) and
``vectors`` (float32). A chunk is written to a temp file and renamed, so readers only ever see
whole chunks; a key present in two chunks (two writers, a merge cut short) is harmless, the
vectors are the same. Many small chunks are merged into one on open.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from predictor.atomic import atomic_path

log = logging.getLogger(__name__)

CHUNK_PREFIX = "chunk-"
DEFAULT_CHUNK = 64  # texts per stored chunk: a few seconds of embedding on two cores, so little is lost to a kill
MERGE_OVER = 64  # chunk files; above this, opening the cache merges them into one


def cache_dir(data_dir: Path | str, model: str, dim: int) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
    return Path(data_dir) / "embeddings" / "vectors" / f"{slug}-{int(dim)}"


def text_key(model: str, text: str) -> bytes:
    """The cache key of one text: the model is part of it, so two models never share a vector."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).digest()


def write_chunk(path: Path, keys: np.ndarray, vectors: np.ndarray) -> None:
    """One chunk file (keys as an (n, 32) uint8 array), atomically: readers see all of it or nothing."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, keys=keys, vectors=vectors)


def packed_keys(keys: Sequence[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)


class EmbeddingCache:
    """Vectors by text key, loaded from the chunk files of one model; thread-safe."""

    def __init__(self, directory: Path | str, dim: int, *, merge_over: int | None = MERGE_OVER):
        """`merge_over=None` never merges (readers that only look, next to a writer that may)."""
        self.directory = Path(directory)
        self.dim = int(dim)
        self._lock = threading.Lock()
        self._row: dict[bytes, int] = {}
        self._blocks: list[np.ndarray] = []
        self._vectors = np.zeros((0, self.dim), dtype=np.float32)
        self._seen: set[str] = set()
        self.refresh()
        if merge_over is not None and len(self._seen) > merge_over:
            self._merge()

    def __len__(self) -> int:
        return len(self._row)

    def refresh(self) -> int:
        """Read chunk files written since the last look (by this or another process); returns how many."""
        try:
            names = sorted(p.name for p in self.directory.glob(CHUNK_PREFIX + "*.npz"))
        except OSError:
            return 0
        new = [n for n in names if n not in self._seen]
        for name in new:
            try:
                with np.load(self.directory / name) as data:
                    keys, vectors = data["keys"], np.asarray(data["vectors"], dtype=np.float32)
            except FileNotFoundError:  # merged away meanwhile; the merged file is read instead
                continue
            except (OSError, ValueError, KeyError) as exc:  # a foreign or damaged file: its texts are embedded again
                log.warning("ignoring unreadable embedding cache file %s: %s", name, exc)
                self._seen.add(name)
                continue
            if vectors.shape != (len(keys), self.dim):
                self._seen.add(name)
                continue
            self._add(keys, vectors)
            self._seen.add(name)
        return len(new)

    def _add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            start = len(self._vectors) + sum(len(b) for b in self._blocks)
            self._blocks.append(vectors)
            for i, key in enumerate(keys.tolist()):
                self._row.setdefault(bytes(key), start + i)

    def _all(self) -> np.ndarray:
        with self._lock:
            if self._blocks:
                self._vectors = np.concatenate([self._vectors, *self._blocks])
                self._blocks = []
            return self._vectors

    def get(self, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, found): row i is key i's vector where found[i], zeros elsewhere."""
        rows = np.array([self._row.get(k, -1) for k in keys], dtype=np.int64)
        found = rows >= 0
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        if found.any():
            out[found] = self._all()[rows[found]]
        return out, found

    def has(self, keys: Sequence[bytes]) -> np.ndarray:
        return np.array([k in self._row for k in keys], dtype=bool)

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store one chunk: on disk first (atomically), then in memory."""
        if not len(keys):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), self.dim):
            raise ValueError(f"vectors have shape {vectors.shape}, expected ({len(keys)}, {self.dim})")
        packed = packed_keys(keys)
        name = f"{CHUNK_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        self._write(name, packed, vectors)
        self._seen.add(name)
        self._add(packed, vectors)

    def _write(self, name: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        write_chunk(self.directory / name, keys, vectors)

    def _merge(self) -> None:
        """One file instead of many: write the merged chunk first, then drop the ones it covers."""
        old = sorted(self._seen)
        keys = np.frombuffer(b"".join(self._row), dtype=np.uint8).reshape(len(self._row), 32)
        rows = np.fromiter(self._row.values(), dtype=np.int64, count=len(self._row))
        try:
            self._write(f"{CHUNK_PREFIX}{time.time_ns():020d}-merged.npz", keys, self._all()[rows])
        except OSError as exc:  # the small files still serve
            log.warning("could not merge the embedding cache under %s: %s", self.directory, exc)
            return
        self._seen = set()
        for name in old:
            (self.directory / name).unlink(missing_ok=True)
        self.refresh()


class CachingEmbedder:
    """An Embedder that looks each text up in an EmbeddingCache first and stores what it embeds.

    Missing texts are embedded and stored `chunk` at a time, so a kill loses at most one chunk.
    `embedded` counts texts the model actually embedded (not cache hits); `on_chunk(n)` is called
    after each stored chunk with its size.
    """

    def __init__(self, inner, cache: EmbeddingCache, *, chunk: int = DEFAULT_CHUNK,
                 on_chunk: Callable[[int], None] | None = None):
        self.inner, self.cache, self.chunk, self.on_chunk = inner, cache, max(1, int(chunk)), on_chunk
        self.name, self.dim = inner.name, int(inner.dim)
        self.backend = getattr(inner, "backend", "unknown")
        self.embedded = 0

    def keys(self, texts: Sequence[str]) -> list[bytes]:
        return [text_key(self.name, t) for t in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        keys = self.keys(texts)
        out, found = self.cache.get(keys)
        # Each distinct missing text once (identical profiles share a vector).
        first: dict[bytes, int] = {}
        for i in np.flatnonzero(~found).tolist():
            first.setdefault(keys[i], i)
        todo = list(first.values())
        computed: dict[bytes, np.ndarray] = {}
        for start in range(0, len(todo), self.chunk):
            part = todo[start:start + self.chunk]
            vectors = np.asarray(self.inner.embed([texts[i] for i in part]), dtype=np.float32)
            self.cache.put([keys[i] for i in part], vectors)
            computed.update(zip((keys[i] for i in part), vectors))
            self.embedded += len(part)
            if self.on_chunk is not None:
                self.on_chunk(len(part))
        # Fill the misses from what was just computed (duplicates share it), not by reading the cache again.
        for i in np.flatnonzero(~found).tolist():
            out[i] = computed[keys[i]]
        return out


def caching_embedder(inner, data_dir: Path | str, **kwargs) -> CachingEmbedder:
    """`inner` wrapped with the cache of its model under `data_dir`."""
    if isinstance(inner, CachingEmbedder):
        return inner
    return CachingEmbedder(inner, EmbeddingCache(cache_dir(data_dir, inner.name, inner.dim), inner.dim), **kwargs)
