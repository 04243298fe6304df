"""Product suggestions on the real Online Retail log: honest evaluation and the exclusion rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictor.data.load import load_transactions
from predictor.errors import EvaluationWindowError
from predictor.campaigns.products import ProductRecommender, RecommendationError, evaluate_recommendations, suggest_products
from predictor.settings import SHARED_DATA, Settings

DATA = SHARED_DATA / "online_retail" / "online_retail.csv.gz"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="real Online Retail data not available")


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return load_transactions(DATA, "online_retail", settings=Settings()).transactions


@pytest.fixture(scope="module")
def fitted(transactions) -> ProductRecommender:
    return ProductRecommender().fit(transactions, "2011-09-09")


def test_beats_most_popular_on_next_period(transactions):
    ev = evaluate_recommendations(transactions, "2011-09-09", 90, k=10)
    assert ev.customers > 1000
    assert ev.model.hit_rate > ev.popular.hit_rate + 0.1
    assert ev.model.recall > 2 * ev.popular.recall
    assert 0 < ev.repeat_items < ev.items


def test_fit_ignores_lines_after_cutoff(transactions):
    cutoff = pd.Timestamp("2011-06-09")
    sample = transactions[transactions["customer_id"].isin(transactions["customer_id"].unique()[:400])]
    before = ProductRecommender().fit(sample, cutoff).recommend(sample["customer_id"].unique(), k=10)
    changed = sample.copy()
    after = changed["timestamp"] > cutoff + pd.Timedelta(days=1)
    changed.loc[after, "product_id"] = changed.loc[after, "product_id"].sample(frac=1, random_state=1).to_numpy()
    changed.loc[after, "amount"] *= 3
    again = ProductRecommender().fit(changed, cutoff).recommend(sample["customer_id"].unique(), k=10)
    assert before == again


def test_recent_one_off_items_are_not_suggested_but_repeat_items_may_be(fitted, transactions):
    recent_start = fitted.as_of - pd.Timedelta(days=fitted.recent_days)
    window = transactions[(transactions["timestamp"] > recent_start) & (transactions["timestamp"] <= fitted.as_of)
                          & ~transactions["is_cancellation"]]
    ids = window["customer_id"].unique()[:300].tolist()
    lists = fitted.recommend(ids, k=10)
    repeat = set(fitted.items[fitted._is_repeat])
    suggested_repeat_recent = 0
    for cid in ids:
        recent_items = set(window.loc[window["customer_id"] == cid, "product_id"].astype(str))
        overlap = set(lists[cid]) & recent_items
        assert overlap <= repeat, (cid, overlap - repeat)
        suggested_repeat_recent += len(overlap)
    # The exclusion is selective, not blanket: recently bought repeat items do come back.
    assert suggested_repeat_recent > 0


def test_repeat_items_are_defined_by_rebuy_share(fitted, transactions):
    lines = transactions[(transactions["timestamp"] <= fitted.as_of) & ~transactions["is_cancellation"]
                         & (transactions["amount"] > 0)]
    item = fitted.repeat_rate[fitted._is_repeat].index[0]
    orders = lines[lines["product_id"] == item].groupby("customer_id")["order_id"].nunique()
    assert fitted.repeat_rate[item] == pytest.approx((orders >= 2).mean())
    assert fitted.repeat_rate[item] >= fitted.repeat_share


def test_batch_shapes_unknown_customers_and_names(fitted):
    known = list(fitted.customers[:50])
    lists = fitted.recommend(known + ["no-such-customer"], k=5)
    assert set(lists) == set(known) | {"no-such-customer"}
    assert all(len(v) == 5 and len(set(v)) == 5 for v in lists.values())
    assert lists["no-such-customer"] == fitted.popular(5)
    named = fitted.recommend(known[:3], k=3, names=True)
    assert all(not str(n).isdigit() for v in named.values() for n in v)
    frame = suggest_products(pd.DataFrame(), known[:3], k=3, recommender=fitted)
    assert list(frame.columns) == ["customer_id", "suggested_products"]
    assert frame["suggested_products"].tolist() == [named[c] for c in known[:3]]


def test_bad_inputs(transactions):
    with pytest.raises(EvaluationWindowError, match="outside the data"):
        evaluate_recommendations(transactions, "2015-01-01", 30)
    with pytest.raises(EvaluationWindowError, match="horizon"):
        evaluate_recommendations(transactions, "2011-11-01", 90)
    with pytest.raises(RecommendationError, match="before fit"):
        ProductRecommender().recommend(["1"])
    with pytest.raises(RecommendationError, match="product_id"):
        ProductRecommender().fit(transactions.drop(columns=["product_id"]))
    with pytest.raises(RecommendationError, match="k must be"):
        ProductRecommender().fit(transactions.head(5000)).recommend(["1"], k=0)
    assert np.isfinite(ProductRecommender().fit(transactions.head(5000)).repeat_rate).all()
