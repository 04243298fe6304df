"""`score` at scale on both engines: time, customers/s and peak memory of all processes together.

Synthetic customers are bootstrapped from real Online Retail customers' order histories (seeded, as in
bench_score.py) and written straight into customer buckets of 250k customers (~1.2M orders) each, so no
process ever holds the whole log. Each measurement runs in its own child process; the parent samples the
resident memory of the child and all its descendants (the Dask scheduler, nannies and workers) every
0.2 s and reports the largest sum.
- dask: `score` from the buckets on a LocalCluster of 2 worker processes (3 GiB each), training on a
  ~20k-customer seeded-hash sample on one worker.
- local: the same buckets read into one process and scored by the local engine with the same training
  sample (it needs the whole log in memory: run it only where that fits).
Both train with the fast profile (scoring, not training, is what grows with the population).

    .venv/bin/python bench/bench_dask.py --customers 1000000,2000000,5000000,10000000 --local 1000000,2000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CUSTOMERS_PER_BUCKET = 250_000
TRAINING_CUSTOMERS = 20_000


def load_average() -> str:
    return "load average {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(), os.cpu_count())


def write_synthetic_buckets(root: Path, buckets: int, per_bucket: int, seed: int) -> None:
    """`buckets` buckets of bootstrapped customers (ids unique across buckets), with the bucket set's metadata."""
    from bench_score import bootstrap_orders
    from predictor.data.load import load_transactions
    from predictor.engine.buckets import BucketSet, bucket_path, write_bucket_meta
    from predictor.model.scoring import history_from_transactions
    from predictor.settings import Settings

    loaded = load_transactions(None, "online_retail", settings=Settings())
    tx = loaded.transactions.drop(columns=["product_id", "product_name", "category", "country"])
    real = history_from_transactions(tx).orders
    root.mkdir(parents=True, exist_ok=True)
    lines = 0
    for number in range(buckets):
        orders = bootstrap_orders(real, per_bucket, seed + number)
        orders["customer_id"] = f"B{number}-" + orders["customer_id"]
        orders["order_id"] = f"B{number}-" + orders["order_id"]
        orders["is_outlier"] = False
        orders.to_parquet(bucket_path(root, number), index=False)
        lines += len(orders)
    first, last = real["timestamp"].min().normalize(), real["timestamp"].max().normalize()
    write_bucket_meta(root, BucketSet(root=root, buckets=buckets, lines=lines, customers=buckets * per_bucket,
                                      first_day=str(first.date()), last_day=str(last.date()),
                                      columns=("customer_id", "order_id", "timestamp", "amount", "quantity",
                                               "is_cancellation", "is_outlier")))


def subset(root: Path, buckets: int, target: Path) -> Path:
    """The first `buckets` buckets as a bucket set of their own (links, no copies)."""
    from predictor.engine.buckets import BucketSet, bucket_path, read_bucket_set, write_bucket_meta

    full = read_bucket_set(root)
    target.mkdir(parents=True, exist_ok=True)
    for number in range(buckets):
        os.link(bucket_path(root, number), bucket_path(target, number))
    lines = sum(pq.ParquetFile(bucket_path(target, n)).metadata.num_rows for n in range(buckets))
    write_bucket_meta(target, BucketSet(root=target, buckets=buckets, lines=lines,
                                        customers=full.customers // full.buckets * buckets, first_day=full.first_day,
                                        last_day=full.last_day, columns=full.columns))
    return target


def child(engine: str, buckets: Path, out: Path) -> None:
    """One measurement, in its own process: prints a JSON line with seconds and rows."""
    from predictor.engine.buckets import read_bucket_set
    from predictor.engine.dask_engine import ClusterConfig, score_with_dask
    from predictor.model.estimators import TrainingConfig
    from predictor.settings import Settings

    bucket_set = read_bucket_set(buckets)
    settings = Settings(data_dir=out, dask_workers=2, dask_worker_memory="3GiB")
    config = TrainingConfig.fast(180)
    config.training_sample_share = min(1.0, TRAINING_CUSTOMERS / bucket_set.customers)
    started = time.perf_counter()
    if engine == "dask":
        _, rows, bundle = score_with_dask(bucket_set, settings, config, ClusterConfig.from_settings(settings))
        read_seconds = 0.0
    else:
        from predictor.model.scoring import score_customers

        lines = pd.concat([pd.read_parquet(p) for p in bucket_set.paths], ignore_index=True)
        read_seconds = time.perf_counter() - started
        scores, bundle = score_customers(lines, settings, config)
        rows = len(scores)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "read_seconds": read_seconds, "rows": rows,
                      "fit_seconds": bundle.model.fit_seconds,
                      "training_customers": bundle.model.training_sample["customers"]}))


def measure(engine: str, buckets: Path, out: Path) -> dict:
    """Run one child; sample the RSS of its process tree until it exits."""
    import psutil

    proc = subprocess.Popen([sys.executable, __file__, "--child", engine, "--buckets", str(buckets), "--out", str(out)],
                            stdout=subprocess.PIPE, text=True)
    peak = [0]

    def sample() -> None:
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{engine} on {buckets} failed with exit code {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_gib"] = peak[0] / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", default="1000000,2000000,5000000,10000000")
    parser.add_argument("--local", default="1000000,2000000", help="sizes the local engine also scores")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bucket-customers", type=int, default=CUSTOMERS_PER_BUCKET, help="customers per bucket")
    parser.add_argument("--child", choices=["dask", "local"], help=argparse.SUPPRESS)
    parser.add_argument("--buckets", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.buckets, args.out)
    per_bucket = args.bucket_customers
    sizes = sorted(int(n) for n in args.customers.split(","))
    local_sizes = {int(n) for n in args.local.split(",") if n}
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}; {load_average()}")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        write_synthetic_buckets(tmp / "all", -(-max(sizes) // per_bucket), per_bucket, args.seed)
        print(f"wrote {max(sizes):,} bootstrapped customers in buckets of {per_bucket:,} "
              f"in {time.perf_counter() - started:.0f} s")
        rows = []
        for n in sizes:
            buckets = subset(tmp / "all", -(-n // per_bucket), tmp / f"n{n}")
            for engine in ("local", "dask") if n in local_sizes else ("dask",):
                result = measure(engine, buckets, tmp / f"out-{engine}-{n}")
                rows.append((n, engine, result))
                print(f"{engine:5s} {n:>11,} customers: {result['seconds']:7.1f} s "
                      f"({result['rows'] / result['seconds']:,.0f} customers/s; training {result['fit_seconds']:.0f} s "
                      f"on {result['training_customers']:,} customers"
                      + (f"; reading the log {result['read_seconds']:.0f} s" if engine == "local" else "")
                      + f"), peak memory of all processes {result['peak_gib']:.2f} GiB; {load_average()}", flush=True)
        report_slopes(rows, max(sizes))


def report_slopes(rows, largest: int) -> None:
    """The local engine's memory and time per extra customer, projected to the largest size, and the ratio."""
    local = sorted((n, r) for n, e, r in rows if e == "local")
    dask = {n: r for n, e, r in rows if e == "dask"}
    for n, r in local:
        if n in dask:
            print(f"at {n:,}: dask / local time {dask[n]['seconds'] / r['seconds']:.2f}x, "
                  f"memory {dask[n]['peak_gib'] / r['peak_gib']:.2f}x")
    if len(local) >= 2:
        (n1, a), (n2, b) = local[0], local[-1]
        per_million = (b["peak_gib"] - a["peak_gib"]) / ((n2 - n1) / 1e6)
        projected = b["peak_gib"] + per_million * (largest - n2) / 1e6
        seconds = b["seconds"] + (b["seconds"] - a["seconds"]) * (largest - n2) / (n2 - n1)
        print(f"local engine slope: {per_million:.2f} GiB and {(b['seconds'] - a['seconds']) / ((n2 - n1) / 1e6):.0f} s "
              f"per million customers; projected at {largest:,}: {projected:.1f} GiB, {seconds:.0f} s (projected, not measured)")
    if largest in dask:
        r = dask[largest]
        print(f"dask engine at {largest:,}: {r['seconds']:.0f} s, {r['rows'] / r['seconds']:,.0f} customers/s, "
              f"peak memory {r['peak_gib']:.2f} GiB (target < 8 GB: {'met' if r['peak_gib'] * 2**30 < 8e9 else 'NOT met'})")


if __name__ == "__main__":
    main()
