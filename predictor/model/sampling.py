"""Which customers a model trains on when the data is too big to train on all of them (issue 18:
training on one worker). The sample is a seeded hash of the customer id, not a random draw: the same id
is in or out on every machine, in every partition and in every rerun, so a partitioned engine draws the
same sample without a shuffle, and a customer's rows at all training cutoffs come in or out together
(a per-row sample would leak a customer's later behaviour into rows validated against them)."""

from __future__ import annotations

import numpy as np
import pandas as pd

_HASH_SPACE = float(2**64)


def in_training_sample(customer_ids, share: float, random_seed: int) -> np.ndarray:
    """True for the ids in a `share` (0-1] sample, by a seeded 64-bit hash of each id."""
    if not 0 < share <= 1:
        raise ValueError(f"The training sample share must be in (0, 1], got {share}.")
    return customer_hashes(customer_ids, random_seed).astype(np.float64) / _HASH_SPACE < share


def training_sample(customer_ids, share: float, random_seed: int) -> pd.Index:
    """About `share` of `customer_ids` by the seeded hash (all of them at share 1)."""
    ids = pd.Index(pd.unique(pd.Index(customer_ids).astype("string")))
    return ids if share >= 1 else ids[in_training_sample(ids, share, random_seed)]


def customer_hashes(customer_ids, random_seed: int) -> np.ndarray:
    """The seeded 64-bit hash of each id (the one `in_training_sample` thresholds)."""
    ids = pd.Index(customer_ids).astype("string").to_numpy(dtype=object)
    # categorize=False: the same hashes, without first factorizing ids that are mostly unique (8x faster).
    return pd.util.hash_array(ids, hash_key=f"vd{random_seed:014d}"[-16:], categorize=False)


def smallest_hash_rows(frame: pd.DataFrame, k: int, random_seed: int) -> pd.DataFrame:
    """The `k` rows (indexed by customer id) with the smallest seeded hashes, in hash order (ties by id);
    all rows, in customer id order, when there are at most `k`.

    A sample that does not depend on how the population is split: the k smallest of the union are the k
    smallest of each part's own k smallest, so a partitioned engine reduces to the same rows, in the same
    order, as one process (the order matters: a fit sums over its rows in floating point). A population
    of at most k keeps the id order the one-process tables already have, so its fit is unchanged."""
    if len(frame) <= k:
        return frame if frame.index.is_monotonic_increasing else frame.sort_index()
    hashes = customer_hashes(frame.index, random_seed)
    candidates = np.arange(len(frame))
    if len(frame) > k:  # only the k smallest (and any ties with the k-th) are sorted
        kth = np.partition(hashes, k - 1)[k - 1]
        candidates = np.flatnonzero(hashes <= kth)
    ids = pd.Index(frame.index[candidates]).astype("string").to_numpy(dtype=object)
    order = candidates[np.lexsort((ids, hashes[candidates]))][:k]
    return frame.iloc[order]
