"""Label-free performance estimates (predictor/model/estimation.py): the algorithms on data whose truth is
known by construction, then the health report's estimates against what happened on real Online Retail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from predictor.model.estimation import ConfidenceBasedEstimator, DirectLossEstimator, expected_auc
from predictor.model.estimators import CLVModel, TrainingConfig
from predictor.model.features import compute_labels
from predictor.model.health import HealthThresholds, health_report


def test_expected_auc_matches_the_auc_of_outcomes_drawn_from_the_probabilities():
    rng = np.random.default_rng(7)
    p = rng.beta(2, 3, 20_000)
    realised = [roc_auc_score(rng.random(p.size) < p, p) for _ in range(20)]
    assert expected_auc(p) == pytest.approx(np.mean(realised), abs=0.003)
    assert expected_auc(np.full(100, 0.3)) == pytest.approx(0.5)  # one tied run: the diagonal
    assert expected_auc(np.zeros(10)) is None  # nobody can churn: no AUC to expect


def test_cbpe_recalibrates_scores_that_are_not_probabilities():
    rng = np.random.default_rng(11)
    p_ref, p_new = rng.beta(2, 3, 20_000), rng.beta(3, 2, 20_000)  # the population moves (covariate shift)
    score = lambda p: p ** 3  # ranks right, but far from calibrated  # noqa: E731
    estimator = ConfidenceBasedEstimator().fit(score(p_ref), rng.random(p_ref.size) < p_ref)
    truth = roc_auc_score(rng.random(p_new.size) < p_new, score(p_new))
    naive = expected_auc(score(p_new))  # the uncalibrated scores taken as probabilities
    estimate = estimator.estimate(score(p_new))["churn_auc"]
    assert abs(estimate - truth) < 0.01 < abs(naive - truth)


def test_dle_learns_where_the_errors_are_and_follows_a_shifted_population():
    rng = np.random.default_rng(3)

    def window(n, share_big):
        big = rng.random(n) < share_big  # big spenders' errors are ten times larger
        x = pd.DataFrame({"spend": np.where(big, 1000.0, 100.0) * rng.uniform(0.8, 1.2, n)})
        return x, np.abs(rng.normal(0, np.where(big, 200.0, 20.0)))

    x_ref, err_ref = window(5_000, 0.1)
    x_new, err_new = window(5_000, 0.5)  # five times as many big spenders now
    estimate = DirectLossEstimator(seed=1).fit(x_ref, err_ref).estimate(x_new)["mae"]
    assert estimate == pytest.approx(err_new.mean(), rel=0.08)
    assert err_ref.mean() < 0.5 * estimate  # the reference window's own MAE would have been far off


def test_health_estimates_agree_with_what_happened_on_online_retail(online_retail_history):
    """A June model, judged on 9 August: the estimates for the 90 days from then against their outcome."""
    config, trained, as_of = TrainingConfig.fast(90), pd.Timestamp("2011-06-09"), pd.Timestamp("2011-08-09")
    model = CLVModel(config).fit(online_retail_history.before(trained), trained)
    report = health_report(model, {"data_range": {"end": "2011-06-09"}}, online_retail_history, as_of, config,
                           HealthThresholds())
    estimated = report["estimated"]
    assert estimated["available"] and estimated["window"] == {"start": "2011-08-10", "end": "2011-11-07"}
    assert "DLE" in estimated["mae_method"] and "CBPE" in estimated["churn_method"]
    pred = model.predict(online_retail_history.before(as_of), as_of)
    labels = compute_labels(online_retail_history.before(as_of + pd.Timedelta(days=90)), as_of, 90, pred.index)
    mae = float(np.abs(labels["spend"].to_numpy() - pred["predicted_value"].to_numpy()).mean())
    auc = roc_auc_score(~labels["ordered"].to_numpy(), pred["churn_risk"].to_numpy())
    # The tolerances of the README's replay table.
    assert estimated["mae"] == pytest.approx(mae, rel=0.20)
    assert estimated["churn_auc"] == pytest.approx(auc, abs=0.05)
