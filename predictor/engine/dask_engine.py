"""`--engine dask`: train and score from customer buckets on a Dask cluster, with the local engine's functions.

The steps, each a Dask task or an explicit reduce:
1. Train on one worker: it reads the buckets, keeps the training sample (`training_sample_share`, a seeded
   hash of the customer id: the same customers the local engine samples) and fits `CLVModel` as the local
   engine does. The fitted model comes back once and is scattered to every worker once.
2. BG/NBD population parameters at the scoring date: each bucket returns its customers with the smallest
   seeded hashes (predictor.model.sampling.smallest_hash_rows); the reduce keeps the smallest of those and
   fits, exactly the sample and row order the local engine fits on.
3. Score each bucket with `score_frame` (features, prediction, explanations) given the model and the
   population fit; each writes its part of the scores as Parquet.
4. The parts are appended into one scores file under a temporary name and renamed into place, after the
   model is saved: a run that fails (a bucket that cannot be read, a cluster that loses every worker)
   leaves the previous model and scores as they were. A worker that dies mid-run has its tasks rerun
   elsewhere by the scheduler; tasks are pure functions of their bucket, so a rerun writes the same part.

Every worker must see the same paths (one machine, or a shared file system on a real cluster).
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from predictor.atomic import atomic_path
from predictor.engine.buckets import BucketSet, read_bucket
from predictor.errors import DataError
from predictor.layout import ENGINE_TEMP_PREFIXES
from predictor.model.baselines import BGNBDGammaGamma, rfm_summary
from predictor.model.estimators import CLVModel, TrainingConfig
from predictor.model.sampling import in_training_sample, smallest_hash_rows

log = logging.getLogger(__name__)
DASK_PARTS_PREFIX = ENGINE_TEMP_PREFIXES[1]


@dataclass(frozen=True)
class ClusterConfig:
    """Where the Dask engine runs: a scheduler address, or a LocalCluster of `workers` processes."""

    scheduler: str | None = None
    workers: int | None = None  # default: one per core
    worker_memory: str = "auto"  # per worker; Dask spills to disk from 70% of it and pauses at 80%

    @classmethod
    def from_settings(cls, settings, scheduler: str | None = None) -> "ClusterConfig":
        return cls(scheduler=scheduler or settings.dask_scheduler, workers=settings.dask_workers,
                   worker_memory=settings.dask_worker_memory)


# The client a whole build shares (`shared_client`): one LocalCluster start, not one per step.
_SHARED_CLIENT: ContextVar[object | None] = ContextVar("valuedesk_dask_client", default=None)


@contextmanager
def shared_client(cluster: ClusterConfig) -> Iterator[object]:
    """One client for every `dask_client` opened inside this block (a build's score, customers and index
    steps), closed when the block ends."""
    with dask_client(cluster) as client:
        token = _SHARED_CLIENT.set(client)
        try:
            yield client
        finally:
            _SHARED_CLIENT.reset(token)


@contextmanager
def dask_client(cluster: ClusterConfig) -> Iterator[object]:
    """A client of the scheduler at `cluster.scheduler`, or of a LocalCluster sized to this machine (the
    enclosing `shared_client`'s, when there is one)."""
    from distributed import Client, LocalCluster

    if _SHARED_CLIENT.get() is not None:
        yield _SHARED_CLIENT.get()
        return
    if cluster.scheduler:
        with Client(cluster.scheduler, timeout="30s") as client:
            yield client
        return
    workers = cluster.workers or os.cpu_count() or 1
    # One thread per worker process: pandas and numpy steps hold the GIL, so processes are what run in
    # parallel. OMP_THREAD_LIMIT caps xgboost's OpenMP threads too (its boosters ask for n_jobs threads, and
    # its SHAP explanations for every core), so two workers on two cores do not fight over them.
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=cluster.worker_memory,
                      dashboard_address=None, silence_logs=logging.ERROR, env={"OMP_THREAD_LIMIT": "1"}) as local, \
            Client(local) as client:
        yield client


# --------------------------------------------------------------------------- tasks (run on the workers)

def bucket_history(path: Path, data_start: pd.Timestamp):
    """The CustomerHistory of one bucket's customers, with the population's first day, so history-length
    features mean what they mean in one process; None for a bucket without lines."""
    return _history_of(read_bucket(path), data_start)


def _history_of(lines: pd.DataFrame, data_start: pd.Timestamp):
    from predictor.model.scoring import history_from_transactions

    if not len(lines):
        return None
    history = history_from_transactions(lines)
    history.data_start = data_start
    return history


def training_part(path: Path, data_start: pd.Timestamp, share: float, seed: int):
    """One bucket's training-sample history and how many customers it models (before sampling)."""
    lines = read_bucket(path)
    modelled = lines.loc[~lines["is_outlier"].astype(bool)] if "is_outlier" in lines else lines
    if share < 1:
        lines = lines.loc[in_training_sample(lines["customer_id"], share, seed)]
    return _history_of(lines, data_start), int(modelled["customer_id"].nunique())


def train_task(paths: list[Path], data_start: pd.Timestamp, as_of: pd.Timestamp, config: TrainingConfig) -> CLVModel:
    """Fit the model on one worker from the training sample of every bucket (the local engine's fit)."""
    from predictor.model.features import CustomerHistory

    parts = [training_part(p, data_start, config.training_sample_share, config.random_seed) for p in paths]
    histories = [history for history, _ in parts if history is not None]
    orders = pd.concat([h.orders for h in histories], ignore_index=True)
    orders = orders.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    with_lines = [h.lines for h in histories if h.lines is not None]
    history = CustomerHistory(orders=orders, lines=pd.concat(with_lines, ignore_index=True) if with_lines else None,
                              data_start=data_start)
    model = CLVModel(config).fit(history, end=as_of)
    population = sum(count for _, count in parts)
    model.training_sample = {**model.training_sample, "of": population,
                             "method": "all" if model.training_sample["customers"] == population
                             else "seeded hash of customer_id"}
    return model


def bg_sample_task(path: Path, data_start: pd.Timestamp, as_of: pd.Timestamp, k: int, seed: int) -> pd.DataFrame:
    """This bucket's candidates for the BG/NBD fit at the scoring date: its k smallest-hash customers."""
    history = bucket_history(path, data_start)
    if history is None:
        return pd.DataFrame()
    return smallest_hash_rows(rfm_summary(history, as_of), k, seed)


def score_task(path: Path, part: Path, model: CLVModel, bg: BGNBDGammaGamma, data_start: pd.Timestamp,
               as_of: pd.Timestamp, currency: str) -> int:
    """Score one bucket with the local engine's `score_frame` and write its part; returns its rows."""
    from predictor.model.scoring import score_frame

    history = bucket_history(path, data_start)
    if history is None:
        return 0
    # A copy with one thread: the worker process is the unit of parallelism, and scoring must not
    # change the shared (scattered) model.
    worker_model = copy.copy(model)
    worker_model.config = replace(model.config, n_jobs=1)
    frame = score_frame(worker_model, history, as_of, currency, bg=bg)
    if not len(frame):
        return 0
    with atomic_path(part) as tmp:
        frame.to_parquet(tmp, index=False)
    return len(frame)


# --------------------------------------------------------------------------- the driver

@dataclass
class DaskScoreResult:
    model: CLVModel
    rows: int
    parts: list[Path]


def score_buckets(bucket_set: BucketSet, config: TrainingConfig, currency: str, client, work_dir: Path,
                  on_bucket_done: Callable[[int], None] | None = None, training: str = "auto") -> DaskScoreResult:
    """Train, fit the population step and score every bucket on `client`; the parts land in `work_dir`.
    `training`: one_worker, xgboost_dask, or auto (by the sample's size against the workers' memory)."""
    from distributed import as_completed

    from predictor.engine.dask_training import choose_training, train_with_xgboost_dask

    paths, start, as_of = bucket_set.paths, bucket_set.data_start, bucket_set.as_of
    training = choose_training(training, bucket_set, config, client)
    log.info("training %s", training.replace("_", " "))
    trained = (client.submit(train_task, paths, start, as_of, config, pure=False) if training == "one_worker"
               else None)  # on one worker, it trains while the population step below runs
    candidates = client.map(bg_sample_task, paths, data_start=start, as_of=as_of, k=config.bg_fit_customers,
                            seed=config.random_seed, pure=False)
    bg = BGNBDGammaGamma(max_fit_customers=config.bg_fit_customers, random_seed=config.random_seed)
    bg.fit(pd.concat([frame for frame in client.gather(candidates) if len(frame)]))
    model = (trained.result() if trained is not None
             else train_with_xgboost_dask(client, bucket_set, config, work_dir / "training"))
    model.scoring_bg = bg
    [shared_model] = client.scatter([model], broadcast=True)  # once, not with every task
    parts = [work_dir / f"part-{i:05d}.parquet" for i in range(len(paths))]
    futures = client.map(score_task, paths, parts, model=shared_model, bg=bg, data_start=start, as_of=as_of,
                         currency=currency, pure=False)
    rows, done = 0, 0
    for future in as_completed(futures):
        rows += future.result()
        done += 1
        if on_bucket_done is not None:
            on_bucket_done(done)
    return DaskScoreResult(model=model, rows=rows, parts=[p for p in parts if p.exists()])


def append_parts(parts: list[Path], target: Path, model_version: str) -> int:
    """Append the scored parts into one Parquet file at `target` (written whole, then renamed)."""
    schemas = [pq.read_schema(p) for p in parts]
    if not schemas:
        raise DataError("No customer with an order in any bucket: nothing was scored.")
    schema = pa.unify_schemas(schemas, promote_options="permissive").append(pa.field("model_version", pa.large_string()))
    # The parts' pandas metadata, so the file reads back with the dtypes of the local engine's scores file
    # (model_version is not in it and reads back as the default string dtype, as the local file's does).
    schema = schema.with_metadata(schemas[0].metadata)
    rows = 0
    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for part in parts:
            table = pq.read_table(part)
            table = table.append_column("model_version", pa.array([model_version] * table.num_rows, pa.string()))
            writer.write_table(table.select(schema.names).cast(schema))
            rows += table.num_rows
    return rows


def score_with_dask(bucket_set: BucketSet, settings, config: TrainingConfig, cluster: ClusterConfig,
                    data_fingerprint: str = "", evaluation: dict | None = None, promotion: dict | None = None,
                    on_bucket_done: Callable[[int], None] | None = None):
    """`valuedesk score --engine dask`: model and scores into `settings`' data dir, as the local engine writes
    them (predictor.model.scoring.score_customers). Returns (scores file, rows, model bundle)."""
    from predictor.model.artifacts import save_model

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(dir=settings.data_dir, prefix=DASK_PARTS_PREFIX))
    try:
        with dask_client(cluster) as client:
            result = score_buckets(bucket_set, config, settings.currency_symbol, client, work_dir, on_bucket_done,
                                   training=settings.dask_training)
        bundle = save_model(result.model, settings.model_dir, data_fingerprint, evaluation, promotion)
        rows = append_parts(result.parts, settings.scores_path, bundle.metadata["version"])
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return settings.scores_path, rows, bundle
