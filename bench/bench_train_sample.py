"""What training on a customer sample costs in accuracy (issue 18, item 3: train on one worker).

The model trains on about `share` of the customers (predictor/model/sampling.py: a seeded hash of the
customer id, so the same customers on every machine and every partition) and scores everyone; the
rolling-origin evaluation (the README's cutoffs and horizons) is run on Online Retail and CDNOW for each
share in the same process, and the mean of each metric is printed with its change against training on
all customers.

    .venv/bin/python bench/bench_train_sample.py --profile full --shares 1,0.5,0.25
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predictor.data.load import load_transactions  # noqa: E402
from predictor.model.estimators import TrainingConfig  # noqa: E402
from predictor.model.rolling import evaluate_rolling  # noqa: E402
from predictor.model.scoring import history_from_transactions  # noqa: E402
from predictor.settings import Settings  # noqa: E402

DATA_SETS = {  # name: (schema, cutoffs, horizon days), as in the README's rolling-origin table
    "Online Retail": ("online_retail", ["2011-04-15", "2011-05-15", "2011-06-09"], 183),
    "CDNOW": ("cdnow", ["1997-05-15", "1997-07-31", "1997-09-30"], 273),
}
METRICS = (("spearman", "Spearman", "{:.3f}"), ("normalized_gini", "Gini", "{:.3f}"),
           ("top_decile_capture", "top-10%", "{:.3f}"), ("mae", "MAE", "{:.1f}"),
           ("total_error", "total err", "{:+.1%}"), ("churn_auc", "churn AUC", "{:.3f}"),
           ("fit_seconds", "fit s", "{:.1f}"))


def run_share(history, cutoffs, horizon: int, share: float, profile: str, settings: Settings) -> dict:
    """The rolling evaluation's mean metrics when training sees `share` of the customers."""
    config = TrainingConfig.from_settings(settings.model_copy(update={"training_profile": profile}), horizon)
    config.training_sample_share = share
    report = evaluate_rolling(history, cutoffs, horizon, config)
    mean = report["mean"]["xgboost"]
    trained = [s["training"]["training_sample"] for s in report["splits"]]
    return {**mean, "trained_on": f"{sum(t['customers'] for t in trained):,} of {sum(t['of'] for t in trained):,}"}


def table(name: str, rows: dict[float, dict]) -> str:
    full = rows[max(rows)]
    head = "| share | customers trained on (sum over splits) | " + " | ".join(h for _, h, _ in METRICS) + " |"
    lines = [f"{name}", head, "|" + "---|" * (len(METRICS) + 2)]
    for share, m in sorted(rows.items(), reverse=True):
        cells = []
        for key, _, fmt in METRICS:
            delta = "" if share == max(rows) or key == "fit_seconds" else f" ({m[key] - full[key]:+.3f})"
            cells.append(fmt.format(m[key]) + delta)
        lines.append(f"| {share:g} | {m['trained_on']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["fast", "full"], default="full")
    parser.add_argument("--shares", default="1,0.5,0.25")
    args = parser.parse_args()
    shares = sorted({float(s) for s in args.shares.split(",")} | {1.0}, reverse=True)
    settings = Settings()
    started = time.perf_counter()
    for name, (schema, cutoffs, horizon) in DATA_SETS.items():
        path = settings.default_data if schema == "online_retail" else None
        history = history_from_transactions(load_transactions(path, schema, None, settings=settings).transactions)
        rows = {share: run_share(history, cutoffs, horizon, share, args.profile, settings) for share in shares}
        print(table(f"{name}: rolling origin at {', '.join(cutoffs)}, next {horizon} days, profile {args.profile}",
                    rows) + "\n")
    print(f"total {time.perf_counter() - started:.0f} s; load average {os.getloadavg()}")
    print("command: " + shlex.join([".venv/bin/python", "bench/bench_train_sample.py", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
