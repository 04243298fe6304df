"""Ranking, calibration and error metrics used by evaluation and model selection."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import brier_score_loss, roc_auc_score


def _gini(actual: np.ndarray, order_by: np.ndarray) -> float:
    order = np.lexsort((np.arange(len(order_by)), -order_by))
    sorted_actual = actual[order]
    cumulative = np.cumsum(sorted_actual) / max(sorted_actual.sum(), 1e-12)
    n = len(actual)
    return float(cumulative.sum() / n - (n + 1) / (2 * n))


def normalized_gini(actual, predicted) -> float:
    """Gini of actual values ordered by the prediction, divided by the Gini of the perfect order."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    perfect = _gini(actual, actual)
    return 0.0 if perfect == 0 else _gini(actual, predicted) / perfect


def top_decile_capture(actual, predicted) -> float:
    """Share of actual revenue that comes from the 10% of customers ranked highest by the prediction."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    k = max(1, int(round(0.1 * len(actual))))
    top = np.argsort(-predicted, kind="stable")[:k]
    total = actual.sum()
    return float(actual[top].sum() / total) if total > 0 else 0.0


def value_metrics(actual, predicted) -> dict:
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    return {
        "spearman": float(np.nan_to_num(spearmanr(predicted, actual).statistic)),
        "normalized_gini": normalized_gini(actual, predicted),
        "top_decile_capture": top_decile_capture(actual, predicted),
        "mae": float(np.mean(np.abs(actual - predicted))),
        "total_predicted": float(predicted.sum()),
        "total_actual": float(actual.sum()),
    }


def churn_metrics(churned, churn_risk) -> dict:
    if churn_risk is None:
        return {"churn_auc": None, "brier": None}
    churned = np.asarray(churned, bool)
    churn_risk = np.asarray(churn_risk, float)
    return {"churn_auc": float(roc_auc_score(churned, churn_risk)),
            "brier": float(brier_score_loss(churned, churn_risk))}


def interval_coverage(actual, low, high) -> float:
    actual = np.asarray(actual, float)
    return float(np.mean((actual >= np.asarray(low)) & (actual <= np.asarray(high))))
