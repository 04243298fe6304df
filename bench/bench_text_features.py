"""Ablation of the product-text features (issue 17, item 4): rolling-origin evaluation with and without them.

Runs predictor.model.rolling.evaluate_rolling on Online Retail at the same cutoffs and horizon as the
README's rolling table, once with text_feature_dims=0 (the shipped model) and once per `--dims`, the
TrainingConfig otherwise identical (`--profile fast|full`, as `valuedesk evaluate` builds it), and prints
per split and on the mean: Spearman, Gini, top-10% capture, MAE, total error and churn AUC, with the
change against the model without text features. The rule of the issue: keep the features only if the
rolling-origin Spearman and Gini rise on both data sets. CDNOW's log (shipped with `lifetimes`) has no
product names, so they cannot be built there; the bench shows the error the model gives.

    .venv/bin/python bench/bench_text_features.py --profile full --dims 8,16 --json /tmp/r17/text_ablation.json
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predictor.atomic import write_json_atomic  # noqa: E402
from predictor.data.load import load_transactions  # noqa: E402
from predictor.model.estimators import TrainingConfig  # noqa: E402
from predictor.model.rolling import evaluate_rolling, total_error  # noqa: E402
from predictor.model.scoring import history_from_transactions  # noqa: E402
from predictor.model.text_features import NoProductNamesError, ProductTextFeatures, attach_product_names  # noqa: E402
from predictor.settings import Settings  # noqa: E402

CUTOFFS = "2011-04-15,2011-05-15,2011-06-09"
# (key in the xgboost metrics, header, format, sign of "better")
METRICS = (("spearman", "Spearman", "{:.3f}", 1), ("normalized_gini", "Gini", "{:.3f}", 1),
           ("top_decile_capture", "top-10%", "{:.3f}", 1), ("mae", "MAE", "{:.1f}", -1),
           ("total_error", "total err", "{:+.1%}", 0), ("churn_auc", "churn AUC", "{:.3f}", 1),
           ("fit_seconds", "fit s", "{:.0f}", 0))


def training_config(profile: str, horizon_days: int, dims: int, settings: Settings) -> TrainingConfig:
    """The config `valuedesk evaluate` uses for this profile (TrainingConfig.from_settings), plus text dims."""
    config = TrainingConfig.from_settings(settings.model_copy(update={"training_profile": profile}), horizon_days)
    config.text_feature_dims = dims
    return config


def split_metrics(split: dict) -> dict:
    """The ValueDesk model's metrics of one split, with its signed total error."""
    metrics = dict(split["models"]["xgboost"])
    metrics["total_error"] = total_error(metrics)
    return metrics


def variant_rows(reports: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """{variant: {split label: metrics}} with a "mean" split (total error: mean of the signed errors)."""
    out = {}
    for variant, report in reports.items():
        per_split = {s["cutoff"]: split_metrics(s) for s in report["splits"]}
        mean = {k: float(np.mean([m[k] for m in per_split.values()])) for k, *_ in METRICS}
        out[variant] = {**per_split, "mean": mean}
    return out


def ablation_table(reports: dict[str, dict]) -> str:
    """Markdown table: each split and the mean, off vs each text variant and its change (on - off)."""
    rows = variant_rows(reports)
    off = rows["off"]
    header = "| split | variant | " + " | ".join(h for _, h, _, _ in METRICS) + " |"
    lines = [header, "|" + "---|" * (len(METRICS) + 2)]
    for split in off:
        for variant, by_split in rows.items():
            cells = [fmt.format(by_split[split][k]) for k, _, fmt, _ in METRICS]
            lines.append(f"| {split} | {variant} | " + " | ".join(cells) + " |")
            if variant == "off":
                continue
            deltas = []
            for key, _, fmt, _ in METRICS:
                delta = by_split[split][key] - off[split][key]
                deltas.append(("{:+.1%}" if key == "total_error" else fmt.replace("{:", "{:+")).format(delta))
            lines.append(f"| {split} | {variant} - off | " + " | ".join(deltas) + " |")
    return "\n".join(lines)


def verdict(reports: dict[str, dict], cdnow_note: str | None) -> str:
    """The issue's rule applied: keep only if mean Spearman and Gini rise on both data sets."""
    rows = variant_rows(reports)
    off = rows["off"]["mean"]
    parts = []
    for variant, by_split in rows.items():
        if variant == "off":
            continue
        mean = by_split["mean"]
        rise = mean["spearman"] > off["spearman"] and mean["normalized_gini"] > off["normalized_gini"]
        split_rises = sum(by_split[s]["spearman"] > rows["off"][s]["spearman"] and
                          by_split[s]["normalized_gini"] > rows["off"][s]["normalized_gini"]
                          for s in by_split if s != "mean")
        parts.append(f"{variant}: Online Retail mean Spearman {mean['spearman'] - off['spearman']:+.3f}, "
                     f"Gini {mean['normalized_gini'] - off['normalized_gini']:+.3f} "
                     f"({'both rise' if rise else 'not both rising'}; both rise on {split_rises} of "
                     f"{len(by_split) - 1} splits)")
    online_retail_rises = all("not both" not in p for p in parts)
    if cdnow_note is None:
        parts.append("CDNOW: the features can be built there; measure it before deciding")
        decision = "UNDECIDED (CDNOW not measured)" if online_retail_rises else "DROP (text_feature_dims stays 0)"
    else:
        parts.append("CDNOW: " + cdnow_note)
        decision = "DROP (text_feature_dims stays 0)"
    parts.append(f"Verdict by the issue's rule (rise on both data sets): {decision}")
    return "\n".join(parts)


def cdnow_check(settings: Settings, seed: int) -> str | None:
    """Why the text features cannot be built on CDNOW (the model's own error), or None if they can."""
    loaded = load_transactions(None, "cdnow", settings=settings)
    history = history_from_transactions(loaded.transactions)
    try:
        ProductTextFeatures(8, seed).fit(history, history.end)
    except NoProductNamesError as exc:
        return f"cannot be built ({type(exc).__name__}: {exc})"
    return None


def run(args) -> None:
    settings = Settings(threads=args.threads)
    loaded = load_transactions(args.data, "online_retail", settings=settings)
    history = attach_product_names(history_from_transactions(loaded.transactions), loaded.transactions)
    cutoffs = [c.strip() for c in args.cutoffs.split(",") if c.strip()]
    variants = {"off": 0, **{f"text-{d}": d for d in args.dims}}
    reports = {}
    for variant, dims in variants.items():
        started = time.perf_counter()
        config = training_config(args.profile, args.horizon_days, dims, settings)
        reports[variant] = evaluate_rolling(history, cutoffs, args.horizon_days, config, source=loaded.source)
        print(f"{variant}: {time.perf_counter() - started:.0f} s, load average {os.getloadavg()}", flush=True)
    cdnow_note = cdnow_check(settings, settings.random_seed)
    print(f"\nOnline Retail, rolling origin at {', '.join(cutoffs)}, next {args.horizon_days} days, profile "
          f"{args.profile}; ValueDesk (XGBoost) without ('off') and with product-text features (spend-weighted "
          "mean MiniLM embedding of the names bought, PCA fitted at each training end)\n")
    print(ablation_table(reports))
    print("\n" + verdict(reports, cdnow_note))
    if args.json:
        write_json_atomic(Path(args.json), {"command": args.command, "reports": reports, "cdnow": cdnow_note})
        print(f"wrote {args.json}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["fast", "full"], default="fast")
    parser.add_argument("--dims", default="8,16", help="Comma-separated PCA sizes to try (each against off).")
    parser.add_argument("--cutoffs", default=CUTOFFS)
    parser.add_argument("--horizon-days", type=int, default=183)
    parser.add_argument("--data", type=Path, default=None, help="Online Retail log (default: the bundled one).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="Also write every report as JSON to this path.")
    args = parser.parse_args()
    args.dims = [int(d) for d in args.dims.split(",") if d.strip()]
    args.command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"command: {args.command}\nload average at start: {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    run(args)
    print(f"total {time.perf_counter() - started:.0f} s; load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
