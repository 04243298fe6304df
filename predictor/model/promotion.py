"""Champion against challenger on the last closed window, for `valuedesk retrain`.

The challenger is the training method on the latest data that leaves a window to judge it on: trained up
to one horizon before the data's last day (predictor/model/health.py `closed_window`, the health report's
backtest) and scored on the window that has closed since. The champion, the model serving now, scores
the same customers on the same day. The challenger is promoted only when it is not worse on either
figure a marketer acts on: the churn AUC (who is slipping away) and the spend MAE (what they are worth);
ties promote, so retraining on unchanged data keeps working. A promoted challenger is then refitted on
all the data with the same settings, which is what `valuedesk build` does.

When the champion's own data ran past the window's start (a model retrained monthly forecasting 180 days
always has), it has seen part of the window's outcomes and would win by memory, not by skill. Then the
champion's settings are refitted on the data up to the window's start instead, so both sides know the same
past and the comparison judges the settings and code; the record says which champion was compared
(`champion_basis`). With unchanged settings that refit is the challenger itself: a tie, promoted.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from predictor.model.estimators import CLVModel
from predictor.model.features import CustomerHistory
from predictor.model.health import ClosedWindow
from predictor.model.metrics import churn_metrics, value_metrics


def window_scores(actual: np.ndarray, churned: np.ndarray, pred: pd.DataFrame) -> dict:
    value = value_metrics(actual, pred["predicted_value"].to_numpy())
    churn = churn_metrics(churned, pred["churn_risk"].to_numpy())
    total = value["total_predicted"] / value["total_actual"] - 1 if value["total_actual"] else None
    return {"churn_auc": churn["churn_auc"], "mae": round(float(value["mae"]), 4),
            "spearman": value["spearman"], "total_error": total}


def _settings(config) -> dict:
    return {k: v for k, v in config.to_record().items() if k != "n_jobs"}  # threads do not change the model


def compare(champion: CLVModel, champion_meta: dict, window: ClosedWindow, history: CustomerHistory) -> dict:
    """The comparison record: both models' figures on the window, the decision and its reason."""
    trained_through = (champion_meta.get("data_range") or {}).get("end")
    saw = trained_through is None or pd.Timestamp(trained_through) > window.cutoff
    known = history.before(window.cutoff)
    if not saw:
        basis = "the serving model as it is"
        scorer = copy.copy(champion)  # features_at keeps its population fit on the model: not on the one serving
        champion_pred = scorer.predict(known, window.cutoff)
    elif _settings(champion.config) == _settings(window.model.config):
        basis = "the serving model's settings refitted to the window's start (the same as the challenger's)"
        champion_pred = window.pred
    else:
        basis = "the serving model's settings refitted to the window's start"
        champion_pred = CLVModel(champion.config).fit(known, window.cutoff).predict(known, window.cutoff)
    champion_pred = champion_pred.reindex(window.pred.index)
    if champion_pred["predicted_value"].isna().any():
        raise ValueError("the champion and the challenger scored different customers on the closed window")
    champ = window_scores(window.actual, window.churned, champion_pred)
    chall = window_scores(window.actual, window.churned, window.pred)
    worse = []
    if chall["churn_auc"] is not None and champ["churn_auc"] is not None and chall["churn_auc"] < champ["churn_auc"]:
        worse.append(f"churn AUC {chall['churn_auc']:.4f} < {champ['churn_auc']:.4f}")
    if chall["mae"] > champ["mae"]:
        worse.append(f"spend MAE {chall['mae']:,.2f} > {champ['mae']:,.2f}")
    reason = ("the challenger is worse on the last closed window: " + "; ".join(worse) if worse
              else "the challenger is not worse on the last closed window (churn AUC and spend MAE)")
    return {"compared_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "window": {"start": str((window.cutoff + pd.Timedelta(days=1)).date()), "end": str(window.end.date())},
            "customers": int(len(window.pred)),
            "champion": {"version": champion_meta.get("version"), "trained_through": trained_through, **champ},
            "challenger": {"trained_through": str(window.cutoff.date()), **chall},
            "promoted": not worse, "reason": reason, "champion_saw_window": saw, "champion_basis": basis,
            "rule": "promote when neither the churn AUC is lower nor the spend MAE higher than the champion's"}
