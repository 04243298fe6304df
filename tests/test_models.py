"""The saved model bundle: scores, artifacts, refusal of mismatches, and rescoring one customer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from predictor.model.artifacts import load_model_bundle
from predictor.model.estimators import LEVEL_SOURCE
from predictor.errors import ArtifactError, DataError
from predictor.model.scoring import CustomerScorer, with_categories


@pytest.fixture(scope="module")
def scores(scored_settings):
    return pd.read_parquet(scored_settings.scores_path)


def test_scores_cover_every_customer_with_sane_values(scores, online_retail):
    tx = online_retail.transactions
    buyers = tx.loc[~tx["is_cancellation"] & ~tx["is_outlier"], "customer_id"].nunique()
    assert len(scores) == buyers
    assert scores["customer_id"].is_unique
    assert scores["churn_risk"].between(0, 1).all()
    assert (scores["value_p10"] <= scores["predicted_value"] + 1e-9).all()
    assert (scores["predicted_value"] <= scores["value_p90"] + 1e-9).all()
    assert (scores["predicted_value"] >= 0).all()
    # An expected next order is given only to customers likely to order, and lies after the scoring date.
    has_next = scores["expected_next_order"].notna()
    assert (scores.loc[has_next, "expected_next_order"] > scores.loc[has_next, "as_of"]).all()
    assert scores.loc[has_next, "churn_risk"].max() < 0.8
    # Repeat recent buyers are less likely to churn than one-time buyers from a year ago.
    recent_repeat = scores[(scores["orders"] >= 5) & (scores["recency_days"] < 30)]["churn_risk"].mean()
    old_single = scores[(scores["orders"] == 1) & (scores["recency_days"] > 250)]["churn_risk"].mean()
    assert recent_repeat < 0.3 < old_single


def test_drivers_are_words_with_numbers_from_the_customer(scores):
    row = scores.set_index("customer_id").loc["12347"]
    drivers = list(row["drivers"])
    assert len(drivers) == 3
    assert all(("raises" in d or "lowers" in d) for d in drivers)
    text = " ".join(drivers)
    assert any(ch.isdigit() for ch in text)


def test_bundle_carries_metadata_and_is_refused_when_mismatched(scored_settings, tmp_path):
    bundle = load_model_bundle(scored_settings)
    meta = bundle.metadata
    for key in ("features", "training_window", "data_range", "data_fingerprint", "library_versions", "metrics",
                "trained_at", "version"):
        assert meta[key], key
    assert meta["data_fingerprint"].startswith("sha256:")
    # Where the total's level came from is recorded and read back with the model.
    assert meta["level_source"] == bundle.model.level_source == LEVEL_SOURCE
    # A copy whose feature list differs is refused with the command that fixes it.
    import shutil

    from predictor.settings import Settings

    copy_dir = tmp_path / "copy"
    shutil.copytree(scored_settings.data_dir / "models", copy_dir / "models", symlinks=True)
    settings = Settings(data_dir=copy_dir)
    meta_path = settings.model_dir / "current" / "metadata.json"
    tampered = json.loads(meta_path.read_text())
    tampered["features"] = tampered["features"][:-1]
    meta_path.write_text(json.dumps(tampered))
    with pytest.raises(ArtifactError, match="valuedesk build --rescore"):
        load_model_bundle(settings)
    with pytest.raises(ArtifactError, match="No trained model"):
        load_model_bundle(Settings(data_dir=tmp_path / "empty"))


def test_rescoring_a_known_customer_reproduces_their_score(scored_settings, scores, online_retail):
    scorer = CustomerScorer.load(scored_settings)
    tx = online_retail.transactions
    customer = "12347"
    own = tx[(tx["customer_id"] == customer) & ~tx["is_outlier"]]
    # The model trained on the categorised log (score_customers derives categories as the build does),
    # so the customer's lines carry the same categories.
    own = with_categories(tx).loc[own.index]
    row = scorer.score_orders(own[["order_id", "timestamp", "amount", "quantity", "product_id", "category",
                                   "country"]], customer_id=customer)
    saved = scores.set_index("customer_id").loc[customer]
    assert row["predicted_value"] == pytest.approx(saved["predicted_value"], rel=1e-5)
    assert row["churn_risk"] == pytest.approx(saved["churn_risk"], rel=1e-5)


def test_a_new_order_changes_the_score_without_retraining(scored_settings):
    scorer = CustomerScorer.load(scored_settings)
    version = scorer.bundle.metadata["version"]
    base = pd.DataFrame({"timestamp": ["2011-03-01", "2011-06-15"], "amount": [120.0, 80.0]})
    before = scorer.score_orders(base, customer_id="N1")
    after = scorer.score_orders(pd.concat([base, pd.DataFrame({"timestamp": ["2011-12-08"], "amount": [900.0]})]),
                                customer_id="N1")
    assert after["churn_risk"] < before["churn_risk"]
    assert after["predicted_value"] > before["predicted_value"]
    assert after["model_version"] == version == load_model_bundle(scored_settings).metadata["version"]


def test_rescoring_bad_orders_names_the_problem(scored_settings):
    scorer = CustomerScorer.load(scored_settings)
    with pytest.raises(DataError, match="timestamp"):
        scorer.score_orders(pd.DataFrame({"timestamp": ["2011-01-01", "not a date"], "amount": [1.0, 2.0]}))
    with pytest.raises(DataError, match="amount"):
        scorer.score_orders(pd.DataFrame({"timestamp": ["2011-01-01"]}))
    with pytest.raises(DataError, match="out of range"):
        scorer.score_orders(pd.DataFrame({"timestamp": ["0000"], "amount": [0.0]}))
    with pytest.raises(DataError, match="No orders"):
        scorer.score_orders(pd.DataFrame({"timestamp": [], "amount": []}))
