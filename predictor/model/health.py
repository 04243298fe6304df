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
from predictor.model.estimation import (MIN_REFERENCE, ConfidenceBasedEstimator, DirectLossEstimator,
                                        nanny_inputs)
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
    max_estimated_mae_rise: float = 0.25  # estimated MAE above the last closed window's by this share: retrain

    @classmethod
    def from_settings(cls, settings) -> "HealthThresholds":
        return cls(min_customers=settings.health_min_customers, min_history_days=settings.health_min_history_days,
                   min_repeat_share=settings.health_min_repeat_share,
                   max_model_age_days=settings.health_max_model_age_days,
                   max_drifted_share=settings.health_max_drifted_share,
                   max_estimated_mae_rise=settings.health_max_estimated_mae_rise)


def quality_band(churn_auc: float | None) -> dict:
    """The band of a churn AUC, with the scale it was read on."""
    if churn_auc is None:
        return {"band": None, "quality": None, "scale": band_scale()}
    quality = 2 * churn_auc - 1
    band = next(name for floor, name in QUALITY_BANDS if quality >= floor)
    return {"band": band, "quality": round(quality, 4), "scale": band_scale()}


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

@dataclass(frozen=True)
class ClosedWindow:
    """The method trained up to `cutoff` (one horizon before the as-of date) and what followed it."""

    cutoff: pd.Timestamp
    end: pd.Timestamp
    model: CLVModel
    features: pd.DataFrame
    pred: pd.DataFrame
    actual: np.ndarray
    churned: np.ndarray


def closed_window(history: CustomerHistory, as_of: pd.Timestamp, config: TrainingConfig) -> ClosedWindow | str:
    """The last closed window at `as_of`, or why there is none."""
    horizon = config.horizon_days
    cutoff = day_start(as_of) - pd.Timedelta(days=horizon)
    if (cutoff - history.start) / pd.Timedelta(days=1) < config.min_training_days:
        return (f"No closed {horizon}-day window with enough history before it: the window would start on "
                f"{cutoff.date()}, and training needs {config.min_training_days} days of history before that.")
    known = history.before(cutoff)
    model = CLVModel(config).fit(known, cutoff)
    features = model.features_at(known, cutoff)
    pred = model.predict_features(features)
    labels = compute_labels(history.before(as_of), cutoff, horizon, pred.index)
    return ClosedWindow(cutoff=cutoff, end=day_start(as_of), model=model, features=features, pred=pred,
                        actual=labels["spend"].to_numpy(), churned=~labels["ordered"].to_numpy())


def backtest(history: CustomerHistory, as_of: pd.Timestamp, config: TrainingConfig) -> dict:
    """The method judged on the last closed window: trained up to `as_of` - horizon, scored on what followed."""
    window = closed_window(history, as_of, config)
    return window_report(window) if isinstance(window, ClosedWindow) else {"available": False, "reason": window}


def window_report(window: ClosedWindow) -> dict:
    """Lift, calibration, AUC, Brier, total error and coverage of one closed window."""
    actual, churned, pred = window.actual, window.churned, window.pred
    value = value_metrics(actual, pred["predicted_value"].to_numpy())
    churn = churn_metrics(churned, pred["churn_risk"].to_numpy())
    total_error = value["total_predicted"] / value["total_actual"] - 1 if value["total_actual"] else None
    return {"available": True, "window": {"start": str((window.cutoff + pd.Timedelta(days=1)).date()),
                                          "end": str(window.end.date()),
                                          "days": int((window.end - window.cutoff) / pd.Timedelta(days=1))},
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

@dataclass(frozen=True)
class ScoringPopulation:
    """The serving model's features and predictions for the customers it scores at `as_of`."""

    as_of: pd.Timestamp
    features: pd.DataFrame
    pred: pd.DataFrame


def scoring_population(model: CLVModel, history: CustomerHistory, as_of: pd.Timestamp) -> ScoringPopulation:
    model = copy.copy(model)  # features_at keeps its population fit on the model: not on the one serving
    features = model.features_at(history.before(as_of), as_of)
    return ScoringPopulation(as_of=as_of, features=features, pred=model.predict_features(features))


def drift(model: CLVModel, history: CustomerHistory, current: ScoringPopulation, reference_cutoff: pd.Timestamp) -> dict:
    """The scoring population at `as_of` against the one at `reference_cutoff` (the end of the model's data:
    the population it was trained up to and first scored), per feature and for the predicted value."""
    reference = scoring_population(model, history, reference_cutoff)
    columns = list(model.feature_names)
    per_feature = population_drift(reference.features, current.features, columns)
    prediction = population_drift(reference.pred[["predicted_value"]], current.pred[["predicted_value"]],
                                  ["predicted_value"])
    drifted = [d.column for d in per_feature if d.drifted]
    return {"reference": {"cutoff": str(reference_cutoff.date()), "customers": int(len(reference.features))},
            "current": {"as_of": str(day_start(current.as_of).date()), "customers": int(len(current.features))},
            "features": [d.as_dict() for d in per_feature], "drifted_features": len(drifted),
            "tested_features": len(per_feature), "drifted": drifted,
            "prediction": prediction[0].as_dict() if prediction else None}


def estimated_performance(window: ClosedWindow | str, model: CLVModel, current: ScoringPopulation,
                          seed: int = 42) -> dict:
    """Label-free estimates for the window the serving model is predicting now (outcomes not in yet),
    learnt on the last closed window (predictor/model/estimation.py)."""
    if not isinstance(window, ClosedWindow):
        return {"available": False, "reason": window}
    if len(window.pred) < MIN_REFERENCE:
        return {"available": False, "reason": f"{len(window.pred)} customers in the last closed window; "
                                              f"the estimators need {MIN_REFERENCE}"}
    names = list(model.feature_names)
    reference_inputs = nanny_inputs(window.features, window.pred, names)
    loss = DirectLossEstimator(seed=seed).fit(
        reference_inputs, np.abs(window.actual - window.pred["predicted_value"].to_numpy()))
    churn = ConfidenceBasedEstimator().fit(window.pred["churn_risk"].to_numpy(), window.churned)
    spend = loss.estimate(nanny_inputs(current.features, current.pred, names))
    realised_mae = float(np.abs(window.actual - window.pred["predicted_value"].to_numpy()).mean())
    churn_estimate = churn.estimate(current.pred["churn_risk"].to_numpy())
    # Errors scale with spend: the trigger compares the error per unit of predicted spend (a season of bigger
    # baskets raises the MAE of a model that is as right as before).
    reference_mean = float(window.pred["predicted_value"].mean()) or 1.0
    current_mean = float(current.pred["predicted_value"].mean()) or 1.0
    start = day_start(current.as_of) + pd.Timedelta(days=1)
    end = day_start(current.as_of) + pd.Timedelta(days=model.config.horizon_days)
    return {"available": True, "window": {"start": str(start.date()), "end": str(end.date())},
            "customers": int(len(current.pred)), "mae": spend["mae"], "mae_method": spend["method"],
            "churn_auc": churn_estimate["churn_auc"], "churn_rate": churn_estimate["churn_rate"],
            "churn_method": churn_estimate["method"], "mean_predicted": round(current_mean, 2),
            "relative_mae": round(spend["mae"] / current_mean, 4) if spend["mae"] is not None else None, **{"band_" + k: v for k, v in
                                                        quality_band(churn_estimate["churn_auc"]).items()
                                                        if k != "scale"},
            "learnt_on": {"start": str((window.cutoff + pd.Timedelta(days=1)).date()),
                          "end": str(window.end.date()), "realised_mae": round(realised_mae, 2),
                          "mean_predicted": round(reference_mean, 2),
                          "relative_mae": round(realised_mae / reference_mean, 4)}}


def recommendation(age_days: int, drift_report: dict, backtest_report: dict, estimated: dict,
                   sufficiency_report: dict, limits: HealthThresholds) -> dict:
    """Whether to retrain now, and every reason (by age, by drift, by the backtest's band, by the
    estimated performance of the window in progress)."""
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
    reasons += _estimate_reasons(estimated, limits)
    if sufficiency_report["status"] == "refuse":
        return {"retrain_due": False, "usable": False, "reasons": sufficiency_report["problems"],
                "summary": "The data is below the minimums: do not act on these predictions until more arrives."}
    if reasons and age_days <= 0:
        # The model already learnt from every order up to the as-of date: a retrain would give the same model.
        return {"retrain_due": False, "usable": True, "reasons": reasons, "summary": (
            "No retrain can help yet (the model already uses every order to the as-of date), but watch: "
            + "; ".join(r["reason"] for r in reasons) + ".")}
    summary = ("Retrain: " + "; ".join(r["reason"] for r in reasons)) if reasons else "No retrain needed."
    return {"retrain_due": bool(reasons), "usable": True, "reasons": reasons, "summary": summary}


def _estimate_reasons(estimated: dict, limits: HealthThresholds) -> list[dict]:
    if not estimated.get("available"):
        return []
    reasons = []
    if estimated.get("band_band") == "Poor":
        reasons.append({"by": "estimated performance", "reason": "the estimated churn AUC of the window in progress "
                                                                 f"({estimated['churn_auc']:.3f}) is in the Poor band"})
    now, before = estimated.get("relative_mae"), estimated["learnt_on"].get("relative_mae")
    if now is not None and before and now > before * (1 + limits.max_estimated_mae_rise):
        reasons.append({"by": "estimated performance", "reason": (
            f"the estimated spend error of the window in progress ({estimated['mae']:,.2f} per customer, "
            f"{now:.0%} of the mean prediction) is more than {limits.max_estimated_mae_rise:.0%} above the last "
            f"closed window's ({estimated['learnt_on']['realised_mae']:,.2f}, {before:.0%})")})
    return reasons


def health_report(model: CLVModel, metadata: dict, history: CustomerHistory, as_of, config: TrainingConfig,
                  limits: HealthThresholds, window: ClosedWindow | None = None) -> dict:
    """Everything `valuedesk health` shows, as of `as_of` (default use: the data's last day). `window`: the
    last closed window when the caller has already fitted it (`valuedesk retrain`)."""
    as_of = day_start(as_of)
    trained_through = pd.Timestamp((metadata.get("data_range") or {}).get("end") or as_of)
    age_days = int((as_of - trained_through) / pd.Timedelta(days=1))
    checks = sufficiency(history, as_of, config.horizon_days, limits)
    if checks["status"] == "refuse":
        window = "below the data minimums"
    elif window is None or window.end != as_of:
        window = closed_window(history, as_of, config)
    closed = window_report(window) if isinstance(window, ClosedWindow) else {"available": False, "reason": window}
    current = scoring_population(model, history, as_of)
    shift = drift(model, history, current, min(trained_through, as_of))
    estimated = estimated_performance(window, model, current, seed=config.random_seed)
    return {"as_of": str(as_of.date()),
            "model": {"version": metadata.get("version"), "trained_through": str(trained_through.date()),
                      "age_days": age_days, "horizon_days": config.horizon_days},
            "sufficiency": checks, "backtest": closed, "drift": shift, "estimated": estimated,
            "recommendation": recommendation(age_days, shift, closed, estimated, checks, limits)}
