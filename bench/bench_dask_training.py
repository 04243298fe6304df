"""What training with xgboost.dask costs against training on one worker (issue 18, item 3), on the real
logs: for each rolling-origin split of the README (Online Retail and CDNOW, three cutoffs each), the log
before the cutoff is partitioned into customer buckets, and the same LocalCluster trains the model twice,
once on one worker (`train_task`, the Dask engine's default) and once across the workers with
xgboost.dask (`train_with_xgboost_dask`). Both are scored on the horizon after the cutoff with the
evaluation's own metrics; the mean of each and the fit-time ratio are printed.

    .venv/bin/python bench/bench_dask_training.py --profile full --workers 2
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from predictor.data.load import load_transactions  # noqa: E402
from predictor.engine.buckets import write_buckets  # noqa: E402
from predictor.engine.dask_engine import train_task  # noqa: E402
from predictor.engine.dask_training import train_with_xgboost_dask  # noqa: E402
from predictor.model.baselines import rfm_summary  # noqa: E402
from predictor.model.estimators import TrainingConfig  # noqa: E402
from predictor.model.features import compute_labels  # noqa: E402
from predictor.model.metrics import churn_metrics, interval_coverage, value_metrics  # noqa: E402
from predictor.model.scoring import history_from_transactions, with_categories  # noqa: E402
from predictor.settings import Settings  # noqa: E402

DATA_SETS = {  # name: (schema, cutoffs, horizon days), as in the README's rolling-origin table
    "Online Retail": ("online_retail", ["2011-04-15", "2011-05-15", "2011-06-09"], 183),
    "CDNOW": ("cdnow", ["1997-05-15", "1997-07-31", "1997-09-30"], 273),
}
METRICS = (("spearman", "Spearman", "{:.3f}"), ("normalized_gini", "Gini", "{:.3f}"), ("mae", "MAE", "{:.1f}"),
           ("total_error", "total err", "{:+.1%}"), ("churn_auc", "churn AUC", "{:.3f}"),
           ("coverage", "P10-P90 cov.", "{:.1%}"), ("fit_seconds", "fit s", "{:.1f}"))


def split_metrics(model, history, cutoff, horizon: int, fit_seconds: float) -> dict:
    known = history.before(cutoff)
    population = rfm_summary(known, cutoff).index
    labels = compute_labels(history, cutoff, horizon, population)
    actual = labels["spend"].to_numpy()
    pred = model.predict(known, cutoff).reindex(population)
    value = value_metrics(actual, pred["predicted_value"])
    return {**value, **churn_metrics(~labels["ordered"].to_numpy(), pred["churn_risk"]),
            "total_error": pred["predicted_value"].sum() / max(actual.sum(), 1e-9) - 1,
            "coverage": interval_coverage(actual, pred["value_p10"], pred["value_p90"]), "fit_seconds": fit_seconds}


def run_split(client, lines, history, cutoff: str, horizon: int, config: TrainingConfig, work: Path) -> dict:
    cutoff = pd.Timestamp(cutoff)
    buckets = write_buckets(lines.loc[lines["timestamp"] < cutoff + pd.Timedelta(days=1)], work / "buckets",
                            buckets=4)
    results = {}
    started = time.perf_counter()
    one = client.submit(train_task, buckets.paths, buckets.data_start, cutoff, config, pure=False).result()
    results["one worker"] = split_metrics(one, history, cutoff, horizon, time.perf_counter() - started)
    started = time.perf_counter()
    spread = train_with_xgboost_dask(client, buckets, config, work / "rows", end=cutoff)
    results["xgboost.dask"] = split_metrics(spread, history, cutoff, horizon, time.perf_counter() - started)
    return results


def table(rows: dict[str, dict]) -> str:
    head = "| split | training | " + " | ".join(h for _, h, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 2)]
    for split, by_mode in rows.items():
        for mode, m in by_mode.items():
            lines.append(f"| {split} | {mode} | " + " | ".join(fmt.format(m[key]) for key, _, fmt in METRICS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["fast", "full"], default="full")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", default=",".join(DATA_SETS), help="comma-separated data set names")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    print("command:", shlex.join([".venv/bin/python", *sys.argv]))
    print(f"load average before: {os.getloadavg()}")
    settings = Settings().model_copy(update={"training_profile": args.profile})
    rows: dict[str, dict] = {}
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"OMP_THREAD_LIMIT": "1"}) as cluster, Client(cluster) as client:
        for name in args.data.split(","):
            schema, cutoffs, horizon = DATA_SETS[name]
            lines = with_categories(load_transactions(None, schema, settings=Settings()).transactions)
            history = history_from_transactions(lines)
            config = TrainingConfig.from_settings(settings, horizon)
            for cutoff in cutoffs:
                with tempfile.TemporaryDirectory() as work:
                    rows[f"{name} {cutoff}"] = run_split(client, lines, history, cutoff, horizon, config, Path(work))
                print(table({f"{name} {cutoff}": rows[f"{name} {cutoff}"]}).splitlines()[-2:], flush=True)
    print(table(rows))
    for mode in ("one worker", "xgboost.dask"):
        mean = {key: sum(r[mode][key] for r in rows.values()) / len(rows) for key, _, _ in METRICS}
        print(f"mean, {mode}: " + ", ".join(f"{h} " + fmt.format(mean[key]) for key, h, fmt in METRICS))
    ratio = sum(r["xgboost.dask"]["fit_seconds"] for r in rows.values()) / sum(r["one worker"]["fit_seconds"]
                                                                              for r in rows.values())
    print(f"fit time, xgboost.dask / one worker: {ratio:.2f}x on {args.workers} workers")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
