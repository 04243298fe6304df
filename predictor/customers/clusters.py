"""K-Means clusters of customers by behaviour (recency, orders, spend, order value, tenure, cadence,
trend), k chosen by the best silhouette score; an optional build step beside the rule-based tiers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel

from predictor.customers.tiers import TierConfigError, cadence_days


KMEANS_FEATURES = ["recency_days", "orders", "historical_value", "aov", "tenure_days", "cadence_days", "trend"]


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


def _behaviour_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    feats = pd.DataFrame(index=frame.index)
    feats["recency_days"] = np.log1p(frame["recency_days"].astype("float64").clip(lower=0))
    feats["orders"] = np.log1p(frame["orders"].astype("float64"))
    feats["historical_value"] = np.log1p(frame["historical_value"].astype("float64").clip(lower=0))
    feats["aov"] = np.log1p(frame["aov"].astype("float64").clip(lower=0))
    feats["tenure_days"] = np.log1p(frame["tenure_days"].astype("float64").clip(lower=0))
    feats["cadence_days"] = np.log1p(cadence_days(frame))
    feats["trend"] = np.log1p(frame["trend"].astype("float64").clip(lower=0, upper=10).fillna(1.0))
    return feats


def _cluster_name(med: pd.Series, pop: pd.Series) -> str:
    parts = []
    parts.append("recent" if med["recency_days"] <= pop["recency_days"] else "lapsed")
    parts.append("frequent" if med["orders"] > pop["orders"] else "occasional")
    parts.append("high-spend" if med["historical_value"] > pop["historical_value"] else "low-spend")
    return ", ".join(parts)


def kmeans_segments(frame: pd.DataFrame, k_range: range | str = range(3, 9), seed: int = 42,
                    sample_size: int = 3000, threads: int = 1) -> KMeansResult:
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
    feats = _behaviour_matrix(frame)
    x = StandardScaler().fit_transform(feats.to_numpy())
    best: tuple[float, int, np.ndarray] | None = None
    by_k: dict[int, float] = {}
    for k in ks:
        # Unlimited BLAS/OpenMP threads on a small shared machine make this 100x slower, not faster.
        with threadpool_limits(limits=threads):
            labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
            score = float(silhouette_score(x, labels, sample_size=min(sample_size, len(x)), random_state=seed))
        by_k[k] = round(score, 4)
        if best is None or score > best[0]:
            best = (score, k, labels)
    assert best is not None
    score, k, labels = best
    # Renumber clusters by median historical value (0 = most valuable) so ids are stable to read.
    raw = pd.Series(labels, index=frame.index)
    rank = frame["historical_value"].groupby(raw).median().sort_values(ascending=False)
    relabel = {old: new for new, old in enumerate(rank.index)}
    labels_s = raw.map(relabel).astype("int64")
    cols = ["recency_days", "orders", "historical_value", "aov"]
    pop = frame[cols].median()
    clusters = []
    for c, grp in frame[cols].groupby(labels_s):
        med = grp.median()
        clusters.append({"cluster": int(c), "size": int(len(grp)), "name": _cluster_name(med, pop),
                         **{f"median_{col}": round(float(med[col]), 2) for col in cols}})
    return KMeansResult(k=k, silhouette=round(score, 4), silhouette_by_k=by_k, labels=labels_s, clusters=clusters)
