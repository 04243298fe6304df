"""Drift between the population a model was chosen on and the population it scores today, per feature
and for the prediction itself.

The test per column follows Evidently's documented defaults for numerical columns (its data-drift
preset), computed with scipy's implementations: more than 1,000 rows in the reference, the Wasserstein
distance normed by the reference's standard deviation, drifted at 0.1 or more; up to 1,000 rows, the
two-sample Kolmogorov-Smirnov test, drifted at p < 0.05. Evidently itself is not a dependency: its 0.7
release pulls a web framework, NLTK and plotly (measured for the model-health issue).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp, wasserstein_distance

LARGE_SAMPLE = 1_000
WASSERSTEIN_THRESHOLD = 0.1
KS_P_THRESHOLD = 0.05


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    test: str  # "wasserstein (normed)" or "ks"
    statistic: float  # the normed distance, or the KS p-value
    threshold: float
    drifted: bool
    reference_mean: float
    current_mean: float

    def as_dict(self) -> dict:
        return asdict(self)


def column_drift(column: str, reference, current) -> ColumnDrift | None:
    """One column's drift test; None when either side has no finite values, or the reference is one
    constant (a calendar figure such as the days of history every customer shares: it changes with the
    date by construction, which says nothing about the customers)."""
    ref = np.asarray(reference, float)
    cur = np.asarray(current, float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if not len(ref) or not len(cur) or np.all(ref == ref[0]):
        return None
    means = float(ref.mean()), float(cur.mean())
    if len(ref) > LARGE_SAMPLE:
        distance = wasserstein_distance(ref, cur) / float(ref.std())
        return ColumnDrift(column, "wasserstein (normed)", float(distance), WASSERSTEIN_THRESHOLD,
                           bool(distance >= WASSERSTEIN_THRESHOLD), *means)
    p_value = float(ks_2samp(ref, cur).pvalue)
    return ColumnDrift(column, "ks", p_value, KS_P_THRESHOLD, bool(p_value < KS_P_THRESHOLD), *means)


def population_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> list[ColumnDrift]:
    """`column_drift` for every column both frames have (in `columns` order)."""
    out = []
    for column in columns:
        if column in reference and column in current:
            result = column_drift(column, reference[column], current[column])
            if result is not None:
                out.append(result)
    return out
