"""The Dask engine (predictor/engine) against the local engine, on the real Online Retail and CDNOW logs,
on a real LocalCluster of two worker processes: the same scores per customer, a worker killed mid-run
changes nothing, and a run that fails leaves the previous model and scores serving."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from _dask_support import assert_same_frames, killer_after, local_cluster
from predictor.engine.buckets import bucket_path, read_bucket, read_bucket_set, write_buckets
from predictor.engine.dask_engine import ClusterConfig, score_with_dask
from predictor.errors import DataError
from predictor.layout import clean_debris
from predictor.model.estimators import TrainingConfig
from predictor.model.scoring import score_customers, with_categories
from predictor.settings import Settings


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as running:
        yield running


def assert_same_scores(local_path: Path, dask_path: Path) -> None:
    """Per customer: numbers allclose, everything else (drivers, dates, country, tier inputs) equal."""
    local = pd.read_parquet(local_path).drop(columns="model_version").sort_values("customer_id", ignore_index=True)
    dask = pd.read_parquet(dask_path).drop(columns="model_version").sort_values("customer_id", ignore_index=True)
    assert_same_frames(local, dask)


def dask_score(tmp_path: Path, transactions, config, scheduler: str, buckets: int, on_bucket_done=None):
    bucket_set = write_buckets(with_categories(transactions), tmp_path / "buckets", buckets=buckets)
    settings = Settings(data_dir=tmp_path / "dask")
    path, rows, bundle = score_with_dask(bucket_set, settings, config, ClusterConfig(scheduler=scheduler),
                                         on_bucket_done=on_bucket_done)
    return settings, path, rows, bundle


def test_buckets_hold_every_line_once_in_log_order(online_retail, tmp_path):
    lines = with_categories(online_retail.transactions)
    bucket_set = write_buckets(lines, tmp_path / "b", buckets=4)
    parts = [read_bucket(p).assign(bucket=i) for i, p in enumerate(bucket_set.paths)]
    together = pd.concat(parts, ignore_index=True)
    assert len(together) == len(lines) == bucket_set.lines
    assert together.groupby("customer_id")["bucket"].nunique().max() == 1  # a customer in one bucket
    for part in parts:  # lines keep their log order within a bucket
        assert part["order_id"].tolist() == lines.loc[lines["customer_id"].isin(part["customer_id"]), "order_id"].tolist()
    assert read_bucket_set(tmp_path / "b") == bucket_set


def test_dask_engine_equals_the_local_engine_on_online_retail_with_a_worker_killed(online_retail, scored_settings,
                                                                                  cluster, tmp_path):
    scheduler, client = cluster
    kill_a_worker = killer_after(client, first_done=1)  # the other buckets still running or queued
    config = TrainingConfig.fast(scored_settings.horizon_days)
    _, path, rows, bundle = dask_score(tmp_path, online_retail.transactions, config, scheduler, buckets=8,
                                       on_bucket_done=kill_a_worker)
    assert kill_a_worker.killed
    assert rows == len(pd.read_parquet(scored_settings.scores_path))
    assert_same_scores(scored_settings.scores_path, path)
    assert bundle.model.training_sample["method"] == "all"
    client.wait_for_workers(2, timeout=60)  # the nanny brought the worker back for the next test


def test_dask_engine_equals_local_on_cdnow_with_a_training_sample(cdnow, cluster, tmp_path):
    config = TrainingConfig.fast(180)
    config.training_sample_share = 0.5
    # A third of CDNOW's customers (every one of their orders): the sample's rule does not depend on the
    # population's size, and two full CDNOW fits took a minute of make test.
    lines = cdnow.transactions
    kept = pd.Index(sorted(lines["customer_id"].unique()))[::3]
    lines = lines[lines["customer_id"].isin(kept)].reset_index(drop=True)
    local = Settings(data_dir=tmp_path / "local")
    score_customers(lines, local, config, cdnow.fingerprint)
    _, path, _, bundle = dask_score(tmp_path, lines, config, cluster[0], buckets=3)
    assert_same_scores(local.scores_path, path)
    sample = bundle.model.training_sample
    assert sample["method"] == "seeded hash of customer_id" and 0.4 < sample["customers"] / sample["of"] < 0.6


def test_an_unreadable_bucket_fails_cleanly_and_the_previous_scores_serve(cdnow, scored_settings, cluster, tmp_path):
    config = TrainingConfig.fast(180)
    bucket_set = write_buckets(cdnow.transactions, tmp_path / "buckets", buckets=3)
    settings = Settings(data_dir=tmp_path / "dask")
    # The previous run's model and scores (another engine's: what serves must not matter).
    shutil.copytree(scored_settings.model_dir, settings.model_dir, symlinks=True)
    shutil.copy2(scored_settings.scores_path, settings.scores_path)
    before = {p: p.read_bytes() for p in [settings.scores_path, *settings.model_dir.rglob("*")] if p.is_file()}
    bucket_path(bucket_set.root, 1).write_bytes(b"not parquet")
    with pytest.raises(DataError) as error:
        score_with_dask(bucket_set, settings, config, ClusterConfig(scheduler=cluster[0]))
    assert "bucket-00001.parquet" in str(error.value) and "Parquet" in str(error.value)
    after = {p: p.read_bytes() for p in [settings.scores_path, *settings.model_dir.rglob("*")] if p.is_file()}
    assert after == before  # the same model version and scores, byte for byte
    assert not [p for p in settings.data_dir.iterdir() if p.name.startswith(".")]  # no parts left behind


def test_bucket_set_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="buckets.json is missing"):
        read_bucket_set(tmp_path)
    (tmp_path / "buckets.json").write_text('{"buckets": 2, "lines": 1, "customers": 1, "first_day": "2011-01-01", '
                                           '"last_day": "2011-02-01", "columns": ["customer_id"]}')
    with pytest.raises(DataError, match="2 of 2 bucket files are missing"):
        read_bucket_set(tmp_path)


def test_debris_of_a_killed_engine_run_is_removed(tmp_path):
    (tmp_path / ".dask-parts.abc").mkdir()
    (tmp_path / ".buckets.xyz").mkdir()
    (tmp_path / "buckets").mkdir()
    clean_debris(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buckets"]


def test_valuedesk_build_on_the_dask_engine_equals_the_local_build(cluster, tmp_path, monkeypatch):
    """`valuedesk build --engine dask --scheduler ADDR`, through the real CLI, against a local build."""
    from _tiers_data import sample_csv

    from valuedesk.cli import main
    from valuedesk.config import load_settings

    monkeypatch.setenv("VALUEDESK_TRAINING_PROFILE", "fast")
    tables = {}
    for engine, extra in (("local", []), ("dask", ["--engine", "dask", "--scheduler", cluster[0]])):
        monkeypatch.setenv("VALUEDESK_DATA_DIR", str(tmp_path / engine))
        load_settings.cache_clear()
        assert main(["build", "--data", str(sample_csv()), "--no-index", "--quiet", *extra]) == 0
        root = Settings(data_dir=tmp_path / engine).build_root
        tables[engine] = root / "scores.parquet"
    assert (tmp_path / "dask" / "buckets" / "buckets.json").exists()
    assert not (tmp_path / "local" / "buckets").exists()
    assert_same_scores(tables["local"], tables["dask"])
    local = pd.read_parquet(tables["local"].with_name("customers.parquet")).drop(columns="model_version", errors="ignore")
    dask = pd.read_parquet(tables["dask"].with_name("customers.parquet")).drop(columns="model_version", errors="ignore")
    assert local["tier"].equals(dask["tier"]) and local["profile_text"].equals(dask["profile_text"])


def test_engine_flags_override_the_settings():
    from argparse import Namespace

    from predictor.engine import settings_with_engine

    settings = Settings(engine="local")
    assert settings_with_engine(settings, Namespace(engine=None, scheduler=None)).engine == "local"
    chosen = settings_with_engine(settings, Namespace(engine=None, scheduler="tcp://10.0.0.5:8786"))
    assert (chosen.engine, chosen.dask_scheduler) == ("dask", "tcp://10.0.0.5:8786")
    assert settings_with_engine(Settings(engine="dask"), Namespace(engine="local", scheduler=None)).engine == "local"
