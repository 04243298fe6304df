"""Model health: whether the predictions in use still hold, for `valuedesk health`.

Four parts, each with its thresholds stated in the report:
- Data sufficiency: customers with orders, history length against the horizon, repeat buyers, against
  stated minimums (the product refuses below the hard ones, as Klaviyo does below 500 customers with
  orders and 180 days of history; it warns below the soft ones).
- Backtest of the last closed window: the model in use predicts a window whose outcomes are not in yet,
  so the same method (same configuration) is trained up to one horizon before the as-of date and judged
  on the window that has closed since: lift by decile, churn AUC and Brier, a calibration curve, total
  error, interval coverage, and a quality band a marketer reads at a glance.
- Drift between the population at the end of the model's data (what it was trained up to and first
  scored) and the population it scores at the as-of date, per feature and for the prediction
  (predictor/model/drift.py): none on the day it is trained, growing as customers change.
- The retrain recommendation: due by age, by drift or by the backtest's band, each with its reason.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve

from predictor.model.drift import population_drift
from predictor.model.estimators import CLVModel, TrainingConfig
from predictor.model.features import CustomerHistory, compute_labels, day_start
from predictor.model.metrics import churn_metrics, decile_lift, interval_coverage, value_metrics

# Quality bands on the churn ranking's lift over random, 2 x AUC - 1 (0% random, 100% perfect).
QUALITY_BANDS = ((0.6, "Excellent"), (0.4, "Good"), (0.2, "Fair"), (-1.0, "Poor"))


@dataclass(frozen=True)
class HealthThresholds:
    """The minimums and triggers a health report applies (settings `health_*`)."""

    min_customers: int = 500  # customers with an order: below it, no prediction is offered
    min_history_days: int = 180  # days of history: below it, no prediction is offered
    min_repeat_share: float = 0.05  # share of customers with two or more orders: below it, a warning
    max_model_age_days: int = 30  # days since the model's data ended: retrain due after it
    max_drifted_share: float = 0.3  # share of features drifted: retrain due from it

    @classmethod
    def from_settings(cls, settings) -> "HealthThresholds":
        return cls(min_customers=settings.health_min_customers, min_history_days=settings.health_min_history_days,
                   min_repeat_share=settings.health_min_repeat_share,
                   max_model_age_days=settings.health_max_model_age_days,
                   max_drifted_share=settings.health_max_drifted_share)


def quality_band(churn_auc: float | None) -> dict:
    """The band of a churn AUC, with the scale it was read on."""
    if churn_auc is None:
        return {"band": None, "quality": None, "scale": band_scale()}
    quality = 2 * churn_auc - 1
    band = next(name for floor, name in QUALITY_BANDS if quality >= floor)
    return {"band": band, "quality": round(quality, 3), "scale": band_scale()}


def band_scale() -> str:
    return ("quality = 2 x churn AUC - 1 on the last closed window (0% is random, 100% perfect): "
            "Excellent from 60%, Good from 40%, Fair from 20%, Poor below")


# --------------------------------------------------------------------------- sufficiency

def sufficiency(history: CustomerHistory, as_of: pd.Timestamp, horizon_days: int, limits: HealthThresholds) -> dict:
    """Customers with orders, history length and repeat buyers at `as_of`, against the minimums."""
    known = history.before(as_of)
    orders = known.orders.loc[~known.orders["is_cancellation"] & (known.orders["amount"] > 0)]
    per_customer = orders.groupby("customer_id", observed=True)["order_id"].nunique()
    days = int((day_start(as_of) - known.start) / pd.Timedelta(days=1)) + 1
    facts = {"customers_with_orders": int(len(per_customer)), "history_days": days, "horizon_days": horizon_days,
             "repeat_buyer_share": round(float((per_customer >= 2).mean()), 4) if len(per_customer) else 0.0}
    checks = [
        ("refuse", facts["customers_with_orders"] >= limits.min_customers,
         f"{facts['customers_with_orders']:,} customers with orders; at least {limits.min_customers:,} are needed "
         "for population estimates (tiers, BG/NBD, the churn calibration) to mean anything"),
        ("refuse", days >= limits.min_history_days,
         f"{days} days of history; at least {limits.min_history_days} are needed to learn purchase rhythms"),
        ("warn", days >= horizon_days,
         f"{days} days of history for a {horizon_days}-day forecast: no past window is as long as the forecast"),
        ("warn", days >= 3 * horizon_days,
         f"history under 3x the forecast ({3 * horizon_days} days): the level and seasonality are weakly supported"),
        ("warn", facts["repeat_buyer_share"] >= limits.min_repeat_share,
         f"{facts['repeat_buyer_share']:.0%} of customers ordered twice or more; below {limits.min_repeat_share:.0%} "
         "purchase rhythms (and churn) cannot be learnt"),
    ]
    failed = [(level, reason) for level, ok, reason in checks if not ok]
    status = "refuse" if any(level == "refuse" for level, _ in failed) else "warn" if failed else "ok"
    return {**facts, "status": status, "problems": [{"level": level, "reason": reason} for level, reason in failed],
            "minimums": {"customers_with_orders": limits.min_customers, "history_days": limits.min_history_days,
                         "repeat_buyer_share": limits.min_repeat_share}}


# --------------------------------------------------------------------------- backtest

def backtest(history: CustomerHistory, as_of: pd.Timestamp, config: TrainingConfig) -> dict:
    """The method judged on the last closed window: trained up to `as_of` - horizon, scored on what followed."""
    horizon = config.horizon_days
    cutoff = day_start(as_of) - pd.Timedelta(days=horizon)
    if (cutoff - history.start) / pd.Timedelta(days=1) < config.min_training_days:
        return {"available": False, "reason": (
            f"No closed {horizon}-day window with enough history before it: the window would start on "
            f"{cutoff.date()}, and training needs {config.min_training_days} days of history before that.")}
    known = history.before(cutoff)
    model = CLVModel(config).fit(known, cutoff)
    pred = model.predict(known, cutoff)
    labels = compute_labels(history.before(as_of), cutoff, horizon, pred.index)
    actual, churned = labels["spend"].to_numpy(), ~labels["ordered"].to_numpy()
    value = value_metrics(actual, pred["predicted_value"].to_numpy())
    churn = churn_metrics(churned, pred["churn_risk"].to_numpy())
    total_error = value["total_predicted"] / value["total_actual"] - 1 if value["total_actual"] else None
    return {"available": True, "window": {"start": str((cutoff + pd.Timedelta(days=1)).date()),
                                          "end": str(day_start(as_of).date()), "days": horizon},
            "customers": int(len(pred)), **quality_band(churn["churn_auc"]),
            "churn_auc": churn["churn_auc"], "brier": churn["brier"], "baseline_brier": churn["baseline_brier"],
            "spearman": value["spearman"], "total_predicted": value["total_predicted"],
            "total_actual": value["total_actual"], "total_error": total_error, "mae": value["mae"],
            "interval_coverage_p10_p90": interval_coverage(actual, pred["value_p10"], pred["value_p90"]),
            "lift_by_decile": _lift_rows(actual, pred, churned),
            "calibration": _calibration(churned, pred["churn_risk"].to_numpy())}


def _lift_rows(actual: np.ndarray, pred: pd.DataFrame, churned: np.ndarray) -> list[dict]:
    """Predicted against realised spend per decile of predicted value, and churn per decile of risk."""
    rows = decile_lift(actual, pred["predicted_value"].to_numpy())
    by_value = np.array_split(np.argsort(-pred["predicted_value"].to_numpy(), kind="stable"), 10)
    by_risk = np.array_split(np.argsort(-pred["churn_risk"].to_numpy(), kind="stable"), 10)
    for row, value_members, risk_members in zip(rows, by_value, by_risk):
        row["mean_predicted"] = round(float(pred["predicted_value"].to_numpy()[value_members].mean()), 2)
        row["churn_risk_predicted"] = round(float(pred["churn_risk"].to_numpy()[risk_members].mean()), 4)
        row["churn_rate_realised"] = round(float(churned[risk_members].mean()), 4)
    return rows


def _calibration(churned: np.ndarray, risk: np.ndarray, bins: int = 10) -> list[dict]:
    """Churn risk against the realised churn rate, in bins of equal customer counts."""
    if churned.all() or not churned.any():
        return []
    observed, predicted = calibration_curve(churned, risk, n_bins=bins, strategy="quantile")
    return [{"predicted": round(float(p), 4), "observed": round(float(o), 4)} for p, o in zip(predicted, observed)]


# --------------------------------------------------------------------------- drift and the report

def drift(model: CLVModel, history: CustomerHistory, as_of: pd.Timestamp, reference_cutoff: pd.Timestamp) -> dict:
    """The scoring population at `as_of` against the one at `reference_cutoff` (the end of the model's data:
    the population it was trained up to and first scored), per feature and for the predicted value."""
    model = copy.copy(model)  # features_at keeps its population fit on the model: not on the one serving
    reference = model.features_at(history.before(reference_cutoff), reference_cutoff)
    current = model.features_at(history.before(as_of), as_of)
    columns = list(model.feature_names)
    per_feature = population_drift(reference, current, columns)
    prediction = population_drift(model.predict_features(reference)[["predicted_value"]],
                                  model.predict_features(current)[["predicted_value"]], ["predicted_value"])
    drifted = [d.column for d in per_feature if d.drifted]
    return {"reference": {"cutoff": str(reference_cutoff.date()), "customers": int(len(reference))},
            "current": {"as_of": str(day_start(as_of).date()), "customers": int(len(current))},
            "features": [d.as_dict() for d in per_feature], "drifted_features": len(drifted),
            "tested_features": len(per_feature), "drifted": drifted,
            "prediction": prediction[0].as_dict() if prediction else None}


def recommendation(age_days: int, drift_report: dict, backtest_report: dict, sufficiency_report: dict,
                   limits: HealthThresholds) -> dict:
    """Whether to retrain now, and every reason (by age, by drift, by the backtest's band)."""
    reasons = []
    if age_days > limits.max_model_age_days:
        reasons.append({"by": "age", "reason": f"the model's data ended {age_days} days ago (retrain after "
                                               f"{limits.max_model_age_days})"})
    tested = drift_report["tested_features"]
    if tested and drift_report["drifted_features"] / tested >= limits.max_drifted_share:
        reasons.append({"by": "drift", "reason": f"{drift_report['drifted_features']} of {tested} features drifted "
                                                 f"(retrain from {limits.max_drifted_share:.0%})"})
    prediction = drift_report.get("prediction")
    if prediction and prediction["drifted"]:
        reasons.append({"by": "drift", "reason": "the predicted values drifted ("
                                                 f"{prediction['test']} {prediction['statistic']:.3f})"})
    if backtest_report.get("band") == "Poor":
        reasons.append({"by": "performance", "reason": "the last closed window's quality band is Poor"})
    if sufficiency_report["status"] == "refuse":
        return {"retrain_due": False, "usable": False, "reasons": sufficiency_report["problems"],
                "summary": "The data is below the minimums: do not act on these predictions until more arrives."}
    summary = ("Retrain: " + "; ".join(r["reason"] for r in reasons)) if reasons else "No retrain needed."
    return {"retrain_due": bool(reasons), "usable": True, "reasons": reasons, "summary": summary}


def health_report(model: CLVModel, metadata: dict, history: CustomerHistory, as_of, config: TrainingConfig,
                  limits: HealthThresholds) -> dict:
    """Everything `valuedesk health` shows, as of `as_of` (default use: the data's last day)."""
    as_of = day_start(as_of)
    trained_through = pd.Timestamp((metadata.get("data_range") or {}).get("end") or as_of)
    age_days = int((as_of - trained_through) / pd.Timedelta(days=1))
    checks = sufficiency(history, as_of, config.horizon_days, limits)
    closed = backtest(history, as_of, config) if checks["status"] != "refuse" else {
        "available": False, "reason": "below the data minimums"}
    shift = drift(model, history, as_of, min(trained_through, as_of))
    return {"as_of": str(as_of.date()),
            "model": {"version": metadata.get("version"), "trained_through": str(trained_through.date()),
                      "age_days": age_days, "horizon_days": config.horizon_days},
            "sufficiency": checks, "backtest": closed, "drift": shift,
            "recommendation": recommendation(age_days, shift, closed, checks, limits)}
