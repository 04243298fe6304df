"""Scoring speed and memory at scale, against lifetimes' BG/NBD + Gamma-Gamma on the same data.

Generates N customers (default 1M) by bootstrapping real Online Retail customers' order histories
(seeded), then times features + predict with a model trained on the real data, and lifetimes'
BG/NBD + Gamma-Gamma fit + predict on the same synthetic population, in the same run. First it times
rescoring one customer after a new order with the saved model: the one-customer fast path against
the population path on the same 200 real customers (`--customers 0` stops there).

    .venv/bin/python bench/bench_score.py --customers 1000000
    .venv/bin/python bench/bench_score.py --customers 0 --model-dir .valuedesk/models
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predictor.model.baselines import BGNBDGammaGamma, rfm_summary  # noqa: E402
from predictor.data.load import load_transactions  # noqa: E402
from predictor.model.artifacts import load_model  # noqa: E402
from predictor.model.features import CustomerHistory  # noqa: E402
from predictor.model.estimators import TrainingConfig  # noqa: E402
from predictor.model.scoring import CustomerScorer, history_from_transactions, score_customers  # noqa: E402
from predictor.settings import Settings  # noqa: E402


def load_average() -> str:
    """The machine is shared: every timing line says how busy it was (1/5/15-minute load averages)."""
    return "load average {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(), os.cpu_count())


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
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}; {load_average()}")

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

        time_rescoring(bundle, settings, loaded.transactions)
        if args.customers == 0:
            return
        real = history_from_transactions(tx).orders
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
        print(f"ValueDesk features + predict: {ours:.1f} s total (features {feature_seconds:.1f} s + predict "
              f"{predict_seconds:.1f} s), {len(predictions) / ours:,.0f} customers/s, peak RSS {rss_ours:,.0f} MiB; "
              f"{load_average()}")

        started = time.perf_counter()
        summary = rfm_summary(history, as_of)
        summary_seconds = time.perf_counter() - started
        bg = BGNBDGammaGamma().fit(summary)
        fit_seconds = time.perf_counter() - started - summary_seconds
        bg.predict(summary, 180)
        theirs = time.perf_counter() - started
        print(f"lifetimes BG/NBD + Gamma-Gamma fit + predict on the same {len(summary):,} customers: {theirs:.1f} s "
              f"(RFM summary {summary_seconds:.1f} s, the same columnar pass as ours + fit {fit_seconds:.1f} s + "
              f"predict {theirs - summary_seconds - fit_seconds:.1f} s; {len(summary) / theirs:,.0f} customers/s), "
              f"fitted with {bg.fitted_with}")
        print(f"ratio (lifetimes time / ValueDesk time): {theirs / ours:.2f}x; {load_average()}")


def time_rescoring(bundle, settings, lines: pd.DataFrame, n_customers: int = 200, seed: int = 7) -> None:
    """Rescore real customers after a new order: the fast path (`score_orders`) and the population path it
    replaced (`score_orders_population`, the baseline) on the same customers, interleaved so load hits both."""
    scorer = CustomerScorer(bundle, settings)
    rng = np.random.default_rng(seed)
    buyers = lines.loc[~lines["is_cancellation"] & ~lines["is_outlier"] & (lines["amount"] > 0), "customer_id"].unique()
    chosen = set(rng.choice(buyers, n_customers, replace=False))
    end = lines["timestamp"].max().normalize()
    histories = []
    for customer, own in lines[lines["customer_id"].isin(chosen)].groupby("customer_id", observed=True):
        new = own.tail(1).copy()  # the new order: the customer's last line, re-dated and re-priced
        new["order_id"] = f"N{customer}"
        new["timestamp"] = end - pd.Timedelta(days=int(rng.integers(0, 30))) + pd.Timedelta(hours=11)
        new["amount"], new["is_cancellation"], new["is_outlier"] = float(rng.uniform(5, 900)), False, False
        histories.append((str(customer), pd.concat([own, new], ignore_index=True)))
    print(f"rescore one customer after a new order: {len(histories)} real Online Retail customers (seed {seed}), "
          f"saved model, no retraining; wall time per call")
    for label, drop in (("with product lines", []), ("orders only", ["product_id", "product_name", "category", "country"])):
        cases = [(customer, orders.drop(columns=drop)) for customer, orders in histories]
        scorer.score_orders(*cases[0][::-1])  # warm-up
        scorer.score_orders_population(*cases[0][::-1])
        fast, population, gap = [], [], 0.0
        for customer, orders in cases:
            started = time.perf_counter()
            quick = scorer.score_orders(orders, customer_id=customer)
            fast.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            slow = scorer.score_orders_population(orders, customer_id=customer)
            population.append((time.perf_counter() - started) * 1000)
            gap = max(gap, abs(quick["predicted_value"] - slow["predicted_value"]) / max(abs(slow["predicted_value"]), 1e-9))
        fast_p50, fast_p95 = np.median(fast), np.percentile(fast, 95)
        pop_p50, pop_p95 = np.median(population), np.percentile(population, 95)
        print(f"  {label}: fast path median {fast_p50:.1f} ms, p95 {fast_p95:.1f} ms; "
              f"population path (baseline) median {pop_p50:.1f} ms, p95 {pop_p95:.1f} ms; "
              f"ratio (population / fast) {pop_p50 / fast_p50:.1f}x median, {pop_p95 / fast_p95:.1f}x p95; "
              f"largest relative difference in predicted value {gap:.1e}; "
              f"target median and p95 < 50 ms {'met' if max(fast_p50, fast_p95) < 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
