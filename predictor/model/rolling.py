"""Rolling-origin evaluation: the honest holdout protocol of predictor.model.evaluation run at several
cutoffs, each split reported in the single-cutoff shape, and their mean.

One split can flatter a model (or hide where it breaks, e.g. a horizon longer than the history
before the cutoff), so every claim about accuracy is read off this table: `{"splits": [...], "mean":
{model: {metric: mean}}}` plus each model's worst total-spend error across the splits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from predictor.errors import EvaluationWindowError
from predictor.model.estimators import TrainingConfig
from predictor.model.evaluation import MODEL_NAMES, check_window, evaluate, format_table
from predictor.model.features import CustomerHistory, day_start

def rolling_cutoffs(history: CustomerHistory, splits: int, horizon_days: int,
                    min_history_days: int | None = None) -> list[pd.Timestamp]:
    """`splits` cutoffs spread evenly from `min_history_days` after the first order (default: the
    shortest history the model trains on) to the last cutoff whose horizon still fits in the data; a
    window too short for that many distinct days is an error."""
    if min_history_days is None:
        min_history_days = TrainingConfig(horizon_days=horizon_days).min_training_days
    if splits < 2:
        raise EvaluationWindowError(f"--rolling needs at least 2 splits, got {splits}; use --cutoff for one.")
    first = day_start(history.start) + pd.Timedelta(days=min_history_days)
    last = day_start(history.end) - pd.Timedelta(days=horizon_days)
    span = (last - first) / pd.Timedelta(days=1)
    if span < splits - 1:
        raise EvaluationWindowError(
            f"The data runs from {history.start.date()} to {history.end.date()}: with {min_history_days} days of "
            f"history before the first cutoff and a {horizon_days}-day horizon after the last, there is no room for "
            f"{splits} cutoffs; expected fewer splits or a shorter --horizon-days.")
    return [first + pd.Timedelta(days=int(round(d))) for d in np.linspace(0, span, splits)]


def evaluate_rolling(history: CustomerHistory, cutoffs: Sequence, horizon_days: int,
                     config: TrainingConfig | None = None, source: str = "the data") -> dict:
    """The holdout evaluation at each cutoff (every window checked before any model is fitted) and the
    mean of each metric over the splits."""
    checked = sorted({check_window(history, c, horizon_days, source) for c in cutoffs})
    if len(checked) < 2:
        raise EvaluationWindowError(f"Rolling-origin evaluation needs at least 2 different cutoffs, got "
                                    f"{len(checked)}; use --cutoff for one.")
    splits = [evaluate(history, cutoff, horizon_days, config, source=source) for cutoff in checked]
    return {"source": source, "horizon_days": horizon_days, "cutoffs": [s["cutoff"] for s in splits],
            "splits": splits, "mean": mean_metrics(splits)}


def total_error(metrics: dict) -> float | None:
    """Total predicted spend over the total actual, minus one (+0.2 = predicted a fifth too much)."""
    actual = metrics.get("total_actual")
    return metrics["total_predicted"] / actual - 1 if actual else None


def mean_metrics(splits: Sequence[dict]) -> dict:
    """Per model: the mean of every numeric metric reported on all splits, its mean signed total error
    and its worst absolute total error (the level must hold on every split, not on average)."""
    mean: dict[str, dict] = {}
    for model in splits[0]["models"]:
        per_split = [s["models"][model] for s in splits]
        numeric = [k for k, v in per_split[0].items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and all(isinstance(m.get(k), (int, float)) for m in per_split)]
        row = {k: float(np.mean([m[k] for m in per_split])) for k in numeric}
        errors = [e for e in (total_error(m) for m in per_split) if e is not None]
        if errors:
            row["total_error"] = float(np.mean(errors))
            row["max_abs_total_error"] = float(max(abs(e) for e in errors))
        mean[model] = row
    return mean


def format_rolling_table(report: dict) -> str:
    """Each split's table, then the mean over the splits."""
    from tabulate import tabulate

    parts = [format_table(split) for split in report["splits"]]
    headers = ["model", "Spearman", "norm.Gini", "top-10%", "MAE", "total err", "worst |err|", "churn AUC",
               "P10-P90 cov."]
    rows = []
    for key, m in report["mean"].items():
        cell = lambda k, f: f.format(m[k]) if k in m else "-"  # noqa: E731
        rows.append([MODEL_NAMES[key], cell("spearman", "{:.3f}"), cell("normalized_gini", "{:.3f}"),
                     cell("top_decile_capture", "{:.3f}"), cell("mae", "{:.1f}"), cell("total_error", "{:+.1%}"),
                     cell("max_abs_total_error", "{:.1%}"), cell("churn_auc", "{:.3f}"),
                     cell("interval_coverage_p10_p90", "{:.1%}")])
    parts.append(f"Mean over {len(report['splits'])} cutoffs ({', '.join(report['cutoffs'])}), next "
                 f"{report['horizon_days']} days ({report['source']})\n"
                 + tabulate(rows, headers, tablefmt="simple", disable_numparse=True,
                            colalign=("left",) + ("right",) * 8))
    return "\n\n".join(parts)
