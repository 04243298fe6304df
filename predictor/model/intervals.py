"""The P10-P90 interval around each customer's predicted value: quantile regression on log spend,
conformalised on the validation window so that the interval covers what it claims on data it was not
fitted on (split-conformal quantile regression, Romano, Patterson and Candès 2019, "Conformalized
Quantile Regression": the shift is the (1 - alpha)(1 + 1/n) quantile of max(lo - y, y - hi)).

Raw quantile boosters covered 86-98% of customers for an interval that claims 80%: boosted quantile
loss with few rounds does not reach the tails it is asked for, and the spread of a short label window
scaled up to the horizon is not the horizon's own spread. The conformal shift corrects both on the
newest window the model did not train on.
"""

from __future__ import annotations

import numpy as np
import xgboost as xgb

from predictor.model.boosters import fit_in_process

# The interval's nominal coverage: P10 to P90.
NOMINAL_COVERAGE = 0.8


def interval_model(config) -> xgb.XGBRegressor:
    return xgb.XGBRegressor(objective="reg:quantileerror", quantile_alpha=np.array([0.1, 0.9]), max_depth=3,
                            n_estimators=config.interval_estimators, learning_rate=0.08, tree_method="hist",
                            max_bin=128, n_jobs=config.n_jobs, random_state=config.random_seed)


def long_label_rows(label_days, horizon_days: int, minimum: int = 200):
    """Rows whose label window is long enough to show the horizon's spread (at least half of it);
    every row when too few are. `label_days` is a column (pandas or Dask) or an array; so is the answer."""
    long_rows = label_days >= 0.5 * horizon_days
    count = long_rows.sum()
    count = count.compute() if hasattr(count, "compute") else count  # a Dask column counts lazily
    return long_rows if count >= minimum else label_days == label_days


def fit_interval(features, target, label_days, config, fit_booster=None):
    """The P10/P90 booster on log1p(spend) of the rows with long enough label windows (`target` and
    `label_days` are the rows' columns, aligned with `features`; `fit_booster` as for the other boosters)."""
    rows = long_label_rows(label_days, config.horizon_days)
    return (fit_booster or fit_in_process)(interval_model(config), features[rows], np.log1p(target[rows]))


def conformal_shift(log_quantiles: np.ndarray, realised: np.ndarray, coverage: float = NOMINAL_COVERAGE) -> float:
    """How far (in log1p spend) to move the upper end so that the interval covers `coverage` of the
    calibration rows: the finite-sample conformal quantile of the score y - hi among rows at or above
    the lower end. Only the upper end moves: most customers' P10 is zero spend (an atom at zero), so
    a shift of both ends, as plain CQR does, cannot narrow an interval that over-covers the zeros."""
    lo = np.minimum(log_quantiles[:, 0], log_quantiles[:, 1])
    hi = np.maximum(log_quantiles[:, 0], log_quantiles[:, 1])
    z = np.log1p(np.clip(np.asarray(realised, dtype=float), 0, None))
    above = z >= lo - 1e-9
    scores = np.sort(z[above] - hi[above])
    if not len(scores):
        return 0.0
    # Rows below the lower end are misses whatever the shift; cover enough of the rest for `coverage`.
    needed = int(np.ceil((len(z) + 1) * coverage))
    return float(scores[min(max(needed, 1), len(scores)) - 1])


def interval_bounds(log_quantiles: np.ndarray, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """P10 and P90 in money from the booster's log quantiles and the conformal shift of the upper end."""
    lo = np.minimum(log_quantiles[:, 0], log_quantiles[:, 1])
    # The 1e-9 keeps the calibration row that sets the shift inside after the round trip through expm1.
    hi = np.maximum(np.maximum(log_quantiles[:, 0], log_quantiles[:, 1]) + shift + 1e-9, lo)
    return np.expm1(lo).clip(min=0), np.expm1(hi).clip(min=0)


def served_bounds(log_quantiles: np.ndarray, shift: float, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The P10 and P90 a customer is shown: the interval widened where needed to hold their predicted
    value (the blend with last-period spend can land outside the booster's quantiles)."""
    p10, p90 = interval_bounds(np.asarray(log_quantiles), shift)
    return np.minimum(p10, value), np.maximum(p90, value)
