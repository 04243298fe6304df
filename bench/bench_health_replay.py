"""The model-health report replayed month by month on real data (issue 19, item 3).

A model is trained up to `--train-until`; the rest of the log then arrives one month at a time. At each
month's as-of date the health report (predictor/model/health.py, the code `valuedesk health` runs) gives
its label-free estimates for the window the model is predicting from that day (DLE for the spend MAE,
CBPE for the churn AUC) and its retrain recommendation. Once that window has closed in the log, the
model's realised MAE and AUC on it are computed and set beside the estimates. Nothing a month's report
uses lies after its as-of date.

Agreement is judged against stated tolerances: estimated MAE within 20% of the realised one, estimated
AUC within 0.05 of the realised one.

    .venv/bin/python bench/bench_health_replay.py --data online_retail --train-until 2011-06-09 --horizon 90
    .venv/bin/python bench/bench_health_replay.py --data cdnow --train-until 1997-09-30 --horizon 90
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from predictor.data.load import load_transactions  # noqa: E402
from predictor.model.estimators import CLVModel, TrainingConfig  # noqa: E402
from predictor.model.features import compute_labels, day_start  # noqa: E402
from predictor.model.health import HealthThresholds, health_report  # noqa: E402
from predictor.model.metrics import churn_metrics  # noqa: E402
from predictor.model.scoring import history_from_transactions  # noqa: E402
from predictor.settings import Settings  # noqa: E402

MAE_TOLERANCE = 0.20  # relative
AUC_TOLERANCE = 0.05  # absolute


def realised(model: CLVModel, history, as_of: pd.Timestamp, horizon: int) -> dict | None:
    """The model's MAE and churn AUC on the window after `as_of`, once it has closed in the log."""
    end = as_of + pd.Timedelta(days=horizon)
    if end > day_start(history.end):
        return None
    pred = model.predict(history.before(as_of), as_of)
    labels = compute_labels(history.before(end), as_of, horizon, pred.index)
    actual = labels["spend"].to_numpy()
    churn = churn_metrics(~labels["ordered"].to_numpy(), pred["churn_risk"].to_numpy())
    return {"mae": float(np.abs(actual - pred["predicted_value"].to_numpy()).mean()), "churn_auc": churn["churn_auc"]}


def month_row(model, meta, history, as_of, config, limits) -> dict:
    report = health_report(model, meta, history, as_of, config, limits)
    estimated = report["estimated"]
    row = {"as_of": str(as_of.date()), "age_days": report["model"]["age_days"],
           "est_mae": estimated.get("mae"), "est_auc": estimated.get("churn_auc"),
           "drifted": f"{report['drift']['drifted_features']}/{report['drift']['tested_features']}",
           "retrain_due": report["recommendation"]["retrain_due"],
           "reasons": sorted({r["by"] for r in report["recommendation"]["reasons"]}),
           "no_estimate": estimated.get("reason")}
    truth = realised(model, history, as_of, config.horizon_days)
    row["mae"], row["auc"] = (truth["mae"], truth["churn_auc"]) if truth else (None, None)
    if truth and row["est_mae"] is not None:
        row["mae_error"] = row["est_mae"] / row["mae"] - 1
        row["auc_error"] = row["est_auc"] - row["auc"]
        row["agrees"] = abs(row["mae_error"]) <= MAE_TOLERANCE and abs(row["auc_error"]) <= AUC_TOLERANCE
    return row


HEADER = (f"{'as of':<11} {'age':>4} {'est MAE':>8} {'MAE':>8} {'err':>7} {'est AUC':>8} {'AUC':>6} {'diff':>6} "
          f"{'drifted':>7} {'agree':>5}  retrain")


def row_line(r: dict) -> str:
    if r["est_mae"] is None:
        return f"{r['as_of']:<11} {r['age_days']:>4}  no estimate: {r['no_estimate']}"
    closed = r["mae"] is not None
    return (f"{r['as_of']:<11} {r['age_days']:>4} {r['est_mae']:>8.1f} "
            + (f"{r['mae']:>8.1f} {r['mae_error']:>+7.1%} " if closed else f"{'open':>8} {'':>7} ")
            + f"{r['est_auc']:>8.3f} " + (f"{r['auc']:>6.3f} {r['auc_error']:>+6.3f} " if closed else f"{'':>6} {'':>6} ")
            + f"{r['drifted']:>7} {('yes' if r.get('agrees') else 'no') if closed else '-':>5}  "
            + (("due: " + ", ".join(r["reasons"])) if r["retrain_due"] else "not due"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["online_retail", "cdnow"], required=True)
    parser.add_argument("--train-until", required=True)
    parser.add_argument("--horizon", type=int, default=90)
    parser.add_argument("--profile", choices=["full", "fast"], default="full")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    settings = Settings()
    print(f"$ {shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}   load average {os.getloadavg()[0]:.2f}")
    history = history_from_transactions(load_transactions(None, args.data, settings=settings).transactions)
    config = (TrainingConfig.from_settings(settings, args.horizon) if args.profile == "full"
              else TrainingConfig.fast(args.horizon))
    limits = HealthThresholds.from_settings(settings)
    start = time.perf_counter()
    trained = pd.Timestamp(args.train_until)
    model = CLVModel(config).fit(history.before(trained), trained)
    meta = {"data_range": {"end": str(trained.date())}, "version": f"trained to {trained.date()}"}
    months = pd.date_range(trained, day_start(history.end), freq=pd.DateOffset(months=1))
    print(HEADER, flush=True)
    rows = []
    for as_of in months:  # each month's line as soon as it is known (a month takes a fit of its closed window)
        rows.append(month_row(model, meta, history, as_of, config, limits))
        print(row_line(rows[-1]), flush=True)
    closed = [r for r in rows if r["mae"] is not None and r["est_mae"] is not None]
    agreed = sum(bool(r.get("agrees")) for r in closed)
    print(f"{args.data}: {agreed} of {len(closed)} closed months agree (MAE within {MAE_TOLERANCE:.0%}, "
          f"AUC within {AUC_TOLERANCE}); mean |MAE error| {np.mean([abs(r['mae_error']) for r in closed]):.1%}, "
          f"mean |AUC error| {np.mean([abs(r['auc_error']) for r in closed]):.3f}; "
          f"{time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
