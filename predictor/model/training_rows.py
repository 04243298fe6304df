"""The model's training rows: features at rolling cutoffs (behaviour, RFM, the BG/NBD baseline refitted at
each cutoff, last-period spend) and the labels of the window after each, from one history in this process
(HistoryRows) or, per customer bucket, on a Dask cluster (predictor/engine/dask_training.py), which passes
the population's BG/NBD fit of each cutoff in `bgs`, fitted on the sample one process would draw."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from predictor.errors import ValueDeskError
from predictor.model.baselines import RFM_COLUMNS, BGNBDGammaGamma, LastPeriodSpend, rfm_columns
from predictor.model.columnar import map_partitions, order_runs
from predictor.model.features import FEATURES, CustomerHistory, add_breadth, behaviour_columns, compute_labels, day_start

if TYPE_CHECKING:
    from predictor.model.estimators import TrainingConfig

BG_FEATURES = ["bg_expected_orders", "bg_p_alive", "bg_predicted_value", "bg_churn_risk", "last_period_value"]
MODEL_FEATURES = FEATURES + BG_FEATURES


class TrainingError(ValueDeskError):
    """The history is too short or too sparse to train on."""




def training_cutoffs(start: pd.Timestamp, end: pd.Timestamp, config: TrainingConfig) -> list[tuple[pd.Timestamp, int]]:
    """(cutoff, label_days) pairs whose label window ends on or before `end`, newest first."""
    pairs = []
    cutoff = end - pd.Timedelta(days=config.min_label_days)
    while cutoff >= start + pd.Timedelta(days=config.min_history_days) and len(pairs) < config.max_cutoffs:
        label_days = int(min(config.horizon_days, (end - cutoff) / pd.Timedelta(days=1)))
        pairs.append((cutoff, label_days))
        cutoff -= pd.Timedelta(days=config.cutoff_step_days)
    return pairs


def feature_frame(history: CustomerHistory, cutoff, label_days: int, config: TrainingConfig,
                  bg: BGNBDGammaGamma | None = None, text=None) -> tuple[pd.DataFrame, BGNBDGammaGamma | None]:
    """Behaviour features plus the baselines' own outputs refitted at this cutoff.

    Pass a fitted `bg` to reuse population parameters (rescoring one customer cannot refit them), and a
    fitted text reducer (`text.columns`, `text.transform(history, cutoff)`) to append text features.
    The features, the BG/NBD summary and last-period spend all come from one columnar pass over the
    orders (predictor/model/columnar.py), row-aligned, so no step reindexes by customer id."""
    edge = day_start(cutoff) + pd.Timedelta(days=1)
    runs = order_runs(history.orders)

    def partition_columns(bought) -> dict[str, np.ndarray]:
        columns = behaviour_columns(history, bought, label_days)
        summary = rfm_columns(bought, cutoff)
        columns.update({f"rfm_{name}": values for name, values in summary.items()})
        if bg is not None:  # given population parameters: the BG/NBD outputs are per customer too
            columns.update(_baseline_columns(bg, summary, label_days, config))
        last_period = LastPeriodSpend.per_run(bought.runs, history.start, cutoff, label_days)
        return {**columns, "last_period_value": bought.per_customer(last_period)}

    names = MODEL_FEATURES + ["label_scale"] + [f"rfm_{name}" for name in RFM_COLUMNS]
    customers, block = map_partitions(runs, edge, partition_columns, names, threads=config.n_jobs)
    index = runs.run_ids(customers)
    text_columns = list(text.columns) if text is not None else []
    if not len(index):
        return pd.DataFrame(columns=MODEL_FEATURES + text_columns + ["label_scale"], index=index), bg
    row = {name: i for i, name in enumerate(names)}
    summary = {name: block[row[f"rfm_{name}"]] for name in RFM_COLUMNS}
    if bg is None:  # fitted on the whole population, then applied to it
        bg = BGNBDGammaGamma(max_fit_customers=config.bg_fit_customers,
                             random_seed=config.random_seed).fit(pd.DataFrame(summary, index=index))
        for name, values in _baseline_columns(bg, summary, label_days, config).items():
            block[row[name]] = values
    # A view of the block's first rows (no copy); the BG/NBD summary rows stay out of the frame.
    frame = pd.DataFrame(block[:len(MODEL_FEATURES) + 1].T, columns=MODEL_FEATURES + ["label_scale"], index=index,
                         copy=False)
    add_breadth(frame, history, edge)
    if text is None:
        return frame, bg
    frame = frame.join(text.transform(history, cutoff).reindex(frame.index).fillna(0.0))
    return frame[MODEL_FEATURES + text_columns + ["label_scale"]], bg


def _baseline_columns(bg: BGNBDGammaGamma, summary: dict[str, np.ndarray], label_days: int,
                      config: TrainingConfig) -> dict[str, np.ndarray]:
    """The BG/NBD + Gamma-Gamma outputs over the label window, and the label scale to the full horizon."""
    rfm = [summary[c] for c in RFM_COLUMNS]
    predicted = bg.predict_arrays(*rfm, label_days)
    expected = predicted["expected_orders"]
    if label_days < config.horizon_days:
        # How much of the horizon's purchasing a shorter label window sees, per customer, from the
        # BG/NBD curve (purchase rates decay as customers drop out, so a linear scale-up overshoots).
        full = bg.predict_arrays(*rfm, config.horizon_days)["expected_orders"]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = full / np.where(expected > 0, expected, np.nan)
        scale = np.clip(np.where(np.isnan(ratio), 1.0, ratio), 1.0, config.horizon_days / label_days)
    else:
        scale = np.ones(len(expected))
    return {"label_scale": scale, "bg_expected_orders": expected, "bg_p_alive": predicted["p_alive"],
            "bg_predicted_value": predicted["predicted_value"], "bg_churn_risk": predicted["churn_risk"]}


def label_scale(x: pd.DataFrame, label_days: int, config: TrainingConfig) -> np.ndarray:
    return x["label_scale"].to_numpy(float)


def stack_rows(history: CustomerHistory, pairs, config: TrainingConfig, text=None,
               bgs: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows from several cutoffs; the spend target is scaled to the full horizon. `bgs` (cutoff ->
    fitted BGNBDGammaGamma) gives the population's baseline for a history that is only part of it."""
    xs, ys = [], []
    for cutoff, label_days in pairs:
        x, _ = feature_frame(history, cutoff, label_days, config, bg=(bgs or {}).get(cutoff), text=text)
        if x.empty:
            continue
        y = compute_labels(history, cutoff, label_days, x.index)
        y["target"] = y["spend"] * label_scale(x, label_days, config)
        y["label_days"] = label_days
        y["cutoff"] = cutoff
        xs.append(x.reset_index())
        ys.append(y.reset_index(drop=True))
    if not xs:
        raise TrainingError("No training rows: the history is too short before the cutoff "
                            f"(need at least {config.min_history_days + config.min_label_days} days).")
    return pd.concat(xs, ignore_index=True), pd.concat(ys, ignore_index=True)


class HistoryRows:
    """Training and validation rows from one history in this process (the local engine's source)."""

    def __init__(self, history: CustomerHistory, config: TrainingConfig, text=None):
        self.history, self.config, self.text = history, config, text

    def stack(self, pairs) -> tuple[pd.DataFrame, pd.DataFrame]:
        return stack_rows(self.history, pairs, self.config, self.text)

    def validation(self, cutoff, label_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Features (indexed by customer) and labels at one cutoff."""
        x, _ = feature_frame(self.history, cutoff, label_days, self.config, text=self.text)
        return x, compute_labels(self.history, cutoff, label_days, x.index)
