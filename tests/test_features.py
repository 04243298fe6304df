"""Point-in-time features on real data: no leakage from after the cutoff, partitionable by customer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt

from predictor.model.features import FEATURES, CustomerHistory, compute_features, compute_labels

CUTOFF = pd.Timestamp("2011-06-09")


def test_changing_anything_after_the_cutoff_changes_no_feature(online_retail_history):
    history = online_retail_history
    before = compute_features(history, CUTOFF, 183)
    orders = history.orders.copy()
    later = orders["timestamp"] >= CUTOFF + pd.Timedelta(days=1)
    assert later.sum() > 1000
    rng = np.random.default_rng(0)
    # Scramble every later order: amounts, dates (still after the cutoff), and add a new customer.
    orders.loc[later, "amount"] = rng.uniform(-500, 5000, later.sum())
    orders.loc[later, "timestamp"] = CUTOFF + pd.to_timedelta(rng.integers(1, 150, later.sum()), unit="D")
    extra = pd.DataFrame({"customer_id": ["NEW"], "order_id": ["X1"], "timestamp": [CUTOFF + pd.Timedelta(days=3)],
                          "amount": [99.0], "quantity": [1.0], "is_cancellation": [False]})
    orders = pd.concat([orders, extra]).sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    lines = history.lines.copy()
    lines_later = lines["timestamp"] >= CUTOFF + pd.Timedelta(days=1)
    lines.loc[lines_later, "product_id"] = "SCRAMBLED"
    changed = CustomerHistory(orders=orders, lines=lines, data_start=history.start)
    after = compute_features(changed, CUTOFF, 183)
    pdt.assert_frame_equal(before, after)


def test_features_are_the_same_on_any_partition_of_customers(online_retail_history):
    full = compute_features(online_retail_history, CUTOFF, 183)
    ids = full.index.to_numpy()
    part = np.random.default_rng(1).choice(ids, size=300, replace=False)
    subset = compute_features(online_retail_history.subset(part), CUTOFF, 183)
    pdt.assert_frame_equal(subset.sort_index(), full.loc[subset.index].sort_index())
    assert list(full.columns) == FEATURES


def test_features_match_a_hand_count_for_one_customer(online_retail_history):
    features = compute_features(online_retail_history, CUTOFF, 183)
    customer = "12347"  # a well-known repeat buyer in Online Retail
    orders = online_retail_history.orders
    own = orders[(orders["customer_id"] == customer) & (orders["timestamp"] < CUTOFF + pd.Timedelta(days=1))
                 & ~orders["is_cancellation"]]
    row = features.loc[customer]
    assert row["frequency"] == own["timestamp"].size
    assert row["monetary_total"] == np.round(own["amount"].sum(), 6) or abs(row["monetary_total"] - own["amount"].sum()) < 1e-6
    assert abs(row["recency_days"] - (CUTOFF + pd.Timedelta(days=1) - own["timestamp"].max()).total_seconds() / 86400) < 1e-9


def test_labels_come_only_from_the_horizon(online_retail_history):
    features = compute_features(online_retail_history, CUTOFF, 30)
    labels = compute_labels(online_retail_history, CUTOFF, 30, features.index)
    orders = online_retail_history.orders
    window = orders[(orders["timestamp"] >= CUTOFF + pd.Timedelta(days=1)) & (orders["timestamp"] < CUTOFF + pd.Timedelta(days=31))]
    expected = window.groupby("customer_id")["amount"].sum().clip(lower=0).reindex(features.index, fill_value=0)
    np.testing.assert_allclose(labels["spend"].to_numpy(), expected.to_numpy())
    assert labels["ordered"].sum() == window.loc[~window["is_cancellation"], "customer_id"].isin(features.index).groupby(
        window["customer_id"]).any().sum()
