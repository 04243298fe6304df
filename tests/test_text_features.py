"""Product-text features (predictor/model/text_features.py) on a seeded slice of real Online Retail customers:
point in time, spend-weighted, a clear error on data with no product names, and a model that trains on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from predictor.model.estimators import CLVModel, TrainingConfig
from predictor.model.features import CustomerHistory
from predictor.model.scoring import history_from_transactions
from predictor.model.text_features import (NoProductNamesError, ProductTextFeatures, attach_product_names,
                                           default_embedder)

CUTOFF = pd.Timestamp("2011-06-09")
EDGE = CUTOFF + pd.Timedelta(days=1)  # features know the whole cutoff day, as compute_features does


@pytest.fixture(scope="module")
def transactions(online_retail):
    tx = online_retail.transactions
    sample = pd.Series(tx["customer_id"].unique()).sample(500, random_state=3)
    return tx[tx["customer_id"].isin(sample)]


@pytest.fixture(scope="module")
def history(transactions):
    return attach_product_names(history_from_transactions(transactions), transactions)


@pytest.fixture(scope="module")
def fitted(history):
    return ProductTextFeatures(8, 42).fit(history.before(CUTOFF), CUTOFF)


def _with_lines(history: CustomerHistory, lines: pd.DataFrame) -> CustomerHistory:
    return CustomerHistory(orders=history.orders, lines=lines, data_start=history.start)


def test_transform_ignores_every_line_after_the_cutoff_day(history, fitted):
    before = fitted.transform(history, CUTOFF)
    lines = history.lines.copy()
    later = lines["timestamp"] >= EDGE
    assert later.sum() > 1000
    # Rename and reprice every later purchase, and give a customer unknown at the cutoff a later line.
    lines.loc[later, "product_name"] = "GIANT PINK UNICORN LAMP"
    lines.loc[later, "amount"] = lines.loc[later, "amount"] * 7
    newcomer = lines.loc[later].iloc[[0]].assign(customer_id="NEW")
    changed = _with_lines(history, pd.concat([lines, newcomer]))
    pdt.assert_frame_equal(fitted.transform(changed, CUTOFF), before)
    # The check can fail: the same change on one earlier line moves that customer's features.
    earlier = lines.index[(lines["timestamp"] < EDGE) & (lines["amount"] > 0)][0]
    lines.loc[earlier, ["product_name", "amount"]] = ["GIANT PINK UNICORN LAMP", 10_000.0]
    moved = fitted.transform(_with_lines(history, lines), CUTOFF)
    customer = lines.loc[earlier, "customer_id"]
    assert not np.allclose(moved.loc[customer], before.loc[customer])


def test_the_pca_sees_only_lines_before_the_training_end(history, fitted):
    lines = history.lines.copy()
    lines.loc[lines["timestamp"] >= EDGE, "product_name"] = "GIANT PINK UNICORN LAMP"
    refit = ProductTextFeatures(8, 42).fit(_with_lines(history, lines), CUTOFF)
    np.testing.assert_allclose(refit.pca.components_, fitted.pca.components_)
    assert "GIANT PINK UNICORN LAMP" not in refit.names


def test_columns_and_a_spend_weighted_mean_by_hand(history, fitted):
    features = fitted.transform(history, CUTOFF)
    assert list(features.columns) == list(fitted.columns) == [f"text_{i}" for i in range(8)]
    known = history.lines[(history.lines["timestamp"] < EDGE) & (history.lines["amount"] > 0)]
    assert set(features.index) == set(known["customer_id"])
    assert np.isfinite(features.to_numpy()).all()
    # One customer by hand: the spend-weighted mean of their names' MiniLM vectors, through the PCA.
    customer = known["customer_id"].value_counts().index[0]
    own = known[known["customer_id"] == customer]
    spend = own.groupby("product_name")["amount"].sum()
    vectors = default_embedder().embed(list(spend.index))
    mean = (vectors * (spend.to_numpy() / spend.sum())[:, None]).sum(axis=0)
    expected = fitted.pca.transform(mean[None, :].astype(np.float64))[0]
    np.testing.assert_allclose(features.loc[customer].to_numpy(), expected, atol=1e-4)
    # A later cutoff brings names the fit never saw: they are embedded and projected, nothing is lost.
    later = fitted.transform(history, history.end)
    assert len(later) > len(features) and np.isfinite(later.to_numpy()).all()
    assert ProductTextFeatures(16, 42).fit(history, CUTOFF).transform(history, CUTOFF).shape == (len(features), 16)


def test_data_without_product_names_is_refused_with_a_specific_error(cdnow_history, transactions):
    with pytest.raises(NoProductNamesError, match="no product names"):
        ProductTextFeatures(8, 42).fit(cdnow_history, cdnow_history.end)
    config = TrainingConfig.fast()
    config.text_feature_dims = 8
    small = cdnow_history.subset(cdnow_history.orders["customer_id"].unique()[:300])
    with pytest.raises(NoProductNamesError):
        CLVModel(config).fit(small)
    # Online Retail's history as scoring builds it keeps product ids but not names: the same error.
    with pytest.raises(NoProductNamesError):
        ProductTextFeatures(8, 42).fit(history_from_transactions(transactions), CUTOFF)


def test_a_model_trains_and_predicts_with_the_text_columns(history):
    config = TrainingConfig.fast()
    config.text_feature_dims = 8
    model = CLVModel(config).fit(history, CUTOFF)
    text_columns = [f"text_{i}" for i in range(8)]
    assert model.feature_names[-8:] == text_columns
    assert list(model.value_model.feature_names_in_[-8:]) == text_columns
    predictions = model.predict(history.before(CUTOFF), CUTOFF)
    orders = history.orders
    bought = (orders["timestamp"] < EDGE) & ~orders["is_cancellation"] & (orders["amount"] > 0)
    customers = orders.loc[bought, "customer_id"].unique()
    assert set(predictions.index) == set(customers)
    assert np.isfinite(predictions["predicted_value"]).all() and (predictions["predicted_value"] >= 0).all()
    # The text columns carry signal the trees use (not all-zero filler).
    gain = model.value_model.get_booster().get_score(importance_type="gain")
    assert any(column in gain for column in text_columns)
