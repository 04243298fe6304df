"""The boosters: the model's four estimators (their settings in one place, whichever engine fits them),
and their predict mechanics for a population: one C-contiguous float32 matrix, read in place by
xgboost (`inplace_predict`) on the configured threads. The values are those of the sklearn wrappers'
`predict` / `predict_proba` (tests/test_fast_partition.py checks them on the real data)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xgboost as xgb

if TYPE_CHECKING:
    from predictor.model.estimators import TrainingConfig

PREDICT_BLOCK_ROWS = 65_536
# From this many rows the boosters predict on the configured threads (below it, threads save nothing).
THREADED_PREDICT_ROWS = 10_000


def feature_matrix(features: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The boosters' input: a C-contiguous float32 matrix, so xgboost reads it in place, row by row
    (a frame's own array is column-major: every row would be 31 scattered reads, and a copy)."""
    x = np.empty((len(features), len(names)), dtype=np.float32)
    columns = [features[name].to_numpy() for name in names]
    for lo in range(0, len(x), PREDICT_BLOCK_ROWS):  # a block of rows at a time stays in cache
        block = x[lo:lo + PREDICT_BLOCK_ROWS]
        for j, column in enumerate(columns):
            block[:, j] = column[lo:lo + PREDICT_BLOCK_ROWS]
    return x


def iteration_range(estimator) -> tuple[int, int]:
    """The trees the sklearn wrapper's predict uses: all of them unless early stopping kept fewer."""
    try:
        return 0, estimator.best_iteration + 1
    except AttributeError:
        return 0, 0


def raw_predict(estimator, x: np.ndarray, threads: int) -> np.ndarray:
    """What `estimator.predict(x)` (or `predict_proba(x)[:, 1]` for the churn classifier) returns, from
    the booster's `inplace_predict`, on `threads` threads for a large population. The booster's own thread
    setting is put back afterwards: the one-customer scorer keeps its boosters single-threaded, and shares
    them. Small inputs keep the booster's setting: changing it makes xgboost reconfigure the booster on
    its next call, a cost that the scorer's next one-row prediction would pay."""
    booster = estimator.get_booster()
    if len(x) < THREADED_PREDICT_ROWS:
        return booster.inplace_predict(x, iteration_range=iteration_range(estimator), missing=estimator.missing)
    previous = json.loads(booster.save_config())["learner"]["generic_param"]["nthread"]
    booster.set_param({"nthread": threads})
    try:
        return booster.inplace_predict(x, iteration_range=iteration_range(estimator), missing=estimator.missing)
    finally:
        booster.set_param({"nthread": previous})


# --------------------------------------------------------------------------- the estimators

def value_model(depth: int, rounds: int, config: TrainingConfig) -> xgb.XGBRegressor:
    # Tweedie suits spend: a point mass at zero (no order) plus a skewed positive part.
    return xgb.XGBRegressor(objective="reg:tweedie", tweedie_variance_power=1.5, max_depth=depth,
                            n_estimators=rounds, learning_rate=config.learning_rate, subsample=0.8,
                            colsample_bytree=0.8, min_child_weight=5, tree_method="hist", max_bin=128,
                            n_jobs=config.n_jobs, random_state=config.random_seed)


def churn_model(depth: int, rounds: int, config: TrainingConfig) -> xgb.XGBClassifier:
    return xgb.XGBClassifier(objective="binary:logistic", max_depth=depth, n_estimators=rounds,
                             learning_rate=config.learning_rate, subsample=0.8, colsample_bytree=0.8,
                             min_child_weight=5, tree_method="hist", max_bin=128, n_jobs=config.n_jobs,
                             random_state=config.random_seed)


def next_order_model(config: TrainingConfig) -> xgb.XGBRegressor:
    return xgb.XGBRegressor(objective="reg:squarederror", max_depth=3, n_estimators=100, learning_rate=0.08,
                            tree_method="hist", max_bin=128, n_jobs=config.n_jobs, random_state=config.random_seed)


def fit_in_process(estimator, x, y):
    """The local engine's booster fitter: the estimator's own fit, in this process. A distributed engine
    passes its own (predictor/engine/dask_training.py), which returns the same kind of fitted estimator."""
    return estimator.fit(x, y)
