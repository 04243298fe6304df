"""The boosters' predict mechanics for a population: one C-contiguous float32 matrix, read in place by
xgboost (`inplace_predict`) on the configured threads. The values are those of the sklearn wrappers'
`predict` / `predict_proba` (tests/test_fast_partition.py checks them on the real data)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

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
