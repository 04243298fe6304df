"""How a filtered query is ranked: exactly over the selection while that is cheap, through Chroma's
HNSW (over-fetching by 1/selectivity and post-filtering) when it is not. The thresholds and why they
are where they are: predictor/search/index.py and README "Profile search"."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from predictor.customers.audience import Condition
from predictor.search.columns import ColumnStore


@dataclass(frozen=True)
class SearchThresholds:
    scan_max: int  # up to this many profiles every query is ranked exactly
    exact_max: int  # above it, selections up to this size still are
    overfetch: float  # HNSW over-fetch factor on top of 1/selectivity
    ann_max: int  # widen HNSW up to this k before ranking the selection exactly (no faiss)


def rank(cols: ColumnStore, vector: np.ndarray, conditions: list[Condition], limit: int,
         ann: Callable[[int], np.ndarray], limits: SearchThresholds) -> tuple[np.ndarray, np.ndarray, str]:
    """(positions, scores, plan name) of the `limit` best rows passing `conditions`; `ann(k)` asks
    Chroma's HNSW for the k nearest rows (unfiltered)."""
    n = len(cols)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), "empty"
    # Up to scan_max profiles even a full code scan is cheap, so every query is ranked exactly:
    # on the bench's profiles Chroma's HNSW found 87-92% of the true top 10 at 100k, 51% at 1M
    # (templated profile texts make tight clusters of near-identical vectors).
    scan_all = n <= limits.scan_max and cols.exact_is_cheap()
    if not conditions and not scan_all:
        return (*cols.exact_scores(vector, ann(min(limit, n)), limit), "ann")
    selection = cols.selection(conditions)
    if selection.count == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), "empty"
    if selection.count <= limits.exact_max or selection.count <= limit or scan_all:
        return cols.top(vector, selection, limit)
    k = int(math.ceil(limit * n / selection.count * limits.overfetch)) + 10
    while True:
        k = min(k, n)
        positions = ann(k)
        kept = positions[selection.mask[positions]]
        if len(kept) >= limit or k >= n:
            return (*cols.exact_scores(vector, kept, limit), f"ann+postfilter(k={k})")
        if k >= limits.ann_max or cols.exact_is_cheap():
            # Too few of the nearest profiles pass the filter. The filter fields are written
            # into the profile text, so they correlate with the vector and widening k rarely
            # pays (at 1M it took a 10%-selective filter to p95 150 ms); ranking the selection
            # exactly costs at most a full code scan (~25 ms per million profiles on 2 threads).
            positions, scores, plan = cols.top(vector, selection, limit)
            return positions, scores, f"{plan}-fallback"
        k *= 4
