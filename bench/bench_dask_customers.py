"""What the Dask build's one approximate reduce step costs: K-Means fitted on the customers with the
smallest seeded hashes (predictor/engine/dask_customers.py, `KMEANS_SAMPLE`) against a fit on everyone,
as agreement of the labels (adjusted Rand index; 1 = the same segmentation) and fit time, on a real
build's customers table and on N customers bootstrapped from it (seed 7). Tiers, lifecycle, at-risk and
RFM are exact reduces (tests/test_dask_customers.py checks them equal to one process's).

    .venv/bin/python bench/bench_dask_customers.py --customers <built data dir>/current/customers.parquet \
        --samples 1000,2000 --bootstrap 1000000 --bootstrap-samples 50000,200000
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from predictor.customers.clusters import KMEANS_INPUTS, fit_kmeans, parse_k_range  # noqa: E402
from predictor.customers.population import population_cadence  # noqa: E402
from predictor.model.sampling import smallest_hash_rows  # noqa: E402

SEED = 42
K_RANGE = range(3, 9)  # --k overrides


def compare(customers: pd.DataFrame, samples: list[int], label: str) -> None:
    cadence = population_cadence(customers)
    started = time.perf_counter()
    full = fit_kmeans(customers, K_RANGE, seed=SEED, cadence=cadence)
    full_seconds = time.perf_counter() - started
    labels = full.labels(customers)
    print(f"{label}: {len(customers):,} customers, fit on everyone: k={full.k}, {full_seconds:.1f} s")
    for n in samples:
        started = time.perf_counter()
        sample = smallest_hash_rows(customers.set_index("customer_id")[KMEANS_INPUTS], n, SEED).reset_index()
        fit = fit_kmeans(sample, K_RANGE, seed=SEED, cadence=cadence)
        seconds = time.perf_counter() - started
        ari = adjusted_rand_score(labels, fit.labels(customers))
        print(f"| {label} | {len(customers):,} | {n:,} | {fit.k} (all: {full.k}) | {ari:.3f} | {seconds:.1f} s "
              f"({full_seconds / seconds:.1f}x faster) |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", required=True, help="a built customers.parquet")
    parser.add_argument("--samples", default="1000,2000")
    parser.add_argument("--bootstrap", type=int, default=1_000_000)
    parser.add_argument("--bootstrap-samples", default="50000,200000")
    parser.add_argument("--k", default="3-8", help="the K-Means range, as VALUEDESK_KMEANS_CLUSTERS")
    args = parser.parse_args()
    global K_RANGE
    K_RANGE = parse_k_range(args.k)
    print("command:", shlex.join([".venv/bin/python", *sys.argv]))
    print(f"load average before: {os.getloadavg()}")
    real = pd.read_parquet(args.customers, columns=["customer_id", *KMEANS_INPUTS])
    print("| table | customers | sample | k | ARI vs everyone | sample fit |\n|---|---|---|---|---|---|")
    compare(real, [int(x) for x in args.samples.split(",")], "real")
    if args.bootstrap:
        rows = np.random.default_rng(7).integers(0, len(real), args.bootstrap)
        boot = real.iloc[rows].reset_index(drop=True)
        boot["customer_id"] = [f"B{i:08d}" for i in range(len(boot))]
        compare(boot, [int(x) for x in args.bootstrap_samples.split(",")], "bootstrapped")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
