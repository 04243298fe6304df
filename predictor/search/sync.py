"""Incremental sync of a live collection: embed only new or changed texts, rewrite metadata that
changed, drop removed customers. (A build writes a fresh collection instead; this serves callers that
keep one collection current, e.g. tests and tools outside the build.)"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from predictor.search.columns import ColumnStore
from predictor.search.prepare import PreparedProfiles, SyncReport

if TYPE_CHECKING:  # the index passes itself in
    from predictor.search.collections import Active
    from predictor.search.index import ProfileIndex


@dataclass
class _Changes:
    embed_rows: np.ndarray  # new customers and changed embedded texts
    meta_rows: np.ndarray  # metadata or display text changed, vector kept
    keep_rows: np.ndarray  # vectors reused from the old column store
    old_rows: np.ndarray  # each new row's position in the old store (-1: new)
    removed: list[str]


def _changes(old: ColumnStore, prepared: PreparedProfiles) -> tuple[_Changes, SyncReport]:
    new = prepared.frame
    new_ids = new["customer_id"].to_numpy(dtype=object)
    pos_in_old = old.position.get_indexer(new_ids)
    known = pos_in_old >= 0
    text_changed = np.zeros(len(new), dtype=bool)
    meta_changed = np.zeros(len(new), dtype=bool)
    text_changed[known] = old.text_hash[pos_in_old[known]] != new["text_hash"].to_numpy(dtype=object)[known]
    meta_changed[known] = (old.meta_hash[pos_in_old[known]] != new["meta_hash"].to_numpy()[known]) & ~text_changed[known]
    removed = np.setdiff1d(old.ids.astype(str), new_ids.astype(str), assume_unique=True).tolist()
    changes = _Changes(embed_rows=np.flatnonzero(~known | text_changed), meta_rows=np.flatnonzero(meta_changed),
                       keep_rows=np.flatnonzero(known & ~text_changed), old_rows=pos_in_old, removed=removed)
    report = SyncReport(mode="incremental", collection="", total=len(new), added=int((~known).sum()),
                        reembedded=int(text_changed.sum()), metadata_updated=int(len(changes.meta_rows)),
                        deleted=len(removed), embedded=int(len(changes.embed_rows)),
                        unchanged=int(len(new) - len(changes.embed_rows) - len(changes.meta_rows)))
    return changes, report


def _write_changes(index: "ProfileIndex", collection, prepared: PreparedProfiles, vectors: np.ndarray,
                   changes: _Changes) -> None:
    ids_all = prepared.frame["customer_id"].tolist()
    embed_rows, meta_rows = changes.embed_rows, changes.meta_rows
    with index.chroma.bulk():
        if len(embed_rows):
            index.write(collection, "upsert", [ids_all[i] for i in embed_rows], embeddings=vectors[embed_rows],
                        documents=[prepared.texts[i] for i in embed_rows],
                        metadatas=[prepared.metadatas[i] for i in embed_rows])
        if len(meta_rows):
            # The display text may have changed (new scores) with the vector kept: Chroma
            # embeds documents sent without vectors, so the kept vectors go along.
            index.write(collection, "update", [ids_all[i] for i in meta_rows], embeddings=vectors[meta_rows],
                        documents=[prepared.texts[i] for i in meta_rows],
                        metadatas=[prepared.metadatas[i] for i in meta_rows])
        if changes.removed:
            index.write(collection, "delete", changes.removed)


def sync_collection(index: "ProfileIndex", active: "Active", prepared: PreparedProfiles,
                    progress) -> tuple[SyncReport, ColumnStore | None]:
    """Apply `prepared` to the live collection; returns the report and the new column store (None
    when nothing changed). The caller holds the index lock and swaps the store in."""
    started = time.perf_counter()
    old = active.columns
    changes, report = _changes(old, prepared)
    report.collection = active.name
    if not len(changes.embed_rows) and not len(changes.meta_rows) and not changes.removed:
        report.seconds = time.perf_counter() - started
        return report, None
    new = prepared.frame
    vectors = np.zeros((len(new), index.embedder.dim), dtype=np.float32)
    vectors[changes.keep_rows] = old.embeddings[changes.old_rows[changes.keep_rows]]
    vectors[changes.embed_rows] = index.embed([prepared.embed_texts[i] for i in changes.embed_rows], progress)
    generation = active.generation + 1
    collection = active.collection
    # Bump the generation before writing: if we die half-way, the column store no longer
    # matches and is reloaded from Chroma on the next open.
    index.chroma.call("marking the collection for update", lambda: collection.modify(
        metadata=index.collection_meta(generation, "syncing", {"rows": len(new)})))
    _write_changes(index, collection, prepared, vectors, changes)
    columns = ColumnStore(new, vectors, generation, threads=index.threads)
    try:
        columns.save(index.columns_root / active.name, active.name, index.embedder.name, index.embedder.dim)
    except OSError as exc:
        raise index.chroma.translate("writing the index column store", exc) from exc
    index.chroma.call("marking the collection ready", lambda: collection.modify(
        metadata=index.collection_meta(generation, "ready", {"rows": len(new)})))
    report.seconds = time.perf_counter() - started
    return report, columns
