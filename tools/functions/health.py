"""model_health: whether the predictions in use still hold (predictor/model/health.py), read from the
report attached to the serving version, or computed and attached on first call."""

from __future__ import annotations

from predictor.errors import ValueDeskError
from predictor.model_health import compute_health
from tools.deps import ToolDeps, ToolFailure
from tools.functions.rows import jsonable
from tools.health_models import ModelHealthArgs, ModelHealthResult


def model_health(args: ModelHealthArgs, deps: ToolDeps) -> ModelHealthResult:
    """Is the model in use still good? The last closed window's quality band (thresholds stated), lift by
    decile, AUC, Brier, calibration, total error and interval coverage; label-free estimates (spend MAE by DLE,
    churn AUC by CBPE) for the window whose outcomes are not in yet; drift of today's customers from the
    training population; data sufficiency against the minimums; and whether a retrain is due, with reasons.
    """
    version = deps.version
    with deps.health_lock:  # one computation per process and version, however many callers wait for it
        report = deps.health_report or version.health_record()
        if report is None or report.get("model", {}).get("build_version") != version.name:
            try:
                report = compute_health(deps.settings, version)
            except ValueDeskError as exc:
                raise ToolFailure("not_built", str(exc)) from exc
        deps.health_report = report
    backtest = report["backtest"]
    drift = dict(report["drift"])
    drift["features"] = [f for f in drift.get("features") or [] if f.get("drifted")]  # the drifted ones, with tests
    return ModelHealthResult(
        as_of=report["as_of"], computed_at=report.get("computed_at"), model=jsonable(report["model"]),
        band=backtest.get("band"), quality=backtest.get("quality"),
        band_scale=backtest.get("scale") or "quality = 2 x churn AUC - 1 on the last closed window",
        backtest=jsonable(backtest), estimated=jsonable(report.get("estimated") or {"available": False}),
        drift=jsonable(drift), sufficiency=jsonable(report["sufficiency"]),
        recommendation=jsonable(report["recommendation"]), last_retrain=jsonable(report.get("last_retrain")))

