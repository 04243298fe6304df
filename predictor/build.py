"""`valuedesk build`: load -> categories -> score -> tiers -> profiles -> index -> customer tables.

Every build writes a new version folder (predictor.layout): model, scores, customers, profiles,
transactions, categories, transitions and build.json, with a manifest of their sizes and hashes;
the profile index gets a new collection for it (texts come from the embedding cache, so only new
or changed profiles are embedded). At the end one `current` pointer moves to the new folder and
the index alias follows, so readers see one build or the next, never a mix. A build that fails or
is killed at any step leaves the previous version serving; its debris is removed at the next start.
Unchanged files are hard-linked from the previous version. A build whose inputs and outputs are
unchanged writes nothing and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from predictor.data.categories import (CategoryResult, apply_categories, build_category_map, category_report,
                                  load_category_map)
from predictor.errors import ValueDeskError
from predictor.layout import (BUILD_LOCK, BUILDS_DIR, BuildVersion, StagedBuild, clean_debris, collections_in_use, current_version,
                              current_name, prune_versions, sha256_file, write_text_atomic)
from predictor.customers.profiles import build_profiles, customer_products
from predictor.settings import Settings, get_settings
from predictor.customers.tiers import (TIER_ORDER, TierConfig, apply_tiers, kmeans_segments, parse_k_range,
                             tier_transitions)

BUILD_VERSION = "2"
log = logging.getLogger(__name__)


class BuildError(ValueDeskError):
    """A build step failed; the previous build's files are left as they were."""


class ChangeSummary(BaseModel):
    new: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    tier_moves: int = 0
    tier_up: int = 0
    tier_down: int = 0
    examples: dict[str, list[str]] = Field(default_factory=dict)  # a few ids per kind

    @property
    def any(self) -> bool:
        return bool(self.new or self.changed or self.removed or self.tier_moves)


class BuildReport(BaseModel):
    source: str
    schema_name: str
    fingerprint: str
    transactions: int
    customers: int
    as_of: str | None = None
    scores_reused: bool
    transactions_reused: bool
    model_version: str | None = None
    tier_counts: dict[str, int]
    lifecycle_counts: dict[str, int]
    segment_counts: dict[str, int]
    category_coverage: float | None = None  # share of product revenue with a named category
    categories: int = 0
    kmeans_k: int | None = None
    kmeans_silhouette: float | None = None
    changes: ChangeSummary
    no_changes: bool
    index: str  # what happened to the search index
    timings: dict[str, float]
    files: list[str]

    def summary(self) -> str:
        lines = [f"Built {self.customers:,} customers from {self.transactions:,} lines of {self.source}"
                 f" (as of {self.as_of}; scores {'reused' if self.scores_reused else 'computed'})."]
        lines.append("Tiers: " + ", ".join(f"{t} {n:,}" for t, n in self.tier_counts.items()))
        lines.append("Lifecycle: " + ", ".join(f"{t} {n:,}" for t, n in self.lifecycle_counts.items()))
        if self.category_coverage is not None:
            lines.append(f"Categories: {self.categories} named categories cover "
                         f"{self.category_coverage:.1%} of product revenue.")
        if self.kmeans_k is not None:
            lines.append(f"K-Means: k={self.kmeans_k} chosen by silhouette {self.kmeans_silhouette:.3f}.")
        c = self.changes
        if self.no_changes:
            lines.append("no changes")
        else:
            lines.append(f"Changes: {c.new:,} new, {c.changed:,} changed, {c.removed:,} removed customers; "
                         f"{c.tier_moves:,} tier moves ({c.tier_up:,} up, {c.tier_down:,} down).")
        lines.append(f"Index: {self.index}")
        lines.append("Time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()))
        return "\n".join(lines)


# --------------------------------------------------------------------------- file helpers

BUILD_JSON, PROFILES, TRANSITIONS, TRANSACTIONS = ("build.json", "profiles.parquet", "tier_transitions.parquet",
                                                   "transactions.parquet")
CUSTOMERS, SCORES, CATEGORIES, MODELS = "customers.parquet", "scores.parquet", "categories.parquet", "models"


def _file_sha(path: Path) -> str | None:
    return sha256_file(path) if path.exists() else None


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)
    os.chmod(path, 0o600)


def _write_json(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, default=str))


def build_json_path(settings: Settings) -> Path:
    return settings.build_root / BUILD_JSON


def profiles_path(settings: Settings) -> Path:
    return settings.build_root / PROFILES


def transitions_path(settings: Settings) -> Path:
    return settings.build_root / TRANSITIONS


def transactions_path(settings: Settings) -> Path:
    return settings.build_root / TRANSACTIONS


def read_build_info(settings: Settings | BuildVersion) -> dict[str, Any]:
    version = settings if isinstance(settings, BuildVersion) else current_version(settings.data_dir)
    path = version.path(BUILD_JSON)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # an unreadable record only costs a full rebuild


def _model_version(version: BuildVersion) -> str | None:
    current = version.model_dir / "current"
    try:
        return current.resolve().name if current.exists() else None
    except OSError:
        return None


# --------------------------------------------------------------------------- steps

class _Timer:
    def __init__(self, bar):
        self.timings: dict[str, float] = {}
        self.bar = bar

    @contextmanager
    def step(self, name: str):
        if self.bar is not None:
            self.bar.set_description(f"build: {name}")
        start = time.perf_counter()
        try:
            yield
        except BuildError:
            raise
        except ValueDeskError as exc:
            if name not in ("index", "write"):
                raise  # bad input or settings: the error says what to fix
            raise BuildError(f"build step '{name}' failed: {exc}; the previous build still serves") from exc
        except Exception as exc:  # a bug or an environment fault: say which step, keep the old build
            raise BuildError(f"build step '{name}' failed ({type(exc).__name__}: {exc}); "
                             "the previous build still serves") from exc
        finally:
            self.timings[name] = round(time.perf_counter() - start, 2)
            if self.bar is not None:
                self.bar.update(1)


def _checkpoint(step: str) -> None:
    """Called after each build step; a seam for the crash tests (tests/test_build_versions.py kill -9
    the build here). Does nothing."""


def _load(prev: BuildVersion, settings: Settings, data_path, schema: str, column_map: dict[str, str],
          previous: dict, input_key: dict) -> tuple[pd.DataFrame, str, str, bool]:
    from predictor.data.load import load_transactions, source_fingerprint

    path = Path(data_path) if data_path is not None else None
    cached = prev.path(TRANSACTIONS)
    if path is not None and path.is_file() and cached.exists() and previous.get("input_key") == input_key:
        fingerprint = source_fingerprint(path)
        if fingerprint == previous.get("fingerprint") and _file_sha(cached) == previous.get("transactions_sha"):
            return pd.read_parquet(cached), fingerprint, str(path.resolve()), True
    result = load_transactions(path, schema, column_map or None, settings)
    return result.transactions, result.fingerprint, result.source, False


def _reusable_scores(prev: BuildVersion, settings: Settings, fingerprint: str) -> pd.DataFrame | None:
    """The previous build's scores, when they come from its model trained on this very data and horizon."""
    meta_path = prev.model_dir / "current" / "metadata.json"
    scores_path = prev.path(SCORES)
    if not scores_path.exists() or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        scores = pd.read_parquet(scores_path)
    except (OSError, ValueError):
        return None
    versions = set(scores["model_version"].astype(str)) if "model_version" in scores else set()
    horizon = (meta.get("config") or {}).get("horizon_days")
    if (versions == {str(meta.get("version"))} and meta.get("data_fingerprint") == fingerprint
            and horizon == settings.horizon_days):
        return scores
    return None


def _score(transactions: pd.DataFrame, prev: BuildVersion, staged: StagedBuild, settings: Settings,
           fingerprint: str, rescore: bool, training_config=None) -> tuple[pd.DataFrame, bool]:
    """Scores for this build, in the staged folder: linked from the previous build when reusable."""
    if not rescore:
        saved = _reusable_scores(prev, settings, fingerprint)
        if saved is not None:
            staged.link_from(prev, MODELS)
            staged.link_from(prev, SCORES)
            return saved, True
    from predictor.model.scoring import score_customers

    # score_customers writes model and scores under its settings' data dir: the staged folder.
    staged_settings = settings.model_copy(update={"data_dir": staged.root})
    scores, _ = score_customers(transactions, staged_settings, config=training_config, data_fingerprint=fingerprint)
    return scores, False


def _suggestions(transactions: pd.DataFrame, customer_ids: pd.Series, k: int = 5) -> pd.Series | None:
    try:
        from predictor.campaigns.products import suggest_products
    except ImportError:
        return None
    if "product_id" not in transactions or transactions["product_id"].isna().all():
        return None
    frame = suggest_products(transactions, customer_ids.astype(str).tolist(), k=k)
    return frame.set_index("customer_id")["suggested_products"]


def _open_profile_index(settings: Settings, embedder=None):
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
               progress: bool = False, embedder=None, activate: bool = True) -> str:
    """Index `profiles` into a new collection and record it in `version` (default: the serving one).

    Vectors go through the embedding cache under the data directory, so only texts no earlier run
    embedded are embedded (a killed run resumes). With `activate`, the index alias moves to the new
    collection and collections no kept build reads are dropped; a build activates after its switch.
    `embedder` overrides the configured model (tests; the background indexing job passes its own).
    Returns a one-line description for the build report.
    """
    index, skipped = _open_profile_index(settings, embedder)
    if index is None:
        return skipped
    target = version.version if isinstance(version, StagedBuild) else (version or current_version(settings.data_dir))
    root = version.root if isinstance(version, StagedBuild) else target.root
    try:
        report = index.stage(profiles, progress=progress)
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
    index, _ = _open_profile_index(settings)
    if index is None:
        return
    try:
        index.activate(collection)
        index.drop_unused(collections_in_use(settings.data_dir))
    finally:
        index.close()


def _diff(old: pd.DataFrame | None, new: pd.DataFrame) -> ChangeSummary:
    if old is None or old.empty:
        ids = new["customer_id"].astype(str)
        return ChangeSummary(new=len(new), examples={"new": ids.head(5).tolist()})
    a = old.set_index(old["customer_id"].astype(str))["content_hash"]
    b = new.set_index(new["customer_id"].astype(str))["content_hash"]
    added = b.index.difference(a.index)
    removed = a.index.difference(b.index)
    common = b.index.intersection(a.index)
    changed = common[(a.loc[common] != b.loc[common]).to_numpy()]
    return ChangeSummary(new=len(added), removed=len(removed), changed=len(changed),
                         unchanged=len(common) - len(changed),
                         examples={k: sorted(v)[:5] for k, v in
                                   (("new", added), ("changed", changed), ("removed", removed)) if len(v)})


def _counts(series: pd.Series, order: list[str] | None = None) -> dict[str, int]:
    counts = series.astype(str).value_counts()
    keys = [k for k in (order or []) if k in counts] + sorted(k for k in counts.index if k not in (order or []))
    return {k: int(counts[k]) for k in keys}


def _read_parquet_or_none(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(path) if path.exists() else None
    except (OSError, ValueError):
        return None


@dataclass
class _Tables:
    customers: pd.DataFrame
    profiles: pd.DataFrame
    categories: CategoryResult
    tx: pd.DataFrame
    kmeans: Any = None


def build(settings: Settings | None = None, data_path: str | os.PathLike[str] | None = None,
          schema: str | None = None, column_map: str | dict[str, str] | None = None, rescore: bool = False,
          rebuild_index: bool = False, with_index: bool = True, progress: bool = True,
          with_suggestions: bool = True, with_clusters: bool = True, training_config=None) -> BuildReport:
    """Build the customer tables (and the index) from a transaction log. See the module docstring.

    Scores are reused when the previous build's model was trained on this data (same fingerprint and
    horizon) and its scores came from it, unless `rescore`. `training_config` (a
    predictor.model.estimators.TrainingConfig) overrides the default model configuration when scoring.
    `rebuild_index` indexes the profiles again even when nothing else changed.
    """
    from predictor.data.load import parse_column_map

    settings = settings or get_settings()
    schema = schema or settings.default_schema
    if data_path is None and schema == settings.default_schema:
        data_path = settings.default_data
    cmap = parse_column_map(column_map) if isinstance(column_map, str) else dict(column_map or {})
    TierConfig.from_settings(settings)  # bad tier settings fail before anything runs
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    with _build_lock(Path(settings.data_dir)):
        return _locked_build(settings, data_path, schema, cmap, rescore=rescore, rebuild_index=rebuild_index,
                             with_index=with_index, progress=progress, with_suggestions=with_suggestions,
                             with_clusters=with_clusters, training_config=training_config)


@contextmanager
def _build_lock(data_dir: Path):
    """One build per data directory at a time (a second would prune what the first is staging)."""
    import fcntl

    with os.fdopen(os.open(data_dir / BUILD_LOCK, os.O_RDWR | os.O_CREAT, 0o600), "r+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BuildError(f"another build is running in {data_dir.name}/ (it holds .build.lock); "
                             "wait for it to finish") from None
        yield


def _locked_build(settings: Settings, data_path, schema: str, cmap: dict, *, rescore, rebuild_index, with_index,
                  progress, with_suggestions, with_clusters, training_config) -> BuildReport:
    from tqdm.auto import tqdm

    from predictor.data.load import CLEANING_VERSION

    clean_debris(settings.data_dir, build_lock_held=True)
    prev = current_version(settings.data_dir)
    previous = read_build_info(prev)
    input_key = {"source": str(Path(data_path).resolve()) if data_path is not None else None, "schema": schema,
                 "column_map": cmap, "cleaning_version": CLEANING_VERSION}
    steps = ["load", "score", "categories", "tiers", "profiles", "index", "write"]
    bar = tqdm(total=len(steps), disable=not progress, unit="step", leave=False)
    timer = _Timer(bar)
    staged = StagedBuild(settings.data_dir)
    try:
        report = _run_steps(settings, prev, previous, staged, timer, data_path=data_path, schema=schema, cmap=cmap,
                            input_key=input_key, rescore=rescore, rebuild_index=rebuild_index, with_index=with_index,
                            with_suggestions=with_suggestions, with_clusters=with_clusters,
                            training_config=training_config)
    finally:
        bar.close()
        staged.abort()  # a no-op once published (the folder was renamed away)
    return report


def _run_steps(settings: Settings, prev: BuildVersion, previous: dict, staged: StagedBuild, timer: _Timer, *,
               data_path, schema, cmap, input_key, rescore, rebuild_index, with_index, with_suggestions,
               with_clusters, training_config) -> BuildReport:
    with timer.step("load"):
        tx, fingerprint, source, tx_reused = _load(prev, settings, data_path, schema, cmap, previous, input_key)
    _checkpoint("load")
    score_key = {**input_key, "fingerprint": fingerprint, "horizon_days": settings.horizon_days}
    with timer.step("score"):
        scores, scores_reused = _score(tx, prev, staged, settings, fingerprint, rescore, training_config)
        score_key["model_version"] = _model_version(staged.version)
    _checkpoint("score")
    k_range = _k_range(settings, with_clusters)
    output_key = {"build_version": BUILD_VERSION, "score_key": score_key, "tier_method": settings.tier_method,
                  "tier_thresholds": settings.tier_thresholds,
                  "kmeans": [k_range.start, k_range.stop] if k_range is not None else None,
                  "currency": settings.currency_symbol, "suggestions": with_suggestions}
    unchanged_outputs = (tx_reused and scores_reused and previous.get("output_key") == output_key
                         and previous.get("report") and not prev.verify_all()
                         and all(_file_sha(prev.path(f)) == previous.get("output_sha", {}).get(f)
                                 for f in (CUSTOMERS, PROFILES)))
    if unchanged_outputs:
        return _unchanged(settings, prev, previous, timer, with_index, rebuild_index)
    tables = _tables(settings, prev, tx, tx_reused, scores, timer, k_range, with_suggestions)
    _checkpoint("profiles")
    changes, moves = _changes(prev, tables)
    with timer.step("write"):
        files = _write_outputs(staged, prev, tables, tx_reused, moves)
    _checkpoint("write")
    with timer.step("index"):
        index_status = (sync_index(tables.profiles, settings, version=staged, activate=False)
                        if with_index else "not updated (--no-index)")
    _checkpoint("index")
    report = _report(source, schema, fingerprint, scores, tables, scores_reused, tx_reused, score_key, changes,
                     index_status, timer, files)
    info = {"build_version": BUILD_VERSION, "built_at": datetime.now(timezone.utc).isoformat(),
            "input_key": input_key, "score_key": score_key, "fingerprint": fingerprint,
            "transactions_sha": _file_sha(staged.root / TRANSACTIONS),
            "scores_sha": _file_sha(staged.root / SCORES), "output_key": output_key,
            "output_sha": {f: _file_sha(staged.root / f) for f in (CUSTOMERS, PROFILES)},
            "report": report.model_dump(mode="json")}
    _write_json(staged.root / BUILD_JSON, info)
    _publish(settings, staged)
    return report


def _publish(settings: Settings, staged: StagedBuild) -> BuildVersion:
    """The one switch, then the index alias follows and old versions (and their collections) go."""
    with _step_errors("publish"):
        version = staged.publish()
    _checkpoint("publish")
    try:
        prune_versions(settings.data_dir, settings.builds_to_keep)
        activate_index(settings, version)  # also drops the collections of the pruned versions
        _checkpoint("activate")
    except (ValueDeskError, OSError) as exc:  # the new build serves; alias and pruning catch up next time
        log.warning("build %s is serving, but tidying up after it failed: %s", version.name, exc)
    return version


@contextmanager
def _step_errors(name: str):
    try:
        yield
    except ValueDeskError:
        raise
    except Exception as exc:
        raise BuildError(f"build step '{name}' failed ({type(exc).__name__}: {exc}); "
                         "the previous build still serves") from exc


def _k_range(settings: Settings, with_clusters: bool):
    if with_clusters and settings.kmeans_clusters.strip().lower() not in ("", "off", "none", "0"):
        return parse_k_range(settings.kmeans_clusters)
    return None


def _tables(settings: Settings, prev: BuildVersion, tx: pd.DataFrame, tx_reused: bool, scores: pd.DataFrame,
            timer: _Timer, k_range, with_suggestions: bool) -> _Tables:
    with timer.step("categories"):
        saved_map = load_category_map(prev.root) if tx_reused else None
        if saved_map is not None:
            # The cached log already carries the derived categories; re-deriving from it would
            # mislabel them all as source categories.
            cat = CategoryResult(mapping=saved_map, report=category_report(tx, saved_map))
        else:
            cat = build_category_map(tx)
            tx = apply_categories(tx, cat.mapping)
    _checkpoint("categories")
    with timer.step("tiers"):
        customers = apply_tiers(scores, TierConfig.from_settings(settings))
        kmeans = None
        if k_range is not None and len(customers) > max(k_range):
            # One thread: a few thousand rows gain nothing from more, and lose badly on a shared machine.
            kmeans = kmeans_segments(customers, k_range, seed=settings.random_seed, threads=1)
            customers["cluster"] = kmeans.labels.astype("int64")
    _checkpoint("tiers")
    with timer.step("profiles"):
        products = customer_products(tx, customers["customer_id"].astype(str))
        customers = customers.merge(products, on="customer_id", how="left")
        suggestions = _suggestions(tx, customers["customer_id"]) if with_suggestions else None
        customers["suggested_products"] = ([list(suggestions.get(str(c), [])) for c in customers["customer_id"]]
                                           if suggestions is not None else [[] for _ in range(len(customers))])
        profiles = build_profiles(customers, settings.currency_symbol)
        customers["profile_text"] = profiles["profile_text"].to_numpy()
    return _Tables(customers=customers, profiles=profiles, categories=cat, tx=tx, kmeans=kmeans)


def _changes(prev: BuildVersion, tables: _Tables) -> tuple[ChangeSummary, pd.DataFrame | None]:
    old_customers = _read_parquet_or_none(prev.path(CUSTOMERS))
    changes = _diff(_read_parquet_or_none(prev.path(PROFILES)), tables.profiles)
    moves = tier_transitions(old_customers, tables.customers) if old_customers is not None else None
    if moves is not None:
        existing = moves[moves["direction"].isin(["up", "down"])]
        changes.tier_moves = len(existing)
        changes.tier_up = int((existing["direction"] == "up").sum())
        changes.tier_down = int((existing["direction"] == "down").sum())
    return changes, moves


def _report(source, schema, fingerprint, scores, tables: _Tables, scores_reused, tx_reused, score_key, changes,
            index_status, timer, files) -> BuildReport:
    customers, cat, kmeans = tables.customers, tables.categories, tables.kmeans
    return BuildReport(
        source=source, schema_name=schema, fingerprint=fingerprint, transactions=len(tables.tx),
        customers=len(customers),
        as_of=str(pd.Timestamp(scores["as_of"].max())) if "as_of" in scores and len(scores) else None,
        scores_reused=scores_reused, transactions_reused=tx_reused, model_version=score_key["model_version"],
        tier_counts=_counts(customers["tier"], TIER_ORDER),
        lifecycle_counts=_counts(customers["lifecycle"], ["new", "active", "at risk", "lapsing", "lapsed"]),
        segment_counts=_counts(customers["rfm_segment"]),
        category_coverage=cat.report.revenue_coverage if cat.report.products else None,
        categories=cat.report.categories,
        kmeans_k=kmeans.k if kmeans is not None else None,
        kmeans_silhouette=kmeans.silhouette if kmeans is not None else None,
        changes=changes, no_changes=False, index=index_status, timings=timer.timings, files=files,
    )


def _unchanged(settings: Settings, prev: BuildVersion, previous: dict, timer: _Timer, with_index: bool,
               rebuild_index: bool) -> BuildReport:
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
    index, _ = _open_profile_index(settings)
    if index is None:
        return False
    try:
        return any(c.name == name for c in index._client.list_collections())
    except Exception:  # noqa: BLE001 - an unreachable index is re-indexed, which reports the real error
        return False
    finally:
        index.close()


def _write_outputs(staged: StagedBuild, prev: BuildVersion, tables: _Tables, tx_reused: bool,
                   moves: pd.DataFrame | None) -> list[str]:
    """Write every table into the staged folder (nothing is visible until it is published)."""
    root = staged.root
    if not (tx_reused and staged.link_from(prev, TRANSACTIONS)):
        _write_parquet(tables.tx, root / TRANSACTIONS)
    _write_parquet(tables.categories.mapping, root / CATEGORIES)
    _write_parquet(tables.customers, root / CUSTOMERS)
    _write_parquet(tables.profiles, root / PROFILES)
    if moves is not None:
        _write_parquet(moves, root / TRANSITIONS)
    names = [TRANSACTIONS, CATEGORIES, CUSTOMERS, PROFILES] + ([TRANSITIONS] if moves is not None else [])
    return [f"{BUILDS_DIR}/{staged.name}/{n}" for n in names]


# --------------------------------------------------------------------------- CLI

def register_build(sub: argparse._SubParsersAction) -> None:
    """Add `valuedesk build` to the CLI."""
    p = sub.add_parser("build", help="score, tier and profile every customer, and index the profiles",
                       description="Build the customer tables from a transaction log (default: the bundled "
                                   "Online Retail data): load, categorise products, score, tier, write profiles "
                                   "and index them. Idempotent: an unchanged input prints 'no changes'.")
    p.add_argument("--data", metavar="PATH", help="transaction file (CSV, CSV.gz or Parquet); default: settings")
    p.add_argument("--schema", metavar="S", help="online_retail, cdnow or generic (default: settings)")
    p.add_argument("--map", metavar="M", dest="column_map",
                   help="column map, e.g. customer_id=household_id,order_id=basket_id,...")
    p.add_argument("--rescore", action="store_true", help="score again even if the data and model are unchanged")
    p.add_argument("--rebuild-index", action="store_true", help="rebuild the search index from scratch")
    p.add_argument("--no-index", action="store_true", help="do not touch the search index")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    report = build(get_settings(), data_path=args.data, schema=args.schema, column_map=args.column_map,
                   rescore=args.rescore, rebuild_index=args.rebuild_index, with_index=not args.no_index,
                   progress=not args.quiet)
    print(report.summary())
    return 0
