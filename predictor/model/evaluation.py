"""Honest holdout evaluation: ValueDesk's model against BG/NBD + Gamma-Gamma and last-period spend.

Every model sees only orders on or before the cutoff; all are scored on the same population
(customers with an order on or before the cutoff) against spend in the following horizon.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from predictor.model.baselines import BGNBDGammaGamma, LastPeriodSpend, rfm_summary
from predictor.errors import EvaluationWindowError
from predictor.model.features import CustomerHistory, compute_labels, day_start
from predictor.model.metrics import churn_metrics, interval_coverage, value_metrics
from predictor.model.estimators import CLVModel, TrainingConfig

MODEL_NAMES = {"xgboost": "ValueDesk (XGBoost)", "bgnbd_gg": "BG/NBD + Gamma-Gamma", "last_period": "Last-period spend"}


def check_window(history: CustomerHistory, cutoff, horizon_days: int, source: str = "the data") -> pd.Timestamp:
    cutoff = day_start(cutoff)
    start, end = history.start, history.end
    if cutoff < start or cutoff >= end:
        raise EvaluationWindowError(
            f"Cutoff {cutoff.date()} is outside {source}, which runs from {start.date()} to {end.date()}; "
            "expected a cutoff date inside that range.")
    after = (end - cutoff) / pd.Timedelta(days=1)
    if horizon_days > after:
        raise EvaluationWindowError(
            f"Horizon of {horizon_days} days after cutoff {cutoff.date()} runs past the end of {source} "
            f"({end.date()}, {after:.0f} days later); expected --horizon-days <= {after:.0f} or an earlier cutoff.")
    return cutoff


def evaluate(history: CustomerHistory, cutoff, horizon_days: int, config: TrainingConfig | None = None,
             source: str = "the data") -> dict:
    cutoff = check_window(history, cutoff, horizon_days, source)
    config = config or TrainingConfig(horizon_days=horizon_days)
    config.horizon_days = horizon_days
    known = history.before(cutoff)

    summary = rfm_summary(known, cutoff)
    population = summary.index
    labels = compute_labels(history, cutoff, horizon_days, population)
    actual = labels["spend"].to_numpy()
    churned = ~labels["ordered"].to_numpy()
    models: dict[str, dict] = {}

    start = time.perf_counter()
    clv = CLVModel(config).fit(known, cutoff)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pred = clv.predict(known, cutoff).reindex(population)
    predict_seconds = time.perf_counter() - start
    models["xgboost"] = {**value_metrics(actual, pred["predicted_value"]),
                         **churn_metrics(churned, pred["churn_risk"]),
                         "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
                         "interval_coverage_p10_p90": interval_coverage(actual, pred["value_p10"], pred["value_p90"]),
                         "interval_mean_width": float((pred["value_p90"] - pred["value_p10"]).mean()),
                         "blend_weight": clv.blend_weight, "params": clv.params}

    start = time.perf_counter()
    bg = BGNBDGammaGamma(random_seed=config.random_seed).fit(summary)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    bg_pred = bg.predict(summary, horizon_days)
    models["bgnbd_gg"] = {**value_metrics(actual, bg_pred["predicted_value"]),
                          **churn_metrics(churned, bg_pred["churn_risk"]),
                          "fit_seconds": fit_seconds, "predict_seconds": time.perf_counter() - start,
                          "fitted_with": bg.fitted_with}

    start = time.perf_counter()
    last = LastPeriodSpend().predict(known, cutoff, horizon_days, population)
    models["last_period"] = {**value_metrics(actual, last), **churn_metrics(churned, None),
                             "fit_seconds": 0.0, "predict_seconds": time.perf_counter() - start}
    return {"population": int(len(population)), "cutoff": str(cutoff.date()), "horizon_days": horizon_days,
            "source": source, "warnings": clv.warnings, "training": clv.summary(), "models": models}


def format_table(report: dict) -> str:
    """The evaluation as a plain-text table (tabulate) with the holdout described above it."""
    from tabulate import tabulate

    headers = ["model", "Spearman", "norm.Gini", "top-10%", "MAE", "total err", "churn AUC", "Brier", "fit s"]
    rows = []
    for key, metrics in report["models"].items():
        total_err = (metrics["total_predicted"] / metrics["total_actual"] - 1) * 100 if metrics["total_actual"] else np.nan
        auc = "-" if metrics["churn_auc"] is None else f"{metrics['churn_auc']:.3f}"
        brier = "-" if metrics["brier"] is None else f"{metrics['brier']:.3f}"
        rows.append([MODEL_NAMES[key], f"{metrics['spearman']:.3f}", f"{metrics['normalized_gini']:.3f}",
                     f"{metrics['top_decile_capture']:.3f}", f"{metrics['mae']:.1f}", f"{total_err:+.1f}%", auc, brier,
                     f"{metrics['fit_seconds']:.1f}"])
    lines = [f"Holdout: {report['population']:,} customers with an order on or before {report['cutoff']}, "
             f"next {report['horizon_days']} days ({report['source']})",
             tabulate(rows, headers, tablefmt="simple", disable_numparse=True, colalign=("left",) + ("right",) * 8)]
    xgb_metrics = report["models"]["xgboost"]
    width = xgb_metrics.get("interval_mean_width")
    lines.append(f"P10-P90 interval coverage: {xgb_metrics['interval_coverage_p10_p90']:.1%}"
                 + (f" (mean width {width:,.1f})" if width is not None else "") + "; "
                 f"blend weight on the model vs last-period spend (chosen on validation): {xgb_metrics['blend_weight']:.1f}")
    if xgb_metrics.get("baseline_brier") is not None and xgb_metrics.get("brier_improvement") is not None:
        lines.append(f"Churn risk Brier {xgb_metrics['brier']:.3f} against {xgb_metrics['baseline_brier']:.3f} for "
                     f"always guessing the period's churn rate ({xgb_metrics['churn_rate']:.1%}): "
                     f"{xgb_metrics['brier_improvement']:.0%} smaller")
    lines.extend(f"warning: {w}" for w in report.get("warnings", []))
    return "\n".join(lines)
