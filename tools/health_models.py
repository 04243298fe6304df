"""Input and output models of the tools about the model itself: `model_report` and `model_health`
(tools/models.py holds the others)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tools.models import Args, Out


class ModelReportArgs(Args):
    pass


class ModelReportResult(Out):
    version: str | None
    trained_at: str | None
    training_window: dict[str, Any] | None
    data_range: dict[str, Any] | None
    horizon_days: int | None
    metrics: dict[str, Any] | None
    evaluation: dict[str, Any] | None = Field(description="The `valuedesk evaluate` table (models x metrics), if run.")
    warnings: list[str]
    features: int
    customers_scored: int | None
    validation: dict[str, Any] | None = Field(
        None, description="The held-out window the build's metrics were measured on: cutoff, label_days, rows, "
                          "lift_by_decile (realised spend per decile of predicted value).")
    quality: list[str] = Field(default_factory=list, description=(
        "How good the model is in a marketer's words, each sentence with its figure (how much of the held-out "
        "window's revenue the customers it ranks highest brought in; churn risk against a no-skill baseline)."))


class ModelHealthArgs(Args):
    """No arguments: the report is of the model in use, as of its data's last day (a build version's data
    never changes, so neither does its report: it is computed once per version and then read back)."""


class ModelHealthResult(Out):
    as_of: str = Field(description="The day the model was judged on (the data's last day).")
    computed_at: str | None = Field(None, description="When the report was computed.")
    model: dict[str, Any] = Field(description="The model in use: version, build_version, trained_through, "
                                              "age_days, horizon_days.")
    band: str | None = Field(None, description="Quality band of the last closed window: Excellent, Good, Fair or Poor.")
    quality: float | None = Field(None, description="2 x churn AUC - 1 on the last closed window (0 random, 1 perfect).")
    band_scale: str = Field(description="How the band is read, with its thresholds.")
    backtest: dict[str, Any] = Field(description=(
        "The last closed window: predicted vs realised spend and churn by decile (lift_by_decile), churn_auc, "
        "brier, calibration, total_error, mae, interval_coverage_p10_p90; or available false with the reason."))
    estimated: dict[str, Any] = Field(description=(
        "Label-free estimates for the window in progress (outcomes not in yet): mae (DLE) and churn_auc (CBPE) "
        "with the methods named; or available false with the reason."))
    drift: dict[str, Any] = Field(description=(
        "Drift of today's scoring population from the one at the end of the model's data: drifted_features of "
        "tested_features, the drifted names, each test and threshold, and the prediction's own drift."))
    sufficiency: dict[str, Any] = Field(description=(
        "Customers with orders, history days, repeat-buyer share against the stated minimums; status ok, warn "
        "or refuse, with the problems."))
    recommendation: dict[str, Any] = Field(description=(
        "retrain_due, usable, summary and every reason (by age, drift, performance or estimated performance)."))
    last_retrain: dict[str, Any] | None = Field(None, description=(
        "The last `valuedesk retrain` comparison: both models' churn AUC and MAE, promoted or not, and why."))
