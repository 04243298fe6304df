"""`valuedesk build`: load -> categories -> score -> tiers -> profiles -> index -> customer tables.

Every output is computed before any file is touched; then each file is written to a temp
file in the data directory and moved into place with os.replace, build.json last. A build
that fails at any step leaves the previous customers.parquet, profiles.parquet and index
serving. A build whose inputs and outputs are unchanged writes nothing and says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from predictor.categories import (CategoryResult, apply_categories, build_category_map, categories_path,
                                  category_report, load_category_map)
from predictor.errors import ValueDeskError
from predictor.profiles import build_profiles, customer_products
from predictor.settings import Settings, get_settings
from predictor.tiers import (TIER_ORDER, TierConfig, apply_tiers, kmeans_segments, parse_k_range,
                             tier_transitions)

BUILD_VERSION = "1"


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

def _atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then move tmp_path over path; no partial file is ever visible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _stage(path: Path, write) -> tuple[str, Path]:
    """Write to a temp file next to path; return (tmp, path) for a later os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the tables are read by other processes and users
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, path


def _file_sha(path: Path) -> str | None:
    if not path.exists():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(4 * 2**20), b""):
            h.update(block)
    return h.hexdigest()


def build_json_path(settings: Settings) -> Path:
    return settings.data_dir / "build.json"


def profiles_path(settings: Settings) -> Path:
    return settings.data_dir / "profiles.parquet"


def transitions_path(settings: Settings) -> Path:
    return settings.data_dir / "tier_transitions.parquet"


def transactions_path(settings: Settings) -> Path:
    return settings.data_dir / "transactions.parquet"


def read_build_info(settings: Settings) -> dict[str, Any]:
    path = build_json_path(settings)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # an unreadable record only costs a full rebuild


def _model_version(settings: Settings) -> str | None:
    current = settings.model_dir / "current"
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
        except ValueDeskError:
            raise
        except Exception as exc:  # a bug or an environment fault: say which step, keep the old build
            raise BuildError(f"build step '{name}' failed ({type(exc).__name__}: {exc}); "
                             "the previous build's files were left unchanged") from exc
        finally:
            self.timings[name] = round(time.perf_counter() - start, 2)
            if self.bar is not None:
                self.bar.update(1)


def _load(settings: Settings, data_path, schema: str, column_map: dict[str, str], previous: dict,
          input_key: dict, progress: bool) -> tuple[pd.DataFrame, str, str, bool]:
    from predictor.data import load_transactions, source_fingerprint

    path = Path(data_path) if data_path is not None else None
    cached = transactions_path(settings)
    if path is not None and path.is_file() and cached.exists() and previous.get("input_key") == input_key:
        fingerprint = source_fingerprint(path)
        if fingerprint == previous.get("fingerprint") and _file_sha(cached) == previous.get("transactions_sha"):
            return pd.read_parquet(cached), fingerprint, str(path.resolve()), True
    result = load_transactions(path, schema, column_map or None, settings)
    return result.transactions, result.fingerprint, result.source, False


def _reusable_scores(settings: Settings, fingerprint: str) -> pd.DataFrame | None:
    """The saved scores, when they come from the current model trained on this very data and horizon.

    Checked against the model's own metadata, so scores written by `valuedesk score` are reused too.
    """
    meta_path = settings.model_dir / "current" / "metadata.json"
    if not settings.scores_path.exists() or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        scores = pd.read_parquet(settings.scores_path)
    except (OSError, ValueError):
        return None
    versions = set(scores["model_version"].astype(str)) if "model_version" in scores else set()
    horizon = (meta.get("config") or {}).get("horizon_days")
    if (versions == {str(meta.get("version"))} and meta.get("data_fingerprint") == fingerprint
            and horizon == settings.horizon_days):
        return scores
    return None


def _score(transactions: pd.DataFrame, settings: Settings, fingerprint: str, rescore: bool, progress: bool,
           training_config=None) -> tuple[pd.DataFrame, bool]:
    if not rescore:
        saved = _reusable_scores(settings, fingerprint)
        if saved is not None:
            return saved, True
    from predictor.scoring import score_customers

    scores, _ = score_customers(transactions, settings, config=training_config, data_fingerprint=fingerprint)
    return scores, False


def _suggestions(transactions: pd.DataFrame, customer_ids: pd.Series, k: int = 5) -> pd.Series | None:
    try:
        from predictor.recommend import suggest_products
    except ImportError:
        return None
    if "product_id" not in transactions or transactions["product_id"].isna().all():
        return None
    frame = suggest_products(transactions, customer_ids.astype(str).tolist(), k=k)
    return frame.set_index("customer_id")["suggested_products"]


def sync_index(profiles: pd.DataFrame, settings: Settings, *, rebuild: bool, progress: bool,
               embedder=None) -> str:
    """Bring the profile search index in line with `profiles` (incremental by content hash).

    Vectors go through the embedding cache under the data directory, so a run that was cut short
    (or a rebuild) embeds only the texts no earlier run finished. `embedder` overrides the
    configured model (tests; the background indexing job passes its own cached one).
    Returns a one-line description for the build report.
    """
    try:
        from predictor.index import ProfileIndex
    except ImportError as exc:  # chromadb or the embedding model missing from this install
        return f"skipped (the profile index cannot load: {exc})"
    from predictor.embedding_cache import caching_embedder
    from predictor.embeddings import configured_embedder

    if embedder is None:
        embedder = configured_embedder(settings)
    index = ProfileIndex(settings, embedder=caching_embedder(embedder, settings.data_dir))
    try:
        result = index.rebuild(profiles, progress=progress) if rebuild else index.sync(profiles, progress=progress)
    finally:
        index.close()
    from predictor.index_jobs import mark_index_ready

    mark_index_ready(settings.data_dir, result.summary())  # a foreground build ends a stopped background one
    return result.summary()


def record_index_status(settings: Settings, status: str) -> None:
    """Note in build.json what an indexing run done after the build (in the background) achieved,
    so the next start knows the index is complete."""
    info = read_build_info(settings)
    if not info:
        return
    for key in ("last_check", "report"):
        if isinstance(info.get(key), dict):
            info[key]["index"] = status
    info["index_checked_at"] = datetime.now(timezone.utc).isoformat()
    _atomic_write(build_json_path(settings), lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2, default=str)))


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


def build(settings: Settings | None = None, data_path: str | os.PathLike[str] | None = None,
          schema: str | None = None, column_map: str | dict[str, str] | None = None, rescore: bool = False,
          rebuild_index: bool = False, with_index: bool = True, progress: bool = True,
          with_suggestions: bool = True, with_clusters: bool = True, training_config=None) -> BuildReport:
    """Build the customer tables (and the index) from a transaction log. See the module docstring.

    Scores are reused when the current model was trained on this data (same fingerprint and
    horizon) and scores.parquet came from it, unless `rescore`. `training_config` (a
    predictor.models.TrainingConfig) overrides the default model configuration when scoring.
    """
    from tqdm.auto import tqdm

    from predictor.data import CLEANING_VERSION, parse_column_map

    settings = settings or get_settings()
    schema = schema or settings.default_schema
    if data_path is None and schema == settings.default_schema:
        data_path = settings.default_data
    cmap = parse_column_map(column_map) if isinstance(column_map, str) else dict(column_map or {})
    tier_config = TierConfig.from_settings(settings)
    k_range = None
    if with_clusters and settings.kmeans_clusters.strip().lower() not in ("", "off", "none", "0"):
        k_range = parse_k_range(settings.kmeans_clusters)
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    previous = read_build_info(settings)
    input_key = {"source": str(Path(data_path).resolve()) if data_path is not None else None, "schema": schema,
                 "column_map": cmap, "cleaning_version": CLEANING_VERSION}

    steps = ["load", "score", "categories", "tiers", "profiles", "index", "write"]
    bar = tqdm(total=len(steps), disable=not progress, unit="step", leave=False)
    timer = _Timer(bar)
    try:
        with timer.step("load"):
            tx, fingerprint, source, tx_reused = _load(settings, data_path, schema, cmap, previous, input_key,
                                                       progress)
        score_key = {**input_key, "fingerprint": fingerprint, "horizon_days": settings.horizon_days,
                     "model_version": _model_version(settings)}
        with timer.step("score"):
            scores, scores_reused = _score(tx, settings, fingerprint, rescore, progress, training_config)
            # score_customers may have trained and switched the model; key the saved scores on that one.
            score_key["model_version"] = _model_version(settings)
        output_key = {"build_version": BUILD_VERSION, "score_key": score_key, "tier_method": settings.tier_method,
                      "tier_thresholds": settings.tier_thresholds,
                      "kmeans": [k_range.start, k_range.stop] if k_range is not None else None,
                      "currency": settings.currency_symbol, "suggestions": with_suggestions}
        if (tx_reused and scores_reused and previous.get("output_key") == output_key and previous.get("report")
                and all(_file_sha(p) == previous.get("output_sha", {}).get(p.name)
                        for p in (settings.customers_path, profiles_path(settings)))):
            return _unchanged(settings, previous, timer, bar, with_index, rebuild_index, progress)
        with timer.step("categories"):
            saved_map = load_category_map(settings.data_dir) if tx_reused else None
            if saved_map is not None:
                # The cached log already carries the derived categories; re-deriving from it would
                # mislabel them all as source categories.
                cat = CategoryResult(mapping=saved_map, report=category_report(tx, saved_map))
            else:
                cat = build_category_map(tx)
                tx = apply_categories(tx, cat.mapping)
        with timer.step("tiers"):
            customers = apply_tiers(scores, tier_config)
            kmeans = None
            if k_range is not None and len(customers) > max(k_range):
                # One thread: a few thousand rows gain nothing from more, and lose badly on a shared machine.
                kmeans = kmeans_segments(customers, k_range, seed=settings.random_seed, threads=1)
                customers["cluster"] = kmeans.labels.astype("int64")
        with timer.step("profiles"):
            products = customer_products(tx, customers["customer_id"].astype(str))
            customers = customers.merge(products, on="customer_id", how="left")
            suggestions = _suggestions(tx, customers["customer_id"]) if with_suggestions else None
            customers["suggested_products"] = ([list(suggestions.get(str(c), [])) for c in customers["customer_id"]]
                                               if suggestions is not None else [[] for _ in range(len(customers))])
            profiles = build_profiles(customers, settings.currency_symbol)
            customers["profile_text"] = profiles["profile_text"].to_numpy()

        old_customers = _read_parquet_or_none(settings.customers_path)
        old_profiles = _read_parquet_or_none(profiles_path(settings))
        changes = _diff(old_profiles, profiles)
        moves = tier_transitions(old_customers, customers) if old_customers is not None else None
        if moves is not None:
            existing = moves[moves["direction"].isin(["up", "down"])]
            changes.tier_moves = len(existing)
            changes.tier_up = int((existing["direction"] == "up").sum())
            changes.tier_down = int((existing["direction"] == "down").sum())
        outputs_present = all(p.exists() for p in (settings.customers_path, profiles_path(settings)))
        no_changes = (outputs_present and not changes.any and scores_reused and tx_reused
                      and previous.get("output_key") == output_key)

        with timer.step("index"):
            if not with_index:
                index_status = "not updated (--no-index)"
            else:
                index_status = sync_index(profiles, settings, rebuild=rebuild_index, progress=progress)

        files: list[str] = []
        with timer.step("write"):
            if not no_changes:
                files = _write_outputs(settings, tx, tx_reused, customers, profiles,
                                       moves, cat.mapping)
    finally:
        bar.close()

    report = BuildReport(
        source=source, schema_name=schema, fingerprint=fingerprint, transactions=len(tx), customers=len(customers),
        as_of=str(pd.Timestamp(scores["as_of"].max())) if "as_of" in scores and len(scores) else None,
        scores_reused=scores_reused, transactions_reused=tx_reused, model_version=score_key["model_version"],
        tier_counts=_counts(customers["tier"], TIER_ORDER),
        lifecycle_counts=_counts(customers["lifecycle"], ["new", "active", "at risk", "lapsing", "lapsed"]),
        segment_counts=_counts(customers["rfm_segment"]),
        category_coverage=cat.report.revenue_coverage if cat.report.products else None,
        categories=cat.report.categories,
        kmeans_k=kmeans.k if kmeans is not None else None,
        kmeans_silhouette=kmeans.silhouette if kmeans is not None else None,
        changes=changes, no_changes=no_changes, index=index_status, timings=timer.timings, files=files,
    )
    info = {
        "build_version": BUILD_VERSION,
        "built_at": previous.get("built_at") if no_changes else datetime.now(timezone.utc).isoformat(),
        "checked_at": datetime.now(timezone.utc).isoformat(),
        "input_key": input_key, "score_key": score_key, "fingerprint": fingerprint,
        "transactions_sha": _file_sha(transactions_path(settings)),
        "scores_sha": _file_sha(settings.scores_path),
        "output_key": output_key,
        "output_sha": {p.name: _file_sha(p) for p in (settings.customers_path, profiles_path(settings))},
        "report": report.model_dump(mode="json") if not no_changes else previous.get("report"),
        "last_check": report.model_dump(mode="json"),
    }
    _atomic_write(build_json_path(settings), lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2, default=str)))
    return report


def _unchanged(settings: Settings, previous: dict, timer: _Timer, bar, with_index: bool, rebuild_index: bool,
               progress: bool) -> BuildReport:
    """Inputs, scores, settings and outputs all match the last build: only the index is checked."""
    try:
        with timer.step("index"):
            if not with_index:
                index_status = "not updated (--no-index)"
            else:
                index_status = sync_index(pd.read_parquet(profiles_path(settings)), settings, rebuild=rebuild_index,
                                          progress=progress)
    finally:
        bar.close()
    report = BuildReport.model_validate({**previous["report"], "changes": ChangeSummary().model_dump(),
                                         "no_changes": True, "index": index_status, "timings": timer.timings,
                                         "files": [], "scores_reused": True, "transactions_reused": True})
    info = {**previous, "checked_at": datetime.now(timezone.utc).isoformat(),
            "last_check": report.model_dump(mode="json")}
    _atomic_write(build_json_path(settings), lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2, default=str)))
    return report


def _write_outputs(settings: Settings, tx: pd.DataFrame, tx_reused: bool, customers: pd.DataFrame, profiles: pd.DataFrame, moves: pd.DataFrame | None,
                   mapping: pd.DataFrame) -> list[str]:
    """Stage every file, then move them all into place (build.json is written after, by the caller)."""
    staged: list[tuple[str, Path]] = []
    try:
        if not tx_reused:
            staged.append(_stage(transactions_path(settings), lambda t: tx.to_parquet(t, index=False)))
        staged.append(_stage(categories_path(settings.data_dir), lambda t: mapping.to_parquet(t, index=False)))
        staged.append(_stage(settings.customers_path, lambda t: customers.to_parquet(t, index=False)))
        staged.append(_stage(profiles_path(settings), lambda t: profiles.to_parquet(t, index=False)))
        if moves is not None:
            staged.append(_stage(transitions_path(settings), lambda t: moves.to_parquet(t, index=False)))
    except BaseException:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)
    return [str(path) for _, path in staged]


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
