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
    ids = pd.Index(customer_ids).astype("string").to_numpy(dtype=object)
    hashed = pd.util.hash_array(ids, hash_key=f"vd{random_seed:014d}"[-16:])
    return hashed.astype(np.float64) / _HASH_SPACE < share


def training_sample(customer_ids, share: float, random_seed: int) -> pd.Index:
    """About `share` of `customer_ids` by the seeded hash (all of them at share 1)."""
    ids = pd.Index(pd.unique(pd.Index(customer_ids).astype("string")))
    return ids if share >= 1 else ids[in_training_sample(ids, share, random_seed)]
