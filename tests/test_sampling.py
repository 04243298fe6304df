"""Training on a customer sample (predictor/model/sampling.py; issue 18 item 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictor.model.baselines import rfm_summary
from predictor.model.estimators import CLVModel, TrainingConfig
from predictor.model.sampling import in_training_sample, smallest_hash_rows, training_sample


def test_membership_is_a_property_of_the_id_not_of_the_set(online_retail_history):
    ids = online_retail_history.orders["customer_id"].drop_duplicates().to_numpy()
    whole = in_training_sample(ids, 0.3, 42)
    # Any partition decides the same: the first and the second half on their own, in reverse order.
    half = len(ids) // 2
    assert (np.concatenate([in_training_sample(ids[:half], 0.3, 42), in_training_sample(ids[half:], 0.3, 42)])
            == whole).all()
    assert (in_training_sample(ids[::-1], 0.3, 42)[::-1] == whole).all()
    assert abs(whole.mean() - 0.3) < 0.03  # about the share asked for
    assert (in_training_sample(ids, 0.3, 7) != whole).any()  # another seed, another sample
    assert len(training_sample(ids, 1.0, 42)) == len(ids)
    with pytest.raises(ValueError, match=r"share must be in \(0, 1\]"):
        in_training_sample(ids, 0.0, 42)


def test_a_model_trained_on_a_sample_scores_every_customer(online_retail_history):
    known = online_retail_history.before("2011-06-09")
    config = TrainingConfig.fast(183)
    config.training_sample_share = 0.5
    model = CLVModel(config).fit(known, "2011-06-09")
    sample = model.summary()["training_sample"]
    assert sample["method"] == "seeded hash of customer_id"
    assert 0.4 < sample["customers"] / sample["of"] < 0.6
    scores = model.predict(known, "2011-06-09")
    assert len(scores) == known.orders["customer_id"].nunique()  # scoring covers everyone, sampled or not
    assert scores["predicted_value"].notna().all()


@pytest.mark.parametrize("k", [500, 5000])
def test_the_bg_fit_sample_is_the_same_however_the_customers_are_split(cdnow_history, k):
    """BG/NBD's fit sample (the k smallest seeded hashes; everyone, in id order, up to k) reduced from
    parts equals the sample of the whole: what lets the Dask engine fit the local engine's parameters."""
    summary = rfm_summary(cdnow_history.before("1997-06-30"), "1997-06-30").head(3000)
    whole = smallest_hash_rows(summary, k, 42)
    shuffled = summary.sample(frac=1.0, random_state=1)
    parts = [smallest_hash_rows(shuffled.iloc[i::4], k, 42) for i in range(4)]
    assert smallest_hash_rows(pd.concat(parts), k, 42).equals(whole)
    assert len(whole) == min(k, len(summary))
    if k >= len(summary):
        assert whole.equals(summary)  # a small population keeps its rows and their order
    else:
        assert not whole.index.is_monotonic_increasing  # hash order, not id order
