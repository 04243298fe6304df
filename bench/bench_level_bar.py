"""Issue 17's level bar, measured: can any forecast made before the cutoff put the total within +-10% of
the actual AND have an MAE no worse than the best baseline's, on each rolling-origin split?

For every split of the README's rolling table (Online Retail 183 days, CDNOW 273 days) it fits the
shipped model (`--profile fast|full`, as `valuedesk evaluate` builds it) and the baselines, plus the
alternatives tried for the level and for the MAE, and prints three tables:

* Level: the total error of every source known at the cutoff: the model, BG/NBD + Gamma-Gamma,
  Pareto/NBD + Gamma-Gamma, last-period spend, and the best MAE variant tried (a Tweedie booster whose
  trees learn a multiplier on each customer's own spend rate, `base_margin` = log of that rate over the
  horizon; not shipped).
* MAE: the best baseline's MAE at its own level and rescaled to the actual total, the MAE of predicting
  zero for everyone, and the model's and the variant's MAE at their level and at the actual total, and
  the best MAE of a common quantile of a multi-quantile booster rescaled to the actual total (for MAE
  the best point forecast with a fixed total is one quantile of every customer's distribution).
* Interval: P10-P90 coverage with the conformal shift chosen on the validation window, the shift that
  would have given 80% on the horizon itself, and the coverage without any shift: whether one rule
  learnt on a window shorter than the horizon could land every split in 75-85%.

Rescaling to the actual total uses the answer, so those columns are bounds, not forecasts: the best any
choice of level could do with those per-customer forecasts.

    .venv/bin/python bench/bench_level_bar.py --profile full --json /tmp/level_bar.json
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predictor.atomic import write_json_atomic  # noqa: E402
from predictor.data.load import load_transactions  # noqa: E402
from predictor.model.baselines import BGNBDGammaGamma, LastPeriodSpend, rfm_summary  # noqa: E402
from predictor.model.boosters import feature_matrix, raw_predict, value_model  # noqa: E402
from predictor.model.estimators import CLVModel, TrainingConfig  # noqa: E402
from predictor.model.features import compute_labels, day_start  # noqa: E402
from predictor.model.intervals import conformal_shift, interval_model, long_label_rows, served_bounds  # noqa: E402
from predictor.model.metrics import interval_coverage  # noqa: E402
from predictor.model.scoring import history_from_transactions  # noqa: E402
from predictor.model.training_rows import HistoryRows, training_cutoffs  # noqa: E402
from predictor.settings import Settings  # noqa: E402

SPLITS = (("online_retail", 183, ("2011-04-15", "2011-05-15", "2011-06-09")),
          ("cdnow", 273, ("1997-05-15", "1997-07-31", "1997-09-30")))
QUANTILES = np.array([0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9])
TOTAL_BAND = 0.10


def spend_rate_margin(features: pd.DataFrame, horizon_days: int, floor: float) -> np.ndarray:
    """log of the customer's lifetime spend per day over the horizon (tenure floored at 30 days)."""
    rate = (features["monetary_total"].to_numpy(float).clip(min=0)
            / np.maximum(features["tenure_days"].to_numpy(float), 30.0) * horizon_days)
    return np.log(rate + floor)


def alternative_forecasts(known, cutoff, features: pd.DataFrame, config: TrainingConfig,
                          names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The spend-rate offset variant's forecast and the multi-quantile booster's quantiles, both trained
    on the model's own training rows (same cutoffs, same scaled labels)."""
    x_tr, y_tr = HistoryRows(known, config).stack(training_cutoffs(known.start, day_start(cutoff), config))
    target, horizon = y_tr["target"].to_numpy(float), config.horizon_days
    floor = 0.1 * float(np.median(target[target > 0]))
    # The shipped boosters' settings: a depth-3 value booster with an offset, the interval's booster with
    # more quantiles; the quantile booster learns from the interval's rows (long label windows).
    offset = value_model(3, config.value_grid[0][1], config)
    offset.fit(x_tr[names], target, base_margin=spend_rate_margin(x_tr, horizon, floor))
    x = feature_matrix(features, names)
    offset_pred = offset.predict(x, base_margin=spend_rate_margin(features, horizon, floor))
    quantile = interval_model(config).set_params(quantile_alpha=QUANTILES)
    rows = long_label_rows(y_tr["label_days"], horizon).to_numpy()
    quantile.fit(x_tr.loc[rows, names], np.log1p(target[rows]))
    quantiles = np.expm1(np.sort(quantile.predict(x), axis=1)).clip(min=0)
    return offset_pred, quantiles


def pareto_level(summary: pd.DataFrame, bg: BGNBDGammaGamma, horizon_days: int) -> np.ndarray:
    """Pareto/NBD's expected orders times the same Gamma-Gamma order value as the BG/NBD baseline."""
    from lifetimes import ParetoNBDFitter

    freq, rec, t = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pnbd = ParetoNBDFitter(penalizer_coef=0.0).fit(freq, rec, t, tol=1e-6)
        orders = np.asarray(pnbd.conditional_expected_number_of_purchases_up_to_time(horizon_days, freq, rec, t))
        value = np.asarray(bg.ggf.conditional_expected_average_profit(
            freq, summary["monetary_value"].clip(lower=0).to_numpy(float)))
    return orders * value


def measure_split(history, cutoff: str, horizon_days: int, config: TrainingConfig) -> dict:
    cutoff = day_start(cutoff)
    known = history.before(cutoff)
    summary = rfm_summary(known, cutoff)
    actual = compute_labels(history, cutoff, horizon_days, summary.index)["spend"].to_numpy(float)
    model = CLVModel(config).fit(known, cutoff)
    features = model.features_at(known, cutoff).reindex(summary.index)
    predicted = model.predict_features(features)["predicted_value"].to_numpy(float)
    bg = BGNBDGammaGamma(random_seed=config.random_seed).fit(summary)
    forecasts = {"model": predicted,
                 "bgnbd_gg": bg.predict(summary, horizon_days)["predicted_value"].to_numpy(float),
                 "pareto_gg": pareto_level(summary, bg, horizon_days),
                 "last_period": LastPeriodSpend().predict(known, cutoff, horizon_days, summary.index).to_numpy(float)}
    forecasts["offset_variant"], quantiles = alternative_forecasts(known, cutoff, features, config, model.feature_names)
    figures = split_figures(actual, forecasts, quantiles)
    log_quantiles = raw_predict(model.interval_model, feature_matrix(features, model.feature_names), config.n_jobs)
    figures["interval"] = interval_figures(actual, log_quantiles, predicted, model)
    return figures


def interval_figures(actual: np.ndarray, log_quantiles: np.ndarray, predicted: np.ndarray, model: CLVModel) -> dict:
    """Coverage with the validation window's shift, with none, and the shift the horizon needed (the
    bounds widened to hold the predicted value, as CLVModel.combine serves them)."""
    def coverage(shift):
        return interval_coverage(actual, *served_bounds(log_quantiles, shift, predicted))

    needed = conformal_shift(log_quantiles, actual)
    return {"validation_days": model.validation["label_days"], "shift": model.interval_shift,
            "coverage": coverage(model.interval_shift), "coverage_unshifted": coverage(0.0),
            "shift_needed": needed, "coverage_with_needed": coverage(needed)}


def split_figures(actual: np.ndarray, forecasts: dict[str, np.ndarray], quantiles: np.ndarray) -> dict:
    total = actual.sum()

    def mae(x):
        return float(np.abs(actual - x).mean())

    def at_total(x):
        return x * total / max(x.sum(), 1e-12)

    level = {name: float(x.sum() / total - 1) for name, x in forecasts.items()}
    best = min(("bgnbd_gg", "last_period"), key=lambda name: mae(forecasts[name]))
    bar_mae = mae(forecasts[best])
    at_actual = {name: mae(at_total(forecasts[name])) for name in ("model", "offset_variant", best)}
    quantile_mae = {float(q): mae(at_total(quantiles[:, i])) for i, q in enumerate(QUANTILES)}
    own = {name: mae(x) for name, x in forecasts.items()}
    meets = sorted(name for name, x in forecasts.items() if abs(level[name]) <= TOTAL_BAND and own[name] <= bar_mae)
    return {"customers": int(len(actual)), "actual_total": float(total), "total_error": level, "mae": own,
            "best_baseline": best, "bar_mae": bar_mae, "mae_at_actual_total": at_actual,
            "best_quantile_at_actual_total": min(quantile_mae.items(), key=lambda kv: kv[1]),
            "zero_forecast_mae": float(actual.mean()), "meets_both": meets}


def print_tables(results: dict[str, dict]) -> None:
    from tabulate import tabulate

    names = ("model", "bgnbd_gg", "pareto_gg", "last_period", "offset_variant")
    rows = [[label] + [f"{r['total_error'][n]:+.1%}" for n in names] for label, r in results.items()]
    print("\nTotal predicted vs actual (bar: within +-10%)")
    print(tabulate(rows, ["split", "model", "BG/NBD+GG", "Pareto/NBD+GG", "last period", "offset variant"],
                   disable_numparse=True))
    rows = []
    for label, r in results.items():
        best, q = r["best_baseline"], r["best_quantile_at_actual_total"]
        rows.append([label, f"{r['bar_mae']:.1f} ({best}, {r['total_error'][best]:+.0%})",
                     f"{r['mae_at_actual_total'][best]:.1f}", f"{r['zero_forecast_mae']:.1f}",
                     f"{r['mae']['model']:.1f} / {r['mae_at_actual_total']['model']:.1f}",
                     f"{r['mae']['offset_variant']:.1f} / {r['mae_at_actual_total']['offset_variant']:.1f}",
                     f"{q[1]:.1f} (q={q[0]:.2f})", ", ".join(r["meets_both"]) or "none"])
    print("\nMAE (bar: no worse than the best baseline's); 'x / y' = at its own level / rescaled to the actual total")
    print(tabulate(rows, ["split", "best baseline", "it at actual total", "zero for all", "model",
                          "offset variant", "best quantile at actual total", "meets both bars"],
                      disable_numparse=True))
    rows = [[label, r["interval"]["validation_days"], f"{r['interval']['coverage_unshifted']:.1%}",
             f"{r['interval']['shift']:+.2f}", f"{r['interval']['coverage']:.1%}", f"{r['interval']['shift_needed']:+.2f}"]
            for label, r in results.items()]
    print("\nP10-P90 coverage (bar: 75-85%); shifts of the upper end in log1p(spend)")
    print(tabulate(rows, ["split", "validation days", "no shift", "shift chosen on validation", "coverage",
                          "shift the horizon needed"], disable_numparse=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("fast", "full"), default="fast")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()
    settings = Settings().model_copy(update={"training_profile": args.profile})
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    started, results = time.perf_counter(), {}
    for schema, horizon, cutoffs in SPLITS:
        history = history_from_transactions(load_transactions(None, schema, settings=settings).transactions)
        for cutoff in cutoffs:
            config = TrainingConfig.from_settings(settings, horizon)
            results[f"{schema} {cutoff} (+{horizon} d)"] = measure_split(history, cutoff, horizon, config)
            print(f"  {schema} {cutoff}: {time.perf_counter() - started:.0f} s", flush=True)
    print_tables(results)
    met = sum(bool(r["meets_both"]) for r in results.values())
    print(f"\nSplits where some forecast known at the cutoff meets both level bars: {met} of {len(results)}")
    print(f"load average after: {os.getloadavg()[0]:.2f}; {time.perf_counter() - started:.0f} s")
    if args.json:
        write_json_atomic(Path(args.json), {"profile": args.profile, "splits": results})


if __name__ == "__main__":
    main()
