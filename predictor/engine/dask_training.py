"""Training with xgboost.dask, for a training sample too big for one worker (issue 18, item 3).

The fit is the local engine's (`CLVModel.fit_rows`): the same cutoffs, validation window, grids, blend,
calibration and conformal shift. Two things change:

- **Where the rows live.** Each bucket's task builds its training rows with the local engine's
  `stack_rows` and writes them as a Parquet part; the boosters read the parts as one Dask frame, so no
  process holds every customer's history or every row. The validation rows (one cutoff) are gathered to
  the driver, where the grid choice, blend and calibration are computed as they are locally.
- **Who fits the boosters.** `xgboost.dask` trains each booster across the workers (Rabit allreduce of
  the histograms); the fitted booster comes back as the same sklearn estimator the local engine saves.

The BG/NBD features at each cutoff need the population's fit: each bucket returns its smallest-hash
customers per cutoff and the driver fits on the smallest of those, the sample one process draws.

Not equal to one-worker training: distributed `hist` sums its histograms in a different order and row
subsampling draws per worker, so trees differ slightly (bench/bench_dask_training.py measures the cost).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from predictor.atomic import atomic_path
from predictor.engine.buckets import BucketSet
from predictor.model.baselines import BGNBDGammaGamma, rfm_summary
from predictor.model.estimators import CLVModel, TrainingConfig
from predictor.model.sampling import smallest_hash_rows
from predictor.model.training_rows import TrainingError, feature_frame, stack_rows
from predictor.model.features import compute_labels

TRAINING_MODES = ("auto", "one_worker", "xgboost_dask")
# Bytes a training row of ~40 columns costs in pandas plus the booster's matrix; a log line in a history.
_ROW_BYTES, _LINE_BYTES = 40 * 8 * 3, 160


def training_footprint(bucket_set: BucketSet, config: TrainingConfig) -> int:
    """Bytes one worker needs to train on the sample: its history, and every training row twice (the
    validation fit's rows and the final fit's)."""
    share = config.training_sample_share
    return int(bucket_set.lines * share * _LINE_BYTES
               + 2 * bucket_set.customers * share * config.max_cutoffs * _ROW_BYTES)


def choose_training(mode: str, bucket_set: BucketSet, config: TrainingConfig, client) -> str:
    """`one_worker` while the sample fits half of the smallest worker's memory limit, else `xgboost_dask`
    (or the mode the settings name)."""
    if mode not in TRAINING_MODES:
        raise ValueError(f"Unknown Dask training mode '{mode}'; expected one of {', '.join(TRAINING_MODES)}.")
    if mode != "auto":
        return mode
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    smallest = min((m for m in limits if m), default=0)
    return "xgboost_dask" if smallest and training_footprint(bucket_set, config) > smallest / 2 else "one_worker"


# --------------------------------------------------------------------------- tasks (run on the workers)

def _sample_history(path: Path, data_start: pd.Timestamp, end: pd.Timestamp, config: TrainingConfig):
    """(the bucket's training-sample history up to `end` or None, how many customers it models)."""
    from predictor.engine.dask_engine import training_part

    history, modelled = training_part(path, data_start, config.training_sample_share, config.random_seed)
    return (history.before(end) if history is not None else None), modelled


def bg_candidates_task(path: Path, data_start, end, cutoffs: list, config: TrainingConfig) -> list[pd.DataFrame]:
    """This bucket's candidates for the BG/NBD fit at each cutoff: its smallest-hash sampled customers."""
    history, _ = _sample_history(path, data_start, end, config)
    if history is None:
        return [pd.DataFrame() for _ in cutoffs]
    return [smallest_hash_rows(rfm_summary(history, c), config.bg_fit_customers, config.random_seed) for c in cutoffs]


def rows_task(path: Path, part: Path, data_start, end, pairs: list, bgs: dict,
              config: TrainingConfig) -> tuple[int, int, int]:
    """Write this bucket's training rows at `pairs` (features and labels side by side); returns how many
    rows, how many customers the sample kept and how many the bucket models."""
    history, modelled = _sample_history(path, data_start, end, config)
    if history is None:
        return 0, 0, modelled
    customers = int(history.orders["customer_id"].nunique())
    try:
        x, y = stack_rows(history, pairs, config, bgs=bgs)
    except TrainingError:  # no customer of this bucket is old enough at any cutoff
        return 0, customers, modelled
    # The label window is a feature too (same value): one column serves both.
    frame = pd.concat([x, y.drop(columns=["cutoff", "label_days"])], axis=1)
    with atomic_path(part) as tmp:
        frame.to_parquet(tmp, index=False)
    return len(frame), customers, modelled


def validation_task(path: Path, data_start, end, cutoff, label_days: int, bg, config: TrainingConfig):
    """This bucket's validation features (indexed by customer) and labels at one cutoff, or None."""
    history, _ = _sample_history(path, data_start, end, config)
    if history is None:
        return None
    x, _ = feature_frame(history, cutoff, label_days, config, bg=bg)
    return (x, compute_labels(history, cutoff, label_days, x.index)) if len(x) else None


# --------------------------------------------------------------------------- the driver

class BucketRows:
    """`CLVModel.fit_rows`' source of rows on a cluster: training rows as a Dask frame over Parquet parts
    in `work_dir`, validation rows gathered."""

    def __init__(self, client, bucket_set: BucketSet, config: TrainingConfig, work_dir: Path, end=None):
        self.client, self.bucket_set, self.config, self.work_dir = client, bucket_set, config, Path(work_dir)
        self.paths, self.start = bucket_set.paths, bucket_set.data_start
        self.end = pd.Timestamp(end) if end is not None else bucket_set.as_of
        self._stacks = 0
        self.sampled_customers = self.population = 0

    def population_fits(self, cutoffs: list) -> dict:
        """The BG/NBD fit of the sampled population at each cutoff (the reduce step)."""
        per_bucket = self.client.gather(self.client.map(bg_candidates_task, self.paths, data_start=self.start,
                                                        end=self.end, cutoffs=list(cutoffs), config=self.config,
                                                        pure=False))
        fits = {}
        for i, cutoff in enumerate(cutoffs):
            candidates = [frames[i] for frames in per_bucket if len(frames[i])]
            if candidates:
                fits[cutoff] = BGNBDGammaGamma(max_fit_customers=self.config.bg_fit_customers,
                                               random_seed=self.config.random_seed).fit(pd.concat(candidates))
        return fits

    def stack(self, pairs):
        import dask.dataframe as dd

        from predictor.model.training_rows import MODEL_FEATURES

        bgs = self.population_fits([cutoff for cutoff, _ in pairs])
        self._stacks += 1
        folder = self.work_dir / f"rows-{self._stacks}"
        folder.mkdir(parents=True, exist_ok=True)
        parts = [folder / f"part-{i:05d}.parquet" for i in range(len(self.paths))]
        [shared_bgs] = self.client.scatter([bgs], broadcast=True)
        counts = self.client.gather(self.client.map(rows_task, self.paths, parts, data_start=self.start, end=self.end,
                                                    pairs=list(pairs), bgs=shared_bgs, config=self.config, pure=False))
        self.sampled_customers = sum(count[1] for count in counts)
        self.population = sum(count[2] for count in counts)
        written = [str(p) for p, (rows, _, _) in zip(parts, counts) if rows]
        if not written:
            raise TrainingError("No training rows in any bucket: the history is too short before the cutoff.")
        frame = dd.read_parquet(written)
        labels = ["spend", "ordered", "days_to_next", "target", "label_days"]
        return frame[["customer_id"] + MODEL_FEATURES + ["label_scale"]], frame[labels]

    def validation(self, cutoff, label_days: int):
        bg = self.population_fits([cutoff]).get(cutoff)
        parts = [p for p in self.client.gather(self.client.map(
            validation_task, self.paths, data_start=self.start, end=self.end, cutoff=cutoff, label_days=label_days,
            bg=bg, config=self.config, pure=False)) if p is not None]
        if not parts:
            raise TrainingError(f"No customer has history before the validation cutoff {pd.Timestamp(cutoff).date()}.")
        x = pd.concat([p[0] for p in parts]).sort_index()
        return x, pd.concat([p[1] for p in parts]).reindex(x.index)


def dask_booster_fitter(client):
    """A booster fitter for `CLVModel.fit_rows` that trains with xgboost.dask on `client` and returns the
    estimator it was given, fitted (the same class the local engine saves and serves)."""
    import xgboost as xgb
    import xgboost.dask  # noqa: F401  (a submodule: not imported with xgboost)

    def fit(estimator, x, y):
        kind = xgb.dask.DaskXGBClassifier if isinstance(estimator, xgb.XGBClassifier) else xgb.dask.DaskXGBRegressor
        # The workers' own thread counts, not this process's setting.
        distributed = kind(**{**estimator.get_params(), "n_jobs": None})
        distributed.client = client
        distributed.fit(x, y)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "booster.ubj"
            distributed.save_model(path)
            estimator.load_model(path)
        return estimator

    return fit


def train_with_xgboost_dask(client, bucket_set: BucketSet, config: TrainingConfig, work_dir: Path,
                            end=None) -> CLVModel:
    """The model, trained across the cluster on the sample of every bucket, on what was known at `end`
    (default: the log's last day)."""
    if config.text_feature_dims > 0:
        raise TrainingError("Product-text features are not available with xgboost.dask training; "
                            "set text_feature_dims to 0 or train on one worker.")
    model, rows = CLVModel(config), BucketRows(client, bucket_set, config, work_dir, end)
    model.fit_rows(rows, bucket_set.data_start, rows.end, dask_booster_fitter(client))
    model.training_sample = {"customers": rows.sampled_customers, "of": rows.population,
                             "method": ("all" if rows.sampled_customers == rows.population else "seeded hash of customer_id"),
                             "trained_with": "xgboost.dask"}
    return model
