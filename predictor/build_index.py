"""The index step of a build: profiles into a new collection of the profile index, the index alias
following the serving version, and the index of a build whose inputs and outputs did not change."""

from __future__ import annotations

from typing import Any

import pandas as pd

from predictor.build_report import BuildReport, ChangeSummary, StepTimer
from predictor.layout import (PROFILES, BuildVersion, StagedBuild, collections_in_use, current_name,
                              current_version)
from predictor.settings import Settings


def open_profile_index(settings: Settings, embedder: Any = None) -> tuple[Any, str | None]:
    """A ProfileIndex whose embedder reads and fills the embedding cache; None when this install
    cannot load the index (the reason as second value)."""
    try:
        from predictor.search.index import ProfileIndex
    except ImportError as exc:  # chromadb or the embedding model missing from this install
        return None, f"skipped (the profile index cannot load: {exc})"
    from predictor.search.embedding_cache import caching_embedder
    from predictor.search.embeddings import configured_embedder

    if embedder is None:
        embedder = configured_embedder(settings)
    return ProfileIndex(settings, embedder=caching_embedder(embedder, settings.data_dir)), None


def sync_index(profiles: pd.DataFrame, settings: Settings, *, version: BuildVersion | StagedBuild | None = None,
               progress: bool = False, embedder: Any = None, activate: bool = True, writer=None) -> str:
    """Index `profiles` into a new collection and record it in `version` (default: the serving one).

    Vectors go through the embedding cache under the data directory, so only texts no earlier run
    embedded are embedded (a killed run resumes). With `activate`, the index alias moves to the new
    collection and collections no kept build reads are dropped; a build activates after its switch.
    `embedder` overrides the configured model (tests; the background indexing job passes its own);
    `writer` writes the rows into a Chroma server from elsewhere (predictor.engine.collection_writer).
    Returns a one-line description for the build report.
    """
    index, skipped = open_profile_index(settings, embedder)
    if index is None:
        return skipped
    target = version.version if isinstance(version, StagedBuild) else (version or current_version(settings.data_dir))
    root = version.root if isinstance(version, StagedBuild) else target.root
    try:
        report = index.stage(profiles, progress=progress, writer=writer if index.mode == "server" else None)
        summary = report.summary()
        BuildVersion(data_dir=target.data_dir, root=root, name=target.name).attach_index(report.collection, summary)
        if activate and target.name == current_name(settings.data_dir):  # an older build's index never takes the alias
            index.activate(report.collection)
            index.drop_unused(collections_in_use(settings.data_dir) | {report.collection})
    finally:
        index.close()
    from predictor.search.jobs import mark_index_ready

    mark_index_ready(settings.data_dir, summary)  # a foreground build ends a stopped background one
    return summary


def activate_index(settings: Settings, version: BuildVersion) -> None:
    """After a build's switch: the alias follows the serving version; unused collections go."""
    collection = version.index_record().get("collection")
    if not collection:
        return
    index, _ = open_profile_index(settings)
    if index is None:
        return
    try:
        index.activate(collection)
        index.drop_unused(collections_in_use(settings.data_dir))
    finally:
        index.close()


def unchanged_build_report(settings: Settings, prev: BuildVersion, previous: dict, timer: StepTimer,
                           with_index: bool, rebuild_index: bool) -> BuildReport:
    """Inputs, scores, settings and outputs all match the serving build: nothing is written, except an
    index for it when it has none (or `rebuild_index`)."""
    with timer.step("index"):
        record = prev.index_record()
        if not with_index:
            index_status = "not updated (--no-index)"
        elif record.get("collection") and not rebuild_index and _collection_exists(settings, record["collection"]):
            index_status = f"unchanged ({record.get('summary', record['collection'])})"
        else:
            index_status = sync_index(pd.read_parquet(prev.path(PROFILES)), settings, version=prev)
    return BuildReport.model_validate({**previous["report"], "changes": ChangeSummary().model_dump(),
                                       "no_changes": True, "index": index_status, "timings": timer.timings,
                                       "files": [], "scores_reused": True, "transactions_reused": True})


def _collection_exists(settings: Settings, name: str) -> bool:
    index, _ = open_profile_index(settings)
    if index is None:
        return False
    try:
        return index.has_collection(name)
    except Exception:  # noqa: BLE001 - an unreachable index is re-indexed, which reports the real error
        return False
    finally:
        index.close()
