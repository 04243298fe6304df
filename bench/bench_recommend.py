"""Speed of product suggestions, campaign planning and audience export.

    .venv/bin/python bench/bench_recommend.py [--customers 1000000] [--skip-eval]

1. Product suggestions on the real Online Retail log: the hold-out evaluation (cutoff 2011-09-09,
   90 days, k=10) and batch throughput of `recommend` for every customer.
2. Campaign planning on N customers bootstrapped (seeded) from the customers table: the built one at
   settings.customers_path when it exists, otherwise the real log tiered by predictor.customers.tiers over the
   test suite's stand-in scores. Plans without and with a budget, then streams the audience to CSV.
Prints seconds, rows per second and peak RSS after each step.
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

from predictor.campaigns.catalogue import load_catalogue  # noqa: E402
from predictor.campaigns.export import audience_rows, write_audience_csv  # noqa: E402
from predictor.campaigns.planning import plan_campaigns  # noqa: E402
from predictor.data.load import load_transactions  # noqa: E402
from predictor.campaigns.products import ProductRecommender, evaluate_recommendations  # noqa: E402
from predictor.settings import Settings  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step(label: str, start: float, rows: int | None = None) -> None:
    took = time.perf_counter() - start
    rate = f", {rows / took:,.0f} rows/s" if rows else ""
    print(f"{label:<44} {took:8.2f} s{rate}  (peak RSS {peak_rss_mb():,.0f} MB)", flush=True)


def base_customers(tx: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    path = settings.customers_path
    if path.exists():
        print(f"customers table: {path}")
        return pd.read_parquet(path)
    from predictor.customers.tiers import apply_tiers
    from tests.test_campaigns import _stand_in_scores

    print("customers table: real log, predictor.customers.tiers over stand-in scores (no build found)")
    return apply_tiers(_stand_in_scores(tx))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--budget", type=float, default=50_000.0)
    ap.add_argument("--skip-eval", action="store_true")
    args = ap.parse_args()

    settings = Settings()
    t = time.perf_counter()
    tx = load_transactions(None, "online_retail", settings=settings).transactions
    step(f"load + clean Online Retail ({len(tx):,} lines)", t)

    if not args.skip_eval:
        t = time.perf_counter()
        ev = evaluate_recommendations(tx, "2011-09-09", 90, k=10)
        step("evaluate (cutoff 2011-09-09, 90 d, k=10)", t)
        print(f"  customers {ev.customers:,}: hit@10 {ev.model.hit_rate:.3f} vs popular {ev.popular.hit_rate:.3f}; "
              f"recall@10 {ev.model.recall:.3f} vs popular {ev.popular.recall:.3f}; "
              f"precision@10 {ev.model.precision:.3f} vs {ev.popular.precision:.3f}")
    t = time.perf_counter()
    rec = ProductRecommender().fit(tx)
    step(f"fit on all history ({len(rec.customers):,} x {len(rec.items):,})", t)
    t = time.perf_counter()
    lists = rec.recommend(rec.customers, k=10)
    step(f"recommend k=10 for {len(lists):,} customers", t, len(lists))

    base = base_customers(tx, settings)
    rng = np.random.default_rng(42)
    big = base.iloc[rng.integers(0, len(base), args.customers)].reset_index(drop=True)
    big["customer_id"] = pd.array([f"B{i:07d}" for i in range(len(big))], dtype="string")
    catalogue = load_catalogue(settings)
    t = time.perf_counter()
    plan = plan_campaigns(big, catalogue=catalogue, settings=settings)
    step(f"plan, no budget ({len(big):,} customers)", t, len(big))
    print(f"  targeted {plan.targeted:,} in {len(plan.campaigns)} campaigns, net {plan.expected_net_value:,.0f}")
    t = time.perf_counter()
    budgeted = plan_campaigns(big, budget=args.budget, catalogue=catalogue, settings=settings)
    step(f"plan, budget {args.budget:,.0f}", t, len(big))
    print(f"  targeted {budgeted.targeted:,}, cost {budgeted.total_cost:,.2f}, net {budgeted.expected_net_value:,.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        n = write_audience_csv(audience_rows(plan, big), Path(tmp) / "audience.csv")
        step(f"stream audience CSV ({n:,} rows)", t, n)


if __name__ == "__main__":
    main()
