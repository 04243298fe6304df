"""`valuedesk build`: load -> categories -> score -> tiers -> profiles -> index -> customer tables.

Every build writes a new version folder (predictor.layout): model, scores, customers, profiles,
transactions, categories, transitions and build.json, with a manifest of their sizes and hashes;
the profile index gets a new collection for it (texts come from the embedding cache, so only new
or changed profiles are embedded). At the end one `current` pointer moves to the new folder and
the index alias follows, so readers see one build or the next, never a mix. A build that fails or
is killed at any step leaves the previous version serving; its debris is removed at the next start.
Unchanged files are hard-linked from the previous version. A build whose inputs and outputs are
unchanged writes nothing and says so.

This module is the pipeline: the steps in order. Beside it: `build_report` (report, step timings and
errors, changes), `build_state` (the previous build's record, the lock), `build_index` (the index
step), `build_cli` (`valuedesk build`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from predictor.atomic import write_json_atomic
from predictor.build_index import activate_index, sync_index, unchanged_build_report
from predictor.build_report import BuildReport, StepTimer, build_changes, customer_counts, step_errors
from predictor.build_state import build_lock, file_sha, model_version, read_build_info, read_parquet_or_none
from predictor.customers.clusters import fit_kmeans, parse_k_range
from predictor.customers.tables import SUGGESTIONS, profile_table, tier_table
from predictor.customers.tiers import LifecycleConfig, TierConfig
from predictor.data.categories import (CategoryResult, apply_categories, build_category_map, category_report,
                                       load_category_map)
from predictor.data.cleaning import CLEANING_VERSION
from predictor.data.load import load_transactions, parse_column_map, source_fingerprint
from predictor.data.products import join_products
from predictor.engine import build_session, collection_writer, customer_tables, prefill_embeddings
from predictor.engine.dask_customers import CustomerRules, population_reduce
from predictor.errors import DataError, ValueDeskError
from predictor.layout import (BUCKETS, BUILDS_DIR, CATEGORIES, CUSTOMERS, MODELS, PROFILES, SCORES, TRANSACTIONS,
                              TRANSITIONS, BUILD_JSON, BuildVersion, StagedBuild, clean_debris, current_version,
                              prune_versions)
from predictor.settings import Settings
from predictor.suppression import SuppressionList

BUILD_VERSION = "3"  # 3: customers and profiles carry the at_risk flag
log = logging.getLogger(__name__)


def _checkpoint(step: str) -> None:
    """Called after each build step; a seam for the crash tests (tests/test_build_versions.py kill -9
    the build here). Does nothing."""


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    # Written straight into the staged folder: nothing reads it before the folder is published.
    frame.to_parquet(path, index=False)
    os.chmod(path, 0o600)


# --------------------------------------------------------------------------- the pipeline

def build(settings: Settings, data_path: str | os.PathLike[str] | None = None,
          schema: str | None = None, column_map: str | dict[str, str] | None = None, rescore: bool = False,
          rebuild_index: bool = False, with_index: bool = True, progress: bool = True,
          with_suggestions: bool = True, with_clusters: bool = True, training_config=None,
          promotion: dict | None = None, products: str | os.PathLike[str] | None = None,
          products_map: str | None = None) -> BuildReport:
    """Build the customer tables (and the index) from a transaction log. See the module docstring.

    Scores are reused when the previous build's model was trained on this data (same fingerprint and
    horizon) and its scores came from it, unless `rescore`. `training_config` (a
    predictor.model.estimators.TrainingConfig) overrides the default model configuration when scoring.
    `rebuild_index` indexes the profiles again even when nothing else changed. `promotion` (from
    `valuedesk retrain`) goes into the new model's metadata. `products` (with `products_map`) is a products
    file whose names and categories are joined to the log by product id (predictor/data/products.py).
    """
    schema = schema or settings.default_schema
    if data_path is None and schema == settings.default_schema:
        data_path = settings.default_data
    cmap = parse_column_map(column_map) if isinstance(column_map, str) else dict(column_map or {})
    TierConfig.from_settings(settings)  # bad tier settings fail before anything runs
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    product_source = _product_source(products, products_map)  # a bad products file fails before the lock
    with build_lock(Path(settings.data_dir)):
        return _locked_build(settings, data_path, schema, cmap, product_source, rescore=rescore, rebuild_index=rebuild_index,
                             with_index=with_index, progress=progress, with_suggestions=with_suggestions,
                             with_clusters=with_clusters, training_config=training_config, promotion=promotion)


def _locked_build(settings: Settings, data_path, schema: str, cmap: dict, product_source, *, rescore, rebuild_index, with_index,
                  progress, with_suggestions, with_clusters, training_config, promotion=None) -> BuildReport:
    from tqdm.auto import tqdm

    clean_debris(settings.data_dir, build_lock_held=True)
    prev = current_version(settings.data_dir)
    previous = read_build_info(prev)
    input_key = {"source": str(Path(data_path).resolve()) if data_path is not None else None, "schema": schema,
                 "column_map": cmap, "cleaning_version": CLEANING_VERSION,
                 **({"products": product_source["key"]} if product_source else {})}
    steps = ["load", "score", "categories", "tiers", "profiles", "index", "write"]
    bar = tqdm(total=len(steps), disable=not progress, unit="step", leave=False)
    timer = StepTimer(bar)
    staged = StagedBuild(settings.data_dir)
    try:
        with build_session(settings):  # the Dask engine: one cluster client for every step
            report = _run_steps(settings, prev, previous, staged, timer, data_path=data_path, schema=schema,
                                cmap=cmap, product_source=product_source, input_key=input_key, rescore=rescore,
                                rebuild_index=rebuild_index, with_index=with_index,
                                with_suggestions=with_suggestions, with_clusters=with_clusters,
                                training_config=training_config, promotion=promotion)
    finally:
        bar.close()
        staged.abort()  # a no-op once published (the folder was renamed away)
    return report


def _run_steps(settings: Settings, prev: BuildVersion, previous: dict, staged: StagedBuild, timer: StepTimer, *,
               data_path, schema, cmap, input_key, rescore, rebuild_index, with_index, with_suggestions,
               with_clusters, training_config, promotion=None, product_source=None) -> BuildReport:
    with timer.step("load"):
        tx, fingerprint, source, tx_reused = _load(prev, settings, data_path, schema, cmap, previous, input_key)
        product_stats = None
        if product_source and not tx_reused:
            tx, product_stats = join_products(tx, product_source["frame"])
            fingerprint += f"+products:{product_source['key']['fingerprint']}"
    _checkpoint("load")
    data_check = _data_check(tx, settings)
    score_key = {**input_key, "fingerprint": fingerprint, "horizon_days": settings.horizon_days}
    with timer.step("score"):
        scores, scores_reused = _score(tx, prev, staged, settings, fingerprint, rescore or promotion is not None,
                                       training_config, promotion)
        score_key["model_version"] = model_version(staged.version)
    _checkpoint("score")
    k_range = _k_range(settings, with_clusters)
    output_key = {"build_version": BUILD_VERSION, "score_key": score_key, "tier_method": settings.tier_method,
                  "tier_thresholds": settings.tier_thresholds,
                  "kmeans": [k_range.start, k_range.stop] if k_range is not None else None,
                  "currency": settings.currency_symbol, "suggestions": with_suggestions}
    unchanged_outputs = (tx_reused and scores_reused and previous.get("output_key") == output_key
                         and previous.get("report") and not prev.verify_all()
                         and all(file_sha(prev.path(f)) == previous.get("output_sha", {}).get(f)
                                 for f in (CUSTOMERS, PROFILES)))
    if unchanged_outputs:
        return unchanged_build_report(settings, prev, previous, timer, with_index, rebuild_index)
    tables = _tables(settings, prev, tx, tx_reused, scores, timer, k_range, with_suggestions, fingerprint)
    _checkpoint("profiles")
    changes, moves = build_changes(read_parquet_or_none(prev.path(PROFILES)),
                                   read_parquet_or_none(prev.path(CUSTOMERS)), tables.profiles, tables.customers)
    with timer.step("write"):
        files = _write_outputs(staged, prev, tables, tx_reused, moves)
    _checkpoint("write")
    with timer.step("index"):
        if with_index:
            prefill_embeddings(tables.profiles, settings)  # the Dask engine's workers embed; a no-op locally
        index_status = (sync_index(tables.profiles, settings, version=staged, activate=False,
                                   writer=collection_writer(settings))
                        if with_index else "not updated (--no-index)")
    _checkpoint("index")
    report = _report(source, schema, fingerprint, scores, tables, scores_reused, tx_reused, score_key, changes,
                     index_status, timer, files)
    report.data_check = {"status": data_check["status"], "problems": data_check["problems"]}
    report.products = product_stats or (previous.get("report") or {}).get("products") if product_source else None
    info = {"build_version": BUILD_VERSION, "built_at": datetime.now(timezone.utc).isoformat(),
            "input_key": input_key, "score_key": score_key, "fingerprint": fingerprint,
            "transactions_sha": file_sha(staged.root / TRANSACTIONS),
            "scores_sha": file_sha(staged.root / SCORES), "output_key": output_key,
            "output_sha": {f: file_sha(staged.root / f) for f in (CUSTOMERS, PROFILES)},
            "report": report.model_dump(mode="json")}
    write_json_atomic(staged.root / BUILD_JSON, info)
    _publish(settings, staged)
    return report


def _product_source(products, products_map: str | None) -> dict | None:
    """The products file, read and checked, with the key that says when it changed."""
    if products is None:
        return None
    from predictor.data.products import load_products, parse_products_map, products_fingerprint

    mapping = parse_products_map(products_map or "product_id=product_id,product_name=product_name,category=category")
    return {"frame": load_products(products, mapping),
            "key": {"path": str(Path(products).resolve()), "map": mapping,
                    "fingerprint": products_fingerprint(products, mapping)}}


def _data_check(tx: pd.DataFrame, settings: Settings) -> dict:
    """`valuedesk check-data` on the loaded log: a build below the hard minimums stops here (unless the
    settings say `data_check: warn`); its warnings go into the report."""
    from predictor.model.data_check import check_data, format_check
    from predictor.model.health import HealthThresholds
    from predictor.model.scoring import history_from_transactions

    report = check_data(tx, history_from_transactions(tx), settings.horizon_days, HealthThresholds.from_settings(settings))
    if report["status"] == "refuse" and settings.data_check == "refuse":
        raise DataError(f"{format_check(report)}\nNothing was built. Add more history or customers, or set "
                        "VALUEDESK_DATA_CHECK=warn to build anyway (do not act on such predictions).")
    return report


def _publish(settings: Settings, staged: StagedBuild) -> BuildVersion:
    """The one switch, then the index alias follows and old versions (and their collections) go."""
    with step_errors("publish"):
        version = staged.publish()
    _checkpoint("publish")
    try:
        prune_versions(settings.data_dir, settings.builds_to_keep)
        activate_index(settings, version)  # also drops the collections of the pruned versions
        _checkpoint("activate")
    except (ValueDeskError, OSError) as exc:  # the new build serves; alias and pruning catch up next time
        log.warning("build %s is serving, but tidying up after it failed: %s", version.name, exc)
    return version


def _k_range(settings: Settings, with_clusters: bool):
    if with_clusters and settings.kmeans_clusters.strip().lower() not in ("", "off", "none", "0"):
        return parse_k_range(settings.kmeans_clusters)
    return None


def _tables(settings: Settings, prev: BuildVersion, tx: pd.DataFrame, tx_reused: bool, scores: pd.DataFrame,
            timer: StepTimer, k_range, with_suggestions: bool, fingerprint: str = "") -> _Tables:
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
    tiers = TierConfig.from_settings(settings)
    with timer.step("tiers"):
        if settings.engine == "dask":  # the reduce steps here; every bucket's rows on the workers below
            stats, kmeans = population_reduce(scores, tiers, LifecycleConfig(), k_range, settings.random_seed)
        else:
            customers = tier_table(scores, tiers)
            kmeans = None
            if k_range is not None and len(customers) > max(k_range):
                # One thread: a few thousand rows gain nothing from more, and lose badly on a shared machine.
                kmeans = fit_kmeans(customers, k_range, seed=settings.random_seed, threads=1)
                customers["cluster"] = kmeans.labels(customers)
    _checkpoint("tiers")
    with timer.step("profiles"):
        if settings.engine == "dask":
            rules = CustomerRules(tiers, LifecycleConfig(), stats, kmeans, settings.currency_symbol)
            customers, profiles = customer_tables(scores, tx, rules, settings, fingerprint,
                                                  with_suggestions and _itemised(tx))
        else:
            suggestions = _suggestions(tx, scores["customer_id"]) if with_suggestions else None
            customers, profiles = profile_table(customers, tx, suggestions, settings.currency_symbol)
    return _Tables(customers=customers, profiles=profiles, categories=cat, tx=tx, kmeans=kmeans)


def _report(source, schema, fingerprint, scores, tables: _Tables, scores_reused, tx_reused, score_key, changes,
            index_status, timer, files) -> BuildReport:
    customers, cat, kmeans = tables.customers, tables.categories, tables.kmeans
    return BuildReport(
        source=source, schema_name=schema, fingerprint=fingerprint, transactions=len(tables.tx),
        customers=len(customers),
        as_of=str(pd.Timestamp(scores["as_of"].max())) if "as_of" in scores and len(scores) else None,
        scores_reused=scores_reused, transactions_reused=tx_reused, model_version=score_key["model_version"],
        **customer_counts(customers),
        category_coverage=cat.report.revenue_coverage if cat.report.products else None,
        categories=cat.report.categories,
        kmeans_k=kmeans.k if kmeans is not None else None,
        kmeans_silhouette=kmeans.silhouette if kmeans is not None else None,
        changes=changes, no_changes=False, index=index_status, timings=timer.timings, files=files,
    )


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


# --------------------------------------------------------------------------- steps

def _load(prev: BuildVersion, settings: Settings, data_path, schema: str, column_map: dict[str, str],
          previous: dict, input_key: dict) -> tuple[pd.DataFrame, str, str, bool]:
    path = Path(data_path) if data_path is not None else None
    cached = prev.path(TRANSACTIONS)
    if path is not None and path.is_file() and cached.exists() and previous.get("input_key") == input_key:
        fingerprint = source_fingerprint(path) + SuppressionList(settings.data_dir).tag()
        if fingerprint == previous.get("fingerprint") and file_sha(cached) == previous.get("transactions_sha"):
            return pd.read_parquet(cached), fingerprint, str(path.resolve()), True
    result = load_transactions(path, schema, column_map or None, settings=settings)
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
           fingerprint: str, rescore: bool, training_config=None, promotion=None) -> tuple[pd.DataFrame, bool]:
    """Scores for this build, in the staged folder: linked from the previous build when reusable."""
    if not rescore:
        saved = _reusable_scores(prev, settings, fingerprint)
        if saved is not None:
            staged.link_from(prev, MODELS)
            staged.link_from(prev, SCORES)
            return saved, True
    from predictor.engine import score_transactions
    from predictor.model.estimators import TrainingConfig

    # The engine writes model and scores under its settings' data dir: the staged folder. Customer buckets
    # (the Dask engine's partitioned log) live beside the versions and are reused while the log is unchanged.
    staged_settings = settings.model_copy(update={"data_dir": staged.root})
    scores, _ = score_transactions(transactions, staged_settings, training_config or TrainingConfig.from_settings(settings),
                                   fingerprint, engine=settings.engine, buckets_dir=Path(settings.data_dir) / BUCKETS,
                                   promotion=promotion)
    return scores, False


def _itemised(transactions: pd.DataFrame) -> bool:
    """Whether the log names products per line (product suggestions need it)."""
    return "product_id" in transactions and not transactions["product_id"].isna().all()


def _suggestions(transactions: pd.DataFrame, customer_ids: pd.Series, k: int = SUGGESTIONS) -> pd.Series | None:
    try:
        from predictor.campaigns.products import suggest_products
    except ImportError:
        return None
    if not _itemised(transactions):
        return None
    frame = suggest_products(transactions, customer_ids.astype(str).tolist(), k=k)
    return frame.set_index("customer_id")["suggested_products"]


@dataclass
class _Tables:
    customers: pd.DataFrame
    profiles: pd.DataFrame
    categories: CategoryResult
    tx: pd.DataFrame
    kmeans: Any = None
