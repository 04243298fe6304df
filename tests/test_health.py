"""Model health (predictor/model/health.py, predictor/model/drift.py, `valuedesk health`) on real data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from predictor.model.drift import column_drift
from predictor.model.estimators import CLVModel, TrainingConfig
from predictor.model.evaluation import evaluate
from predictor.model.health import HealthThresholds, backtest, health_report, quality_band, recommendation, sufficiency

LIMITS = HealthThresholds()


@pytest.fixture(scope="module")
def june_model(online_retail_history):
    """A model trained on Online Retail up to 2011-06-09, as if that were today."""
    return CLVModel(TrainingConfig.fast(90)).fit(online_retail_history.before("2011-06-09"), "2011-06-09")


def test_sufficiency_passes_real_data_and_refuses_a_small_short_log(online_retail_history):
    full = sufficiency(online_retail_history, pd.Timestamp("2011-12-09"), 90, LIMITS)
    assert full["status"] == "ok" and full["customers_with_orders"] > 4000 and full["history_days"] == 374
    assert 0.5 < full["repeat_buyer_share"] < 0.8
    # 200 customers seen over their first 90 days: below both hard minimums, each named.
    first = online_retail_history.orders["customer_id"].drop_duplicates().head(200)
    small = online_retail_history.subset(pd.Index(first)).before("2011-02-28")
    small.data_start = None
    thin = sufficiency(small, pd.Timestamp("2011-02-28"), 90, LIMITS)
    assert thin["status"] == "refuse"
    reasons = " ".join(p["reason"] for p in thin["problems"])
    assert "at least 500 are needed" in reasons and "at least 180 are needed" in reasons


def test_the_backtest_is_the_honest_evaluation_of_the_last_closed_window(online_retail_history):
    config = TrainingConfig.fast(90)
    report = backtest(online_retail_history, pd.Timestamp("2011-12-09"), config)
    same = evaluate(online_retail_history, "2011-09-10", 90, TrainingConfig.fast(90))["models"]["xgboost"]
    assert report["window"] == {"start": "2011-09-11", "end": "2011-12-09", "days": 90}
    assert report["churn_auc"] == pytest.approx(same["churn_auc"]) and report["mae"] == pytest.approx(same["mae"])
    assert report["total_error"] == pytest.approx(same["total_predicted"] / same["total_actual"] - 1)
    assert report["band"] == quality_band(report["churn_auc"])["band"]
    lift = report["lift_by_decile"]
    assert [row["decile"] for row in lift] == list(range(1, 11))
    assert lift[0]["mean_spend"] > lift[-1]["mean_spend"] and lift[0]["mean_predicted"] > lift[-1]["mean_predicted"]
    assert lift[0]["churn_rate_realised"] > lift[-1]["churn_rate_realised"]  # high risk churns more, really
    calibration = report["calibration"]
    assert len(calibration) >= 5 and calibration[-1]["observed"] > calibration[0]["observed"]


def test_no_closed_window_is_said_not_invented(online_retail_history):
    report = backtest(online_retail_history, pd.Timestamp("2011-03-01"), TrainingConfig.fast(90))
    assert report["available"] is False and "No closed 90-day window" in report["reason"]


def test_drift_test_follows_evidently_defaults():
    rng = np.random.default_rng(0)
    base = rng.lognormal(3, 1, 5000)
    assert not column_drift("spend", base, rng.lognormal(3, 1, 5000)).drifted
    shifted = column_drift("spend", base, rng.lognormal(3.5, 1, 5000))
    assert shifted.drifted and shifted.test == "wasserstein (normed)" and shifted.statistic >= 0.1
    small = column_drift("spend", base[:500], rng.lognormal(3.5, 1, 500))
    assert small.test == "ks" and small.drifted and small.statistic < 0.05
    assert column_drift("spend", [np.nan], [1.0]) is None


def test_drift_grows_as_the_scoring_date_moves_away_from_training(june_model, online_retail_history):
    meta = {"data_range": {"end": "2011-06-09"}, "validation": june_model.validation, "version": "june"}
    config = TrainingConfig.fast(90)
    near = health_report(june_model, meta, online_retail_history, "2011-06-09", config, LIMITS)
    far = health_report(june_model, meta, online_retail_history, "2011-12-09", config, LIMITS)
    assert near["drift"]["drifted_features"] == 0 < far["drift"]["drifted_features"]  # none on the day it is trained
    assert near["model"]["age_days"] == 0 and far["model"]["age_days"] == 183
    due = far["recommendation"]
    assert due["retrain_due"] and any(r["by"] == "age" for r in due["reasons"])
    assert not hasattr(june_model, "scoring_bg")  # the report scored a copy: the model in use is untouched


def test_recommendation_reasons_and_refusal():
    calm = {"tested_features": 10, "drifted_features": 1, "prediction": None}
    ok = {"status": "ok", "problems": []}
    steady = {"available": True, "band_band": "Good", "churn_auc": 0.75, "mae": 110.0, "relative_mae": 0.55,
              "learnt_on": {"realised_mae": 100.0, "relative_mae": 0.5}}
    assert recommendation(3, calm, {"band": "Good"}, steady, ok, LIMITS)["retrain_due"] is False
    poor = recommendation(3, {**calm, "drifted_features": 4}, {"band": "Poor"}, steady, ok, LIMITS)
    assert {r["by"] for r in poor["reasons"]} == {"drift", "performance"}
    worse = recommendation(3, calm, {"band": "Good"}, {**steady, "mae": 130.0, "relative_mae": 0.65,
                                                       "band_band": "Poor", "churn_auc": 0.55}, ok, LIMITS)
    assert [r["by"] for r in worse["reasons"]] == ["estimated performance"] * 2
    assert "130.00" in worse["summary"] and "65% of the mean prediction" in worse["summary"] and "0.550" in worse["summary"]
    bigger_baskets = {**steady, "mae": 200.0, "relative_mae": 0.55}  # errors grow with spend: no alarm
    assert recommendation(3, calm, {"band": "Good"}, bigger_baskets, ok, LIMITS)["retrain_due"] is False
    fresh = recommendation(0, calm, {"band": "Good"}, {**steady, "band_band": "Poor", "churn_auc": 0.55}, ok, LIMITS)
    assert fresh["retrain_due"] is False and fresh["summary"].startswith("No retrain can help yet")
    refused = recommendation(3, calm, {}, {"available": False},
                             {"status": "refuse", "problems": [{"level": "refuse", "reason": "x"}]}, LIMITS)
    assert refused["usable"] is False and "do not act" in refused["summary"]


def test_valuedesk_health_on_a_build(tmp_path, monkeypatch, capsys):
    from _tiers_data import sample_csv

    from valuedesk.cli import main
    from valuedesk.config import load_settings

    monkeypatch.setenv("VALUEDESK_TRAINING_PROFILE", "fast")
    monkeypatch.setenv("VALUEDESK_HORIZON_DAYS", "90")
    monkeypatch.setenv("VALUEDESK_DATA_DIR", str(tmp_path))
    load_settings.cache_clear()
    assert main(["build", "--data", str(sample_csv()), "--no-index", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["health", "--json", str(tmp_path / "health.json")]) == 0
    text = capsys.readouterr().out
    report = json.loads((tmp_path / "health.json").read_text())
    assert report["backtest"]["available"] and report["sufficiency"]["status"] in {"ok", "warn"}
    assert f"quality {report['backtest']['band']}" in text and "features drifted" in text
    assert main(["health", "--as-of", "2009-01-01"]) == 2
    assert "outside the data" in capsys.readouterr().err
