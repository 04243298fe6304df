"""model_report: how good the model is and what it was trained on, from the model bundle's metadata."""

from __future__ import annotations

from tools.deps import ToolDeps, ToolFailure
from tools.functions.rows import jsonable
from tools.models import ModelReportArgs, ModelReportResult


def model_report(args: ModelReportArgs, deps: ToolDeps) -> ModelReportResult:
    """How good the model is and what it was trained on: the evaluation table (ValueDesk's model
    against the BG/NBD + Gamma-Gamma and last-period baselines on a time holdout: Spearman, normalized
    Gini, top-decile capture, MAE, total predicted vs actual, churn AUC, Brier), the training window,
    the data's date range, when it was trained, validation metrics and any warnings (e.g. short history).
    """
    meta = dict(deps.bundle.metadata)
    try:
        scored = deps.customers.n
    except ToolFailure:
        scored = None
    horizon = deps.bundle.horizon_days
    return ModelReportResult(
        version=jsonable(meta.get("version")), trained_at=str(meta["trained_at"]) if meta.get("trained_at") else None,
        training_window=jsonable(meta.get("training_window")), data_range=jsonable(meta.get("data_range")),
        horizon_days=horizon, metrics=jsonable(meta.get("metrics")),
        evaluation=jsonable(meta.get("evaluation")), warnings=[str(w) for w in meta.get("warnings") or []],
        features=len(meta.get("features") or []), customers_scored=scored)
