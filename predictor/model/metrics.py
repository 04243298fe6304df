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


def decile_lift(actual, predicted) -> list[dict]:
    """The lift chart's rows: customers ranked by prediction (highest first, ties in row order) and cut
    into ten groups as equal as possible; per group its customers, their mean realised spend, its share
    of the window's revenue and its lift (mean spend over the mean of everyone: 1.0 is no better than
    picking at random)."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    if len(actual) < 10:
        return []  # fewer customers than groups: no chart to draw
    order = np.argsort(-predicted, kind="stable")
    total, mean = actual.sum(), actual.mean()
    rows = []
    for decile, members in enumerate(np.array_split(order, 10), start=1):
        spend = actual[members]
        rows.append({"decile": decile, "customers": int(len(members)), "mean_spend": round(float(spend.mean()), 2),
                     "revenue_share": round(float(spend.sum() / total), 4) if total > 0 else 0.0,
                     "lift": round(float(spend.mean() / mean), 3) if mean > 0 else 0.0})
    return rows


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
    """AUC and Brier score of churn risk, with the Brier score of the no-skill baseline (always the
    period's churn rate) and how much smaller the model's is: the figures "better than a baseline" reads."""
    if churn_risk is None:
        return {"churn_auc": None, "brier": None, "churn_rate": None, "baseline_brier": None,
                "brier_improvement": None}
    churned = np.asarray(churned, bool)
    churn_risk = np.asarray(churn_risk, float)
    brier = float(brier_score_loss(churned, churn_risk))
    rate = float(churned.mean()) if len(churned) else 0.0
    baseline = rate * (1.0 - rate)  # Brier score of predicting `rate` for everyone
    auc = float(roc_auc_score(churned, churn_risk)) if 0 < churned.sum() < len(churned) else None
    return {"churn_auc": auc, "brier": brier, "churn_rate": rate, "baseline_brier": baseline,
            "brier_improvement": 1.0 - brier / baseline if baseline > 0 else None}


def held_out_quality(actual, predicted, churned, churn_risk) -> dict:
    """What model_report puts in words, measured on a held-out time window: the share of the window's
    revenue the top 10% by prediction brought in, and churn risk against the no-skill baseline."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    return {"top_decile_capture": top_decile_capture(actual, predicted), **churn_metrics(churned, churn_risk)}


def interval_coverage(actual, low, high) -> float:
    actual = np.asarray(actual, float)
    return float(np.mean((actual >= np.asarray(low)) & (actual <= np.asarray(high))))
