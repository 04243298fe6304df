"""The columnar population path (predictor/model/columnar.py behind compute_features, rfm_summary,
LastPeriodSpend and feature_frame; inplace_predict in predict_features) gives the values of the pandas
implementation it replaced (frozen in tests/_fast_partition_reference.py) on the real Online Retail
and CDNOW histories, at several cutoffs and label windows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _fast_partition_reference import (compute_features_reference, feature_frame_reference, last_period_reference,
                                       predict_features_reference, rfm_summary_reference)
from predictor.model.baselines import LastPeriodSpend, rfm_summary
from predictor.model.estimators import TrainingConfig, feature_frame
from predictor.model.features import CustomerHistory, compute_features

# (cutoff, label_days): the full horizon, short label windows (label_scale < horizon), and a cutoff
# early enough that spend_same_window_last_year is NaN for everyone.
ONLINE_RETAIL_CASES = [("2011-06-09", 183), ("2011-09-30", 69), ("2011-03-01", 28)]
CDNOW_CASES = [("1997-09-30", 180), ("1998-01-31", 56)]


def assert_same_frame(new: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Same customers in the same order, same columns, every value allclose with NaN where the reference has it."""
    assert new.index.equals(reference.index) and new.index.dtype == reference.index.dtype
    assert list(new.columns) == list(reference.columns)
    assert list(new.dtypes) == list(reference.dtypes)
    assert len(new) > 100
    for column in reference.columns:
        got, want = new[column].to_numpy(float), reference[column].to_numpy(float)
        assert np.array_equal(np.isnan(got), np.isnan(want)), column
        assert np.allclose(got, want, rtol=1e-6, atol=1e-9, equal_nan=True), (
            column, np.nanmax(np.abs(got - want)))


def _cases(request, name):
    history = request.getfixturevalue(f"{name}_history")
    cases = ONLINE_RETAIL_CASES if name == "online_retail" else CDNOW_CASES
    return history, [(pd.Timestamp(cutoff), days) for cutoff, days in cases]


@pytest.mark.parametrize("name", ["online_retail", "cdnow"])
def test_features_equal_the_pandas_reference(request, name):
    history, cases = _cases(request, name)
    for cutoff, label_days in cases:
        new = compute_features(history, cutoff, label_days)
        assert_same_frame(new, compute_features_reference(history, cutoff, label_days))
    if name == "online_retail":  # product lines: the breadth features are real numbers, not NaN
        assert new["distinct_products"].notna().all()
    else:  # CDNOW's history starts less than a year before the first cutoff
        assert compute_features(history, cases[0][0], 180)["spend_same_window_last_year"].isna().all()


@pytest.mark.parametrize("name", ["online_retail", "cdnow"])
def test_baseline_inputs_equal_the_pandas_reference(request, name):
    history, cases = _cases(request, name)
    for cutoff, label_days in cases:
        summary = rfm_summary(history, cutoff)
        assert_same_frame(summary, rfm_summary_reference(history, cutoff))
        assert summary.index.is_monotonic_increasing
        # Every customer with an order, and names the history has never seen: 0, as before.
        customers = pd.Index(list(history.orders["customer_id"].unique()) + ["nobody"], dtype="string")
        got = LastPeriodSpend().predict(history, cutoff, label_days, customers)
        want = last_period_reference(history, cutoff, label_days, customers)
        assert got.index.equals(want.index) and (got > 0).sum() > 100
        assert np.allclose(got.to_numpy(), want.to_numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["online_retail", "cdnow"])
def test_feature_frame_and_its_bgnbd_fit_equal_the_reference(request, name):
    history, cases = _cases(request, name)
    config = TrainingConfig(horizon_days=180, bg_fit_customers=2000)  # a sampled fit: the sample must match
    for cutoff, label_days in cases:
        new, bg = feature_frame(history, cutoff, label_days, config)
        reference, bg_reference = feature_frame_reference(history, cutoff, label_days, config)
        assert_same_frame(new, reference)
        assert np.allclose(bg.bgf.params_.to_numpy(), bg_reference.bgf.params_.to_numpy(), rtol=1e-9)
        if label_days < config.horizon_days:
            assert (new["label_scale"] > 1).mean() > 0.5


@pytest.fixture(scope="module")
def model(scored_settings):
    from predictor.model.artifacts import load_model_bundle

    return load_model_bundle(scored_settings).model


@pytest.mark.parametrize("threaded_from", [1_000, 10**9])
@pytest.mark.parametrize("name", ["online_retail", "cdnow"])
def test_predictions_equal_the_sklearn_wrappers(request, monkeypatch, model, name, threaded_from):
    """On the configured threads (every real population here is over 1,000 customers) and on the
    booster's own setting."""
    from predictor.model import boosters

    monkeypatch.setattr(boosters, "THREADED_PREDICT_ROWS", threaded_from)
    history, cases = _cases(request, name)
    for cutoff, _ in [(history.end, None), *cases]:
        # The saved model's own BG/NBD for Online Retail (as scoring does), a fresh fit on CDNOW.
        bg = model.scoring_bg if name == "online_retail" else None
        features, _ = feature_frame(history, cutoff, model.config.horizon_days, model.config, bg)
        assert_same_frame(model.predict_features(features), predict_features_reference(model, features))


def test_predict_features_leaves_the_one_customer_scorer_single_threaded(monkeypatch, scored_settings, model,
                                                                        online_retail_history):
    from predictor.model import boosters
    from predictor.model.scoring import CustomerScorer

    monkeypatch.setattr(boosters, "THREADED_PREDICT_ROWS", 100)  # the population below predicts threaded
    scorer = CustomerScorer.load(scored_settings)
    features = scorer.model.features_at(online_retail_history, online_retail_history.end, bg=scorer.model.scoring_bg)
    scorer.model.predict_features(features)
    for booster, _ in scorer._boosters.values():
        assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] == "1"


def test_orders_out_of_customer_or_time_order_are_sorted_first(online_retail_history):
    """The columnar pass reads runs of rows; a history in any row order gives the sorted history's features."""
    history = online_retail_history
    cutoff = pd.Timestamp(ONLINE_RETAIL_CASES[0][0])
    shuffled = history.orders.sample(frac=1.0, random_state=3).reset_index(drop=True)
    got = compute_features(CustomerHistory(orders=shuffled, lines=history.lines, data_start=history.start), cutoff, 183)
    assert_same_frame(got, compute_features_reference(history, cutoff, 183))


def test_contiguous_but_unsorted_customers_keep_their_order(online_retail_history):
    """Customers in descending id order (each still one run, as the benchmark's bootstrapped ids are) are
    not re-sorted: the rows come out in the history's order, as the pandas path gave them."""
    history = online_retail_history
    orders = history.orders
    descending = orders.sort_values("customer_id", ascending=False, kind="stable").reset_index(drop=True)
    reversed_history = CustomerHistory(orders=descending, lines=history.lines, data_start=history.start)
    cutoff = pd.Timestamp(ONLINE_RETAIL_CASES[1][0])
    got = compute_features(reversed_history, cutoff, 69)
    assert got.index.is_monotonic_decreasing
    assert_same_frame(got, compute_features_reference(reversed_history, cutoff, 69))
    assert_same_frame(rfm_summary(reversed_history, cutoff), rfm_summary_reference(reversed_history, cutoff))


def test_many_partitions_on_two_threads_change_no_value(monkeypatch, online_retail_history):
    """The columnar pass cuts customers into partitions (100k in production); cut the real history into
    partitions of 250 customers, mapped on two threads, and every value is still the reference's."""
    from predictor.model import columnar

    monkeypatch.setattr(columnar, "PARTITION_CUSTOMERS", 250)
    history = online_retail_history
    config = TrainingConfig(horizon_days=180, bg_fit_customers=2000, n_jobs=2)
    for cutoff, label_days in [(pd.Timestamp(cutoff), days) for cutoff, days in ONLINE_RETAIL_CASES[:2]]:
        assert len(compute_features(history, cutoff, label_days)) > 4 * columnar.PARTITION_CUSTOMERS
        assert_same_frame(compute_features(history, cutoff, label_days),
                          compute_features_reference(history, cutoff, label_days))
        assert_same_frame(rfm_summary(history, cutoff), rfm_summary_reference(history, cutoff))
        new, bg = feature_frame(history, cutoff, label_days, config)
        assert_same_frame(new, feature_frame_reference(history, cutoff, label_days, config)[0])
        # Given population parameters, the BG/NBD outputs are computed inside each partition.
        given, _ = feature_frame(history, cutoff, label_days, config, bg)
        assert_same_frame(given, feature_frame_reference(history, cutoff, label_days, config, bg)[0])
