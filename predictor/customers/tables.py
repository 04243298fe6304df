"""The customers and profiles tables from the scores: tiers, lifecycle, at-risk flag, RFM, value at risk,
K-Means clusters, favourite categories and products, suggestions, profile texts.

One implementation for both engines: the local build calls these on the whole population; the Dask
build (predictor/engine/dask_customers.py) calls them per customer bucket with the population's figures
(`PopulationStats`) and a K-Means fit computed once, so each bucket's rows are the rows one process makes.
"""

from __future__ import annotations

import pandas as pd

from predictor.customers.population import PopulationStats
from predictor.customers.profiles import build_profiles, customer_products
from predictor.customers.tiers import LifecycleConfig, TierConfig, apply_tiers

SUGGESTIONS = 5  # products suggested per customer in the customers table


def tier_table(scores: pd.DataFrame, tiers: TierConfig, lifecycle: LifecycleConfig | None = None,
               stats: PopulationStats | None = None, kmeans=None) -> pd.DataFrame:
    """The scores plus every rule-based column, and `cluster` when given a fitted segmentation
    (predictor.customers.clusters.KMeansFit)."""
    customers = apply_tiers(scores, tiers, lifecycle, stats)
    if kmeans is not None:
        customers["cluster"] = kmeans.labels(customers).astype("int64")
    return customers


def profile_table(customers: pd.DataFrame, lines: pd.DataFrame, suggestions: pd.Series | None,
                  currency: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(customers with favourites, suggestions and profile text; the profiles table) for the customers
    whose lines are `lines`. `suggestions`: customer id -> product names (None: no suggestions)."""
    products = customer_products(lines, customers["customer_id"].astype(str))
    customers = customers.merge(products, on="customer_id", how="left")
    customers["suggested_products"] = ([list(suggestions.get(str(c), [])) for c in customers["customer_id"]]
                                       if suggestions is not None else [[] for _ in range(len(customers))])
    profiles = build_profiles(customers, currency)
    customers["profile_text"] = profiles["profile_text"].to_numpy()
    return customers, profiles
