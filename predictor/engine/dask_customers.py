"""`--engine dask`, the build's customer tables: tiers, lifecycle stages, the at-risk flag, RFM scores,
K-Means clusters, favourites and profile texts per customer bucket, with the local engine's functions
(predictor/customers/tables.py).

The population-level steps are explicit reduces, done once in the driver on the gathered scores:
- **Exact:** tier thresholds, churn-risk quantiles, the population cadence and the RFM quintile
  boundaries (`population_stats` over POPULATION_COLUMNS; predictor/customers/population.py).
- **Approximate past a size:** K-Means is fitted on the `kmeans_sample` customers with the smallest
  seeded hashes of their id (all of them in a smaller population, where the labels equal one process's)
  and labels every bucket's customers with that fit; bench/bench_dask_customers.py measures how far the
  labels move against a fit on everyone.
- **Exact, as a tree of sums:** the product recommender's item model (buyers, repeat buyers, the
  item x item co-purchase counts, each item's current name and category: predictor/campaigns/item_stats.py)
  is computed per bucket and combined pairwise on the workers; each bucket then suggests products to its
  own customers against it, as one process does.

Each bucket's scores and the rules are staged as files (scattered data dies with its worker; files let a
rerun of a task find its input), and the tables come back in the scores' row order.
"""

from __future__ import annotations

import copy
import pickle
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.atomic import atomic_path
from predictor.campaigns.item_stats import ItemStats, combine_item_stats, item_stats
from predictor.campaigns.products import ProductRecommender, purchase_lines
from predictor.customers.clusters import KMEANS_INPUTS, KMeansFit, fit_kmeans
from predictor.customers.population import POPULATION_COLUMNS, PopulationStats, population_stats
from predictor.customers.tables import SUGGESTIONS, profile_table, tier_table
from predictor.customers.tiers import LifecycleConfig, TierConfig
from predictor.engine.buckets import BucketSet, bucket_numbers, read_bucket
from predictor.layout import ENGINE_TEMP_PREFIXES
from predictor.model.sampling import smallest_hash_rows

# K-Means fits on at most this many customers: the silhouette choice of k refits 6 times, quadratic
# parts aside, so a sample keeps the reduce step to seconds; below it the fit is exact.
KMEANS_SAMPLE = 200_000


@dataclass(frozen=True)
class CustomerRules:
    """What every bucket applies: the settings' rules and the population's reduce results."""

    tiers: TierConfig
    lifecycle: LifecycleConfig
    stats: PopulationStats
    kmeans: KMeansFit | None
    currency: str
    products: ProductRecommender | None = None  # the item model; None: no suggestions


def population_reduce(scores: pd.DataFrame, tiers: TierConfig, lifecycle: LifecycleConfig, k_range,
                      seed: int, kmeans_sample: int = KMEANS_SAMPLE) -> tuple[PopulationStats, KMeansFit | None]:
    """The exact population figures, and the K-Means fit on the seeded-hash sample (None: no clusters)."""
    stats = population_stats(scores[POPULATION_COLUMNS], tiers, lifecycle)
    if k_range is None or len(scores) <= max(k_range):
        return stats, None
    sample = smallest_hash_rows(scores.set_index("customer_id")[KMEANS_INPUTS], kmeans_sample, seed)
    return stats, fit_kmeans(sample.reset_index(), k_range, seed=seed, cadence=stats.cadence_days)


def bucket_item_stats(bucket: Path) -> ItemStats | None:
    lines = purchase_lines(read_bucket(bucket), None)
    return item_stats(lines) if len(lines) else None


def combine_pair(a: ItemStats | None, b: ItemStats | None) -> ItemStats | None:
    return combine_item_stats([p for p in (a, b) if p is not None]) if a is not None or b is not None else None


def item_model(client, bucket_set: BucketSet) -> ProductRecommender | None:
    """The recommender's item model of the whole population (None: no itemised purchases)."""
    parts = client.map(bucket_item_stats, bucket_set.paths, pure=False)
    while len(parts) > 1:  # a tree of pairwise sums on the workers: no process holds every bucket's counts
        parts = [client.submit(combine_pair, parts[i], parts[i + 1], pure=False) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    stats = parts[0].result()
    return ProductRecommender().fit_items(stats) if stats is not None else None


def _suggestions(lines: pd.DataFrame, ids: pd.Series, products: ProductRecommender) -> pd.Series:
    recommender = copy.copy(products).fit_customers(purchase_lines(lines, None))
    lists = recommender.recommend(ids.astype(str).tolist(), k=SUGGESTIONS, names=True)
    return pd.Series(lists)


def customers_task(bucket: Path, scores_part: Path, rules_file: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One bucket's customers and profiles rows."""
    rules: CustomerRules = pickle.loads(Path(rules_file).read_bytes())  # staged by this run: trusted
    scores, lines = pd.read_parquet(scores_part), read_bucket(bucket)
    suggestions = _suggestions(lines, scores["customer_id"], rules.products) if rules.products is not None else None
    customers = tier_table(scores, rules.tiers, rules.lifecycle, rules.stats, rules.kmeans)
    return profile_table(customers, lines, suggestions, rules.currency)


def customer_tables_with_dask(scores: pd.DataFrame, bucket_set: BucketSet, rules: CustomerRules, client,
                              work_dir: Path, with_suggestions: bool = True,
                              on_bucket_done: Callable[[int], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(customers, profiles) of every bucket, in the order of `scores`. A worker lost mid-run has its
    buckets rerun elsewhere (their inputs are files); `on_bucket_done(n)` follows progress."""
    from distributed import as_completed

    if with_suggestions and "product_id" in bucket_set.columns:
        rules = replace(rules, products=item_model(client, bucket_set))
    staged = Path(tempfile.mkdtemp(dir=work_dir, prefix=ENGINE_TEMP_PREFIXES[2]))
    try:
        numbers = bucket_numbers(scores["customer_id"], bucket_set.buckets)
        buckets, parts = [], []
        for i in np.unique(numbers):  # a bucket without a scored customer (only cancellations) has no rows
            buckets.append(bucket_set.paths[i])
            parts.append(staged / f"scores-{i:05d}.parquet")
            with atomic_path(parts[-1]) as tmp:
                scores.loc[numbers == i].to_parquet(tmp, index=False)
        rules_file = staged / "rules.pkl"
        with atomic_path(rules_file) as tmp:
            tmp.write_bytes(pickle.dumps(rules, protocol=pickle.HIGHEST_PROTOCOL))
        futures = client.map(customers_task, buckets, parts, rules_file=rules_file, pure=False)
        for done, _ in enumerate(as_completed(futures), start=1):
            if on_bucket_done is not None:
                on_bucket_done(done)
        results = client.gather(futures)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    customers = pd.concat([c for c, _ in results], ignore_index=True)
    profiles = pd.concat([p for _, p in results], ignore_index=True)
    order = pd.Index(customers["customer_id"]).get_indexer(scores["customer_id"])
    return customers.take(order).reset_index(drop=True), profiles.take(order).reset_index(drop=True)
