"""K-Means clusters of customers by behaviour (recency, orders, spend, order value, tenure, cadence,
trend), k chosen by the best silhouette score; an optional build step beside the rule-based tiers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel

from predictor.customers.tiers import TierConfigError, cadence_days, population_cadence


KMEANS_FEATURES = ["recency_days", "orders", "historical_value", "aov", "tenure_days", "cadence_days", "trend"]
# The customers-table columns those features are computed from.
KMEANS_INPUTS = ["recency_days", "orders", "historical_value", "aov", "tenure_days", "mean_gap_days", "trend"]


class KMeansResult(BaseModel):
    model_config = {"arbitrary_types_allowed": True}

    k: int
    silhouette: float
    silhouette_by_k: dict[int, float]
    labels: pd.Series  # int cluster per customer, aligned with the input frame
    clusters: list[dict]  # per cluster: size, medians of the behaviour features, a short name


def parse_k_range(text: str) -> range:
    lo, _, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise TierConfigError(f"bad K-Means range '{text}': expected 'min-max', e.g. 3-8") from None
    if a < 2 or b < a:
        raise TierConfigError(f"bad K-Means range '{text}': need 2 <= min <= max")
    return range(a, b + 1)


def _behaviour_matrix(frame: pd.DataFrame, cadence: float | None = None) -> pd.DataFrame:
    """The log behaviour features; `cadence` is the population's (default: that of `frame`)."""
    feats = pd.DataFrame(index=frame.index)
    feats["recency_days"] = np.log1p(frame["recency_days"].astype("float64").clip(lower=0))
    feats["orders"] = np.log1p(frame["orders"].astype("float64"))
    feats["historical_value"] = np.log1p(frame["historical_value"].astype("float64").clip(lower=0))
    feats["aov"] = np.log1p(frame["aov"].astype("float64").clip(lower=0))
    feats["tenure_days"] = np.log1p(frame["tenure_days"].astype("float64").clip(lower=0))
    feats["cadence_days"] = np.log1p(cadence_days(frame, population=cadence))
    feats["trend"] = np.log1p(frame["trend"].astype("float64").clip(lower=0, upper=10).fillna(1.0))
    return feats


def _cluster_name(med: pd.Series, pop: pd.Series) -> str:
    parts = []
    parts.append("recent" if med["recency_days"] <= pop["recency_days"] else "lapsed")
    parts.append("frequent" if med["orders"] > pop["orders"] else "occasional")
    parts.append("high-spend" if med["historical_value"] > pop["historical_value"] else "low-spend")
    return ", ".join(parts)


@dataclass
class KMeansFit:
    """A fitted segmentation that labels any customers of the population it was fitted on: the whole
    population in one process, or a seeded sample of it whose labels a partitioned engine applies bucket
    by bucket (predictor/engine/dask_customers.py)."""

    scaler: object
    model: object
    relabel: dict[int, int]
    cadence: float
    k: int
    silhouette: float
    silhouette_by_k: dict[int, float]

    def labels(self, frame: pd.DataFrame, threads: int = 1) -> pd.Series:
        from threadpoolctl import threadpool_limits

        x = self.scaler.transform(_behaviour_matrix(frame, self.cadence).to_numpy())
        with threadpool_limits(limits=threads):
            raw = self.model.predict(x)
        return pd.Series(raw, index=frame.index).map(self.relabel).astype("int64")


def fit_kmeans(frame: pd.DataFrame, k_range: range | str = range(3, 9), seed: int = 42, sample_size: int = 3000,
               threads: int = 1, cadence: float | None = None) -> KMeansFit:
    """K-Means on standardised (log) behaviour features, k chosen by the best silhouette score.

    Silhouette is computed on a seeded sample of at most `sample_size` customers (it is
    quadratic in the number of points).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    ks = parse_k_range(k_range) if isinstance(k_range, str) else k_range
    if len(frame) <= max(ks):
        raise TierConfigError(f"K-Means needs more customers than clusters: {len(frame)} customers, k up to {max(ks)}")
    cadence = cadence if cadence is not None else population_cadence(frame)
    scaler = StandardScaler().fit(_behaviour_matrix(frame, cadence).to_numpy())
    x = scaler.transform(_behaviour_matrix(frame, cadence).to_numpy())
    best = None
    by_k: dict[int, float] = {}
    for k in ks:
        # Unlimited BLAS/OpenMP threads on a small shared machine make this 100x slower, not faster.
        with threadpool_limits(limits=threads):
            model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
            score = float(silhouette_score(x, model.labels_, sample_size=min(sample_size, len(x)), random_state=seed))
        by_k[k] = round(score, 4)
        if best is None or score > best[0]:
            best = (score, k, model)
    score, k, model = best
    # Renumber clusters by median historical value (0 = most valuable) so ids are stable to read.
    raw = pd.Series(model.labels_, index=frame.index)
    rank = frame["historical_value"].groupby(raw).median().sort_values(ascending=False)
    relabel = {int(old): new for new, old in enumerate(rank.index)}
    return KMeansFit(scaler=scaler, model=model, relabel=relabel, cadence=cadence, k=k, silhouette=round(score, 4),
                     silhouette_by_k=by_k)


def cluster_summaries(frame: pd.DataFrame, labels: pd.Series) -> list[dict]:
    """Per cluster: size, medians of the behaviour features, a short name."""
    cols = ["recency_days", "orders", "historical_value", "aov"]
    pop = frame[cols].median()
    clusters = []
    for c, grp in frame[cols].groupby(labels):
        med = grp.median()
        clusters.append({"cluster": int(c), "size": int(len(grp)), "name": _cluster_name(med, pop),
                         **{f"median_{col}": round(float(med[col]), 2) for col in cols}})
    return clusters


def kmeans_segments(frame: pd.DataFrame, k_range: range | str = range(3, 9), seed: int = 42,
                    sample_size: int = 3000, threads: int = 1) -> KMeansResult:
    """`fit_kmeans` on the whole of `frame`, and its labels and clusters."""
    fit = fit_kmeans(frame, k_range, seed, sample_size, threads)
    labels = fit.labels(frame, threads)
    return KMeansResult(k=fit.k, silhouette=fit.silhouette, silhouette_by_k=fit.silhouette_by_k, labels=labels,
                        clusters=cluster_summaries(frame, labels))
