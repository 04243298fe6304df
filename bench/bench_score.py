"""Scoring speed and memory at scale, against lifetimes' BG/NBD + Gamma-Gamma on the same data.

Generates N customers (default 1M) by bootstrapping real Online Retail customers' order histories
(seeded), then times features + predict with a model trained on the real data, and lifetimes'
BG/NBD + Gamma-Gamma fit + predict on the same synthetic population, in the same run. Also times
rescoring one customer after a new order with the saved model.

    .venv/bin/python bench/bench_score.py --customers 1000000
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predictor.baselines import BGNBDGammaGamma, rfm_summary  # noqa: E402
from predictor.data import load_transactions  # noqa: E402
from predictor.artifacts import load_model  # noqa: E402
from predictor.features import CustomerHistory  # noqa: E402
from predictor.models import TrainingConfig  # noqa: E402
from predictor.scoring import CustomerScorer, history_from_transactions, score_customers  # noqa: E402
from predictor.settings import Settings  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bootstrap_orders(orders: pd.DataFrame, n_customers: int, seed: int) -> pd.DataFrame:
    """N synthetic customers, each a copy of a randomly drawn real customer's full order history."""
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(orders["customer_id"])
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, len(codes)])
    drawn = rng.integers(0, len(starts), n_customers)
    rep_counts = counts[drawn]
    row_idx = np.repeat(starts[drawn], rep_counts) + (np.arange(rep_counts.sum()) - np.repeat(np.cumsum(rep_counts) - rep_counts, rep_counts))
    out = orders.iloc[row_idx][["timestamp", "amount", "quantity", "is_cancellation"]].reset_index(drop=True)
    new_ids = np.repeat(np.arange(n_customers), rep_counts)
    out.insert(0, "customer_id", pd.array(np.char.add("S", new_ids.astype(str)), dtype="string"))
    out.insert(1, "order_id", pd.array(np.arange(len(out)).astype(str), dtype="string"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="Reuse a saved model (a data dir's models/ folder) instead of training one.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        loaded = load_transactions(None, "online_retail", settings=settings)
        started = time.perf_counter()
        # Orders only, like the synthetic population below (no product lines at 1M scale).
        tx = loaded.transactions.drop(columns=["product_id", "product_name", "category", "country"])
        if args.model_dir:
            bundle = load_model(args.model_dir)
            print(f"loaded model {bundle.metadata['version']} from {args.model_dir}")
        else:
            _, bundle = score_customers(tx, settings, TrainingConfig(horizon_days=180), loaded.fingerprint)
            print(f"trained on real Online Retail ({tx['customer_id'].nunique():,} customers) in "
                  f"{time.perf_counter() - started:.1f} s")
        model = bundle.model
        real = history_from_transactions(tx).orders

        time_rescoring(bundle, settings, tx)
        if args.customers == 0:
            return
        synthetic = bootstrap_orders(real, args.customers, args.seed)
        history = CustomerHistory(orders=synthetic, lines=None, data_start=pd.Timestamp(bundle.metadata["data_range"]["start"]))
        as_of = history.end
        print(f"synthetic population: {args.customers:,} customers, {len(synthetic):,} orders "
              f"(bootstrapped from real customers, seed {args.seed}); RSS so far {peak_rss_mib():,.0f} MiB")

        started = time.perf_counter()
        features = model.features_at(history, as_of, bg=model.scoring_bg)
        feature_seconds = time.perf_counter() - started
        started = time.perf_counter()
        predictions = model.predict_features(features)
        predict_seconds = time.perf_counter() - started
        ours = feature_seconds + predict_seconds
        rss_ours = peak_rss_mib()
        print(f"ValueDesk features + predict: {ours:.1f} s ({feature_seconds:.1f} + {predict_seconds:.1f}), "
              f"{len(predictions) / ours:,.0f} customers/s, peak RSS {rss_ours:,.0f} MiB")

        started = time.perf_counter()
        summary = rfm_summary(history, as_of)
        bg = BGNBDGammaGamma().fit(summary)
        bg.predict(summary, 180)
        theirs = time.perf_counter() - started
        print(f"lifetimes BG/NBD + Gamma-Gamma fit + predict on the same {len(summary):,} customers: {theirs:.1f} s "
              f"({len(summary) / theirs:,.0f} customers/s), fitted with {bg.fitted_with}")
        print(f"ratio (lifetimes time / ValueDesk time): {theirs / ours:.2f}x")


def time_rescoring(bundle, settings, tx) -> None:
    scorer = CustomerScorer(bundle, settings)
    own = tx[tx["customer_id"] == "12347"]
    scorer.score_orders(own, customer_id="12347")  # warm-up
    timings = []
    for day in range(20):
        new_order = pd.DataFrame({"order_id": [f"N{day}"], "timestamp": [pd.Timestamp("2011-12-09") - pd.Timedelta(days=day)],
                                  "amount": [250.0], "quantity": [10.0], "is_cancellation": [False]})
        started = time.perf_counter()
        scorer.score_orders(pd.concat([own, new_order], ignore_index=True), customer_id="12347")
        timings.append((time.perf_counter() - started) * 1000)
    print(f"rescore one customer after a new order: median {np.median(timings):.1f} ms, "
          f"p95 {np.percentile(timings, 95):.1f} ms (20 runs, saved model, no retraining)")


if __name__ == "__main__":
    main()
