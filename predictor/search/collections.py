"""Whole collections: writing every profile into a fresh one (vectors, documents, metadata, then the
column store, then marked ready; nothing switched), and reading one back into a column store when the
store on disk is missing or stale."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from predictor.customers.audience import FILTER_FIELDS
from predictor.search.columns import ColumnStore
from predictor.search.errors import ProfileIndexError
from predictor.search.prepare import SyncReport, prepare_profiles

if TYPE_CHECKING:  # the index passes itself in
    from predictor.search.index import ProfileIndex


@dataclass
class Active:
    name: str
    collection: Any
    columns: ColumnStore
    model: str
    dim: int
    generation: int
    meta: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[int, int], None] | bool | None


def progress_callback(progress: Progress, label: str) -> Callable[[int, int], None] | None:
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


def write_collection(index: "ProfileIndex", profiles: pd.DataFrame, embeddings: np.ndarray | None, progress: Progress,
                    previous: Active | None, writer=None) -> tuple[SyncReport, Active]:
    """Write every profile into a fresh collection (and its column store), marked ready; nothing switched.

    `writer(collection_name, profiles, vectors)` writes the rows instead of this process, once every vector
    is known: the Dask engine's parallel upserts into a Chroma server (predictor.engine.collection_writer)."""
    started = time.perf_counter()
    prepared = prepare_profiles(profiles)
    n = len(prepared.frame)
    progress = progress_callback(progress, "indexing profiles")
    if embeddings is not None and (embeddings.shape[0] != n or embeddings.shape[1] != index.embedder.dim):
        raise ProfileIndexError(f"precomputed embeddings have shape {embeddings.shape}, expected ({n}, {index.embedder.dim})")
    name = f"{index.prefix}{datetime.now(timezone.utc):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    collection = None
    try:
        collection = index.chroma.call("creating a profile collection", lambda: index.client.create_collection(
            name, metadata=index.collection_meta(1, "building", {"rows": n}),
            configuration={"hnsw": {"space": "cosine"}}, embedding_function=None))
        vectors = np.zeros((n, index.embedder.dim), dtype=np.float32) if embeddings is None \
            else np.asarray(embeddings, dtype=np.float32)
        if writer is not None:
            if embeddings is None:
                vectors[:] = index.embed(prepared.embed_texts, progress)
            writer(name, profiles, vectors)
        else:
            _add_rows(index, collection, prepared, vectors, embeddings is None, progress)
        columns = ColumnStore(prepared.frame, vectors, 1, threads=index.threads)
        try:
            columns.save(index.columns_root / name, name, index.embedder.name, index.embedder.dim)
        except OSError as exc:
            raise index.chroma.translate("writing the index column store", exc) from exc
        index.chroma.call("marking the new collection ready", lambda: collection.modify(
            metadata=index.collection_meta(1, "ready", {"rows": n})))
    except BaseException as exc:
        index.discard(name, collection)
        served = f"the previous index ({previous.name}) still serves" if previous else "no index was active"
        if isinstance(exc, ProfileIndexError):
            raise ProfileIndexError(f"index rebuild failed, {served}: {exc}") from exc
        if isinstance(exc, Exception):
            raise ProfileIndexError(f"index rebuild failed, {served}: {index.chroma.translate('rebuild', exc)}") from exc
        raise
    active = Active(name=name, collection=collection, columns=columns, model=index.embedder.name,
                     dim=int(index.embedder.dim), generation=1)
    report = SyncReport(mode="full", collection=name, total=n, added=n,
                        embedded=0 if embeddings is not None else n, seconds=time.perf_counter() - started)
    return report, active


def _add_rows(index: "ProfileIndex", collection, prepared, vectors: np.ndarray, embed: bool, progress) -> None:
    """Rows into `collection` from this process, a batch at a time (embedding each batch when `embed`)."""
    n, step = len(prepared.frame), index.write_batch
    with index.chroma.bulk():
        for start in range(0, n, step):
            stop = min(n, start + step)
            if embed:
                vectors[start:stop] = index.embedder.embed(prepared.embed_texts[start:stop])
            ids = prepared.frame["customer_id"].iloc[start:stop].tolist()
            index.chroma.call("writing profiles to the new collection", lambda: collection.add(
                ids=ids, embeddings=vectors[start:stop], documents=prepared.texts[start:stop],
                metadatas=prepared.metadatas[start:stop]))
            if progress:
                progress(stop, n)


def read_columns(index: "ProfileIndex", collection, generation: int) -> ColumnStore:
    ids: list[str] = []
    metas: list[dict] = []
    vectors: list[np.ndarray] = []
    page = 5_000
    total = index.chroma.call("counting profiles", collection.count)
    with index.chroma.bulk():
        for offset in range(0, total, page):
            got = index.chroma.call("reading profiles", lambda: collection.get(
                limit=page, offset=offset, include=["metadatas", "embeddings"]))
            ids += got["ids"]
            metas += got["metadatas"]
            vectors.append(np.asarray(got["embeddings"], dtype=np.float32))
    frame = pd.DataFrame(metas)
    frame.insert(0, "customer_id", ids)
    for column in ("text_hash", "content_hash"):
        if column not in frame:
            frame[column] = ""
    for columns, kind in FILTER_FIELDS.values():
        column = columns[-1]  # the profiles' name for the field
        if kind == "date" and column in frame:
            frame[column] = pd.to_datetime(frame[column], errors="coerce")
    frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_ns")])
    # Metadata hashes cannot be recomputed exactly from Chroma's copy; a zero hash makes the
    # next sync refresh every profile's metadata (cheap: no embedding).
    frame["meta_hash"] = np.zeros(len(frame), dtype=np.uint64)
    dim = int(index.embedder.dim)
    emb = np.concatenate(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
    return ColumnStore(frame, emb, generation, threads=index.threads)
