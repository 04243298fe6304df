"""The customer tables per bucket on a real LocalCluster (predictor/engine/dask_customers.py) against one
process, on the real Online Retail scores: tiers, lifecycle, at-risk, RFM, clusters, favourites, product
suggestions and profile texts equal customer by customer; the population figures reduce exactly; K-Means on a sample
stays close to a fit on everyone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from _dask_support import assert_same_frames, killer_after, local_cluster
from predictor.customers.clusters import fit_kmeans
from predictor.customers.population import POPULATION_COLUMNS, population_stats, quintile, quintile_bounds
from predictor.campaigns.products import suggest_products
from predictor.customers.tables import SUGGESTIONS, profile_table, tier_table
from predictor.customers.tiers import LifecycleConfig, TierConfig, apply_tiers
from predictor.engine.buckets import bucket_numbers, write_buckets
from predictor.engine.dask_customers import CustomerRules, customer_tables_with_dask, population_reduce
from predictor.model.scoring import with_categories


@pytest.fixture(scope="module")
def retail(online_retail, scored_settings):
    return with_categories(online_retail.transactions), pd.read_parquet(scored_settings.scores_path)


def test_bucketed_customer_tables_equal_one_process(retail, tmp_path):
    lines, scores = retail
    tiers = TierConfig()
    local = tier_table(scores, tiers)
    kmeans = fit_kmeans(local, range(3, 6), seed=42)
    local["cluster"] = kmeans.labels(local)
    suggestions = suggest_products(lines, scores["customer_id"], k=SUGGESTIONS).set_index("customer_id")
    local_customers, local_profiles = profile_table(local, lines, suggestions["suggested_products"], "£")

    stats, sampled = population_reduce(scores, tiers, LifecycleConfig(), range(3, 6), seed=42)
    assert sampled.relabel == kmeans.relabel and sampled.k == kmeans.k  # the sample is everyone here
    rules = CustomerRules(tiers, LifecycleConfig(), stats, sampled, "£")
    buckets = write_buckets(lines, tmp_path / "buckets", buckets=4)
    with local_cluster() as (_, client):
        kill_a_worker = killer_after(client, first_done=1)  # the other buckets still running or queued
        customers, profiles = customer_tables_with_dask(scores, buckets, rules, client, tmp_path,
                                                        on_bucket_done=kill_a_worker)
    assert kill_a_worker.killed
    assert_same_frames(local_customers, customers)
    assert_same_frames(local_profiles, profiles)
    assert customers["tier"].value_counts().to_dict() == {"Bronze": 3466, "Silver": 650, "Gold": 174, "Platinum": 43}
    assert customers["suggested_products"].map(len).eq(SUGGESTIONS).mean() > 0.99  # the item model reached every bucket
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staged inputs removed


def test_population_figures_reduce_exactly_over_buckets(retail):
    """Applying the whole population's figures to each bucket gives one process's columns, ties included."""
    _, scores = retail
    # Rounded values make many ties at the tier edges and in the RFM ranks.
    scores = scores.assign(predicted_value=scores["predicted_value"].round(-2), revenue_12m=scores["revenue_12m"].round(-2),
                           historical_value=scores["historical_value"].round(-2))
    for tiers in (TierConfig(), TierConfig.parse("quantile", "A=0.0001,B=0.3,C=1.0"),
                  TierConfig.parse("amount", "Platinum=10000,Gold=3000,Silver=1000")):
        whole = apply_tiers(scores, tiers)
        stats = population_stats(scores[POPULATION_COLUMNS], tiers, LifecycleConfig())
        numbers = bucket_numbers(scores["customer_id"], 5)
        parts = pd.concat([apply_tiers(scores.loc[numbers == i], tiers, stats=stats) for i in range(5)]).loc[whole.index]
        assert_same_frames(whole, parts, rtol=1e-12)


def test_quintiles_match_pandas_percentile_ranks():
    rng = np.random.default_rng(3)
    for values in (pd.Series(rng.integers(0, 7, 500).astype(float)), pd.Series(rng.exponential(size=997)),
                   pd.Series([np.nan, 1.0, 1.0, 2.0, np.nan, 5.0])):
        for better in (True, False):
            pct = values.rank(pct=True, method="average", ascending=better)
            expected = np.ceil(pct * 5).clip(1, 5).fillna(1).astype("int64")
            assert quintile(values, quintile_bounds(values, better), better).equals(expected)


def test_kmeans_on_a_sample_labels_like_a_fit_on_everyone(retail):
    """The documented approximation past `kmeans_sample` customers, measured on the real customers."""
    _, scores = retail
    customers = apply_tiers(scores, TierConfig())
    full = fit_kmeans(customers, range(3, 6), seed=42)
    stats, sampled = population_reduce(scores, TierConfig(), LifecycleConfig(), range(3, 6), seed=42,
                                       kmeans_sample=1500)
    agreement = adjusted_rand_score(full.labels(customers), sampled.labels(customers))
    assert sampled.k == full.k and agreement > 0.8
