"""Real Online Retail data, loaded and scored once per test process, for the tiers/profiles/build tests.

The sample keeps every line of one customer in four (by customer id) from the real file, so the
cleaning, scoring, tiers and profiles all see real histories at a quarter of the cost.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pandas as pd

from predictor.settings import SHARED_DATA, Settings

ONLINE_RETAIL = SHARED_DATA / "online_retail" / "online_retail.csv.gz"
_TMP = Path(tempfile.mkdtemp(prefix="vd-tiers-"))


@functools.lru_cache(maxsize=None)
def sample_csv(modulo: int = 4) -> Path:
    raw = pd.read_csv(ONLINE_RETAIL, dtype=str, keep_default_na=False)
    ids = pd.to_numeric(raw["CustomerID"], errors="coerce")
    keep = ids.notna() & (ids.fillna(0).astype("int64") % modulo == 0)
    path = _TMP / f"online_retail_1in{modulo}.csv.gz"
    raw[keep].to_csv(path, index=False)
    return path


def make_settings(data_dir: Path | None = None, **overrides) -> Settings:
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="vd-data-", dir=_TMP))
    return Settings(data_dir=data_dir, threads=1, **overrides)


@functools.lru_cache(maxsize=None)
def loaded_sample() -> pd.DataFrame:
    from predictor.data.load import load_transactions

    return load_transactions(sample_csv(), "online_retail", settings=make_settings()).transactions


@functools.lru_cache(maxsize=None)
def scored_sample() -> tuple[pd.DataFrame, pd.DataFrame, Settings]:
    """(transactions, scores, settings) where settings.data_dir holds the trained model."""
    from predictor.model.scoring import score_customers

    settings = make_settings()
    tx = loaded_sample()
    scores, _ = score_customers(tx, settings, fast_config(settings))
    return tx, scores, settings


def fast_config(settings: Settings):
    from predictor.model.estimators import TrainingConfig

    return TrainingConfig.fast(settings.horizon_days)
