"""XGBoost models of each customer's future value (with a P10-P90 interval), churn risk and next order.

Training is honest: rows come from rolling cutoffs inside the history (every `cutoff_step_days`),
hyperparameters and the blend with the last-period baseline are chosen on a validation cutoff whose
label window does not overlap any training label, and the evaluation holdout is never seen.
"""

from __future__ import annotations

import json

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import log_loss

from predictor.model.boosters import churn_model, feature_matrix, fit_in_process, next_order_model, raw_predict, value_model
from predictor.model.baselines import BGNBDGammaGamma
from predictor.errors import EvaluationWindowError
from predictor.model.features import CustomerHistory, day_start
from predictor.model.intervals import conformal_shift, fit_interval, served_bounds
from predictor.model.limits import history_limits
from predictor.model.sampling import training_sample
# Re-exported: the rows' module is where they live, the model is where callers look for them.
from predictor.model.training_rows import (BG_FEATURES, MODEL_FEATURES, HistoryRows, TrainingError,  # noqa: F401
                                           feature_frame, label_scale, stack_rows, training_cutoffs)
from predictor.model.metrics import decile_lift, held_out_quality, normalized_gini

# The range settings.horizon_days accepts (predictor/settings.py), for horizons given on the command line.
MIN_HORIZON_DAYS, MAX_HORIZON_DAYS = 7, 730

# Where the predicted total's level comes from, in the words evaluate's and the model's metadata show.
# No rescaling is chosen on the validation window or taken from BG/NBD: on the rolling-origin splits
# both moved the total further off (README, "Level"; bench/bench_level_bar.py).
LEVEL_SOURCE = ("model: training labels from windows before the cutoff, each scaled up to the horizon along "
                "the BG/NBD purchase curve; not rescaled")


@dataclass
class TrainingConfig:
    horizon_days: int = 180
    cutoff_step_days: int = 14
    min_history_days: int = 56
    min_label_days: int = 28
    max_cutoffs: int = 24
    # Candidate (max_depth, n_estimators); shallow trees generalise across cutoffs best.
    value_grid: tuple = ((2, 300), (3, 300), (4, 200))
    churn_grid: tuple = ((2, 200), (3, 200), (4, 150))
    learning_rate: float = 0.05
    interval_estimators: int = 150
    # BG/NBD population parameters are fitted on up to this many customers (seeded sample beyond it):
    # small samples made the label scaling noisy enough to swing total-spend error by 10 points.
    bg_fit_customers: int = 20000
    n_jobs: int = 2
    random_seed: int = 42
    blend_grid: tuple = tuple(np.round(np.linspace(0, 1, 11), 2))
    # Product-name text features (predictor/model/text_features.py), 0 = off: an ablation option that
    # evaluation can switch on; saved models never carry them (see the README's ablation table).
    text_feature_dims: int = 0
    # Train on this share of the customers (1 = all): a seeded-hash sample (predictor/model/sampling.py)
    # so that training fits one worker; scoring always covers every customer.
    training_sample_share: float = 1.0

    # The newest share of the history held out to choose the model (between min_label_days and the horizon).
    validation_share: float = 0.35

    def validation_days(self, span_days: float) -> int:
        """Days of the validation window for a history of `span_days`."""
        return int(min(self.horizon_days, max(self.min_label_days, round(self.validation_share * span_days))))

    @property
    def min_training_days(self) -> int:
        """The shortest history a model can be trained and validated on: the oldest training cutoff's
        history and label window must fit before the validation window."""
        span = self.min_history_days + self.min_label_days
        while span - self.validation_days(span) < self.min_history_days + self.min_label_days:
            span += 1
        return span

    @classmethod
    def from_settings(cls, settings, horizon_days: int | None = None) -> "TrainingConfig":
        """The configuration for `settings`; `horizon_days` (a command's --horizon-days) overrides the
        setting and must lie in the same range (7-730 days): 0 is refused, never read as "default"."""
        if horizon_days is not None and not MIN_HORIZON_DAYS <= horizon_days <= MAX_HORIZON_DAYS:
            raise EvaluationWindowError(f"--horizon-days must be from {MIN_HORIZON_DAYS} to {MAX_HORIZON_DAYS} "
                                        f"days, got {horizon_days}.")
        horizon = settings.horizon_days if horizon_days is None else horizon_days
        config = cls.fast(horizon) if settings.training_profile == "fast" else cls(horizon_days=horizon)
        config.n_jobs, config.random_seed = settings.threads, settings.random_seed
        return config

    def to_record(self) -> dict:
        """Every field, JSON-ready (the model's metadata): grids as lists."""
        return json.loads(json.dumps(asdict(self), default=float))

    @classmethod
    def from_record(cls, record: dict) -> "TrainingConfig":
        """The configuration a model's metadata recorded; fields it lacks (older models) keep their defaults."""
        def as_tuple(value):
            return tuple(as_tuple(v) for v in value) if isinstance(value, list) else value
        return cls(**{k: as_tuple(v) for k, v in record.items() if k in cls.__dataclass_fields__})

    @classmethod
    def fast(cls, horizon_days: int = 180) -> "TrainingConfig":
        """A small configuration for tests: fewer cutoffs, rounds and grid points."""
        return cls(horizon_days=horizon_days, cutoff_step_days=28, max_cutoffs=6,
                   value_grid=((3, 120),), churn_grid=((3, 100),), interval_estimators=60,
                   blend_grid=(0.0, 0.5, 0.8, 1.0))


def _rank_score(actual: np.ndarray, predicted: np.ndarray) -> float:
    rho = spearmanr(predicted, actual).statistic if np.std(predicted) > 0 else 0.0
    return float(np.nan_to_num(rho)) + normalized_gini(actual, predicted)


@dataclass
class CLVModel:
    """fit(history, end) on everything known at `end`; predict(history, cutoff) for every customer."""

    config: TrainingConfig = field(default_factory=TrainingConfig)
    text: object = None  # the fitted product-text reducer when config.text_feature_dims > 0

    @property
    def feature_names(self) -> list[str]:
        return MODEL_FEATURES + (list(self.text.columns) if getattr(self, "text", None) is not None else [])

    def fit(self, history: CustomerHistory, end=None) -> "CLVModel":
        started = time.perf_counter()
        cfg = self.config
        history = history.before(end) if end is not None else history
        start, end = history.start, day_start(end if end is not None else history.end)
        history = self._training_sample(history)
        if cfg.text_feature_dims > 0:
            from predictor.model.text_features import ProductTextFeatures

            self.text = ProductTextFeatures(cfg.text_feature_dims, cfg.random_seed).fit(history, end)
        return self.fit_rows(HistoryRows(history, cfg, self.text), start, end, started=started)

    def fit_rows(self, rows, start: pd.Timestamp, end: pd.Timestamp, fit_booster=fit_in_process,
                 started: float | None = None) -> "CLVModel":
        """The fit from a source of rows (`rows.stack(pairs)`, `rows.validation(cutoff, days)`): one history
        in this process (HistoryRows), or customer buckets on a cluster, whose training rows stay there as
        Dask frames and whose boosters `fit_booster` trains with xgboost.dask."""
        started = time.perf_counter() if started is None else started
        cfg = self.config
        span = (end - start) / pd.Timedelta(days=1)
        # Validation: the newest window, never overlapping the labels of the rows it judges.
        val_days = cfg.validation_days(span)
        val_cutoff = end - pd.Timedelta(days=val_days)
        train_pairs = training_cutoffs(start, val_cutoff, cfg)
        if not train_pairs:
            raise TrainingError(f"History from {start.date()} to {end.date()} ({span:.0f} days) is too short to "
                                f"validate; need at least {cfg.min_training_days} days.")
        x_tr, y_tr = rows.stack(train_pairs)
        x_val, y_val = rows.validation(val_cutoff, val_days)
        y_val_target = y_val["spend"].to_numpy() * label_scale(x_val, val_days, cfg)
        x_val = x_val.reset_index(drop=True)
        last_val = x_val["last_period_value"].to_numpy() * (cfg.horizon_days / val_days)

        self.validation = {"cutoff": str(val_cutoff.date()), "label_days": val_days, "rows": len(x_val)}
        v_depth, v_rounds, blended = self._choose_value_model(x_tr, y_tr, x_val, y_val_target, last_val, fit_booster)
        churn_val = ~y_val["ordered"].to_numpy()
        c_depth, c_rounds, churn_loss, val_churn = self._choose_churn_model(x_tr, y_tr, x_val, churn_val, fit_booster)
        # The interval, conformalised on the validation window by a booster that never saw it.
        val_interval = fit_interval(x_tr[self.feature_names], y_tr["target"], y_tr["label_days"], cfg, fit_booster)
        self.interval_shift = conformal_shift(val_interval.predict(x_val[self.feature_names]), y_val_target)
        del x_tr, y_tr  # the final fit stacks its own rows
        self.params = {"value": {"max_depth": v_depth, "n_estimators": v_rounds},
                       "churn": {"max_depth": c_depth, "n_estimators": c_rounds}}
        self.validation_metrics = {
            "spearman": float(spearmanr(blended, y_val_target).statistic),
            "normalized_gini": normalized_gini(y_val_target, blended),
            "churn_log_loss": churn_loss,
            "blend_weight": self.blend_weight,
            # What model_report says in words: the window's revenue share of the top 10% by prediction, and
            # churn risk (before calibration, which is fitted on this same window) against no skill.
            **held_out_quality(y_val["spend"].to_numpy(), blended, churn_val, val_churn),
        }
        # The lift chart of the same window: realised spend per decile of predicted value.
        self.validation["lift_by_decile"] = decile_lift(y_val["spend"].to_numpy(), blended)
        self._fit_final(rows, start, end, fit_booster)
        self.data_range = {"start": str(start.date()), "end": str(end.date())}
        limits = history_limits(span, cfg.horizon_days, max(self.training_window["label_days"]), val_days,
                                self.blend_weight)
        self.history_limits = [limit.as_dict() for limit in limits]
        self.warnings = [limit.reason for limit in limits]
        self.fit_seconds = time.perf_counter() - started
        return self

    def _training_sample(self, history: CustomerHistory) -> CustomerHistory:
        """The customers training sees: all, or the seeded-hash sample of training_sample_share."""
        customers = pd.Index(history.orders["customer_id"].unique())
        sample = training_sample(customers, self.config.training_sample_share, self.config.random_seed)
        self.training_sample = {"customers": int(len(sample)), "of": int(len(customers)),
                                "method": "all" if len(sample) == len(customers) else "seeded hash of customer_id"}
        return history if len(sample) == len(customers) else history.subset(sample)

    def _choose_value_model(self, x_tr, y_tr, x_val, y_val_target, last_val, fit_booster) -> tuple[int, int, np.ndarray]:
        """The value model's depth and rounds by validation rank score, and its blend with last-period spend."""
        cfg = self.config
        best = None
        for depth, rounds in cfg.value_grid:
            model = fit_booster(value_model(depth, rounds, cfg), x_tr[self.feature_names], y_tr["target"])
            pred = model.predict(x_val[self.feature_names])
            score = _rank_score(y_val_target, pred)
            if best is None or score > best[0]:
                best = (score, depth, rounds, pred)
        _, v_depth, v_rounds, val_pred = best
        # Seasonality the training labels never saw: blend with last-period spend, weight chosen on validation.
        # The baseline is first rescaled to the model's total, so the blend reshapes the ranking without
        # importing the baseline's level (last-period spend overshoots by 2x on CDNOW).
        self.last_period_scale = float(val_pred.sum() / max(last_val.sum(), 1e-9))
        last_val = last_val * self.last_period_scale
        blend_scores = {w: _rank_score(y_val_target, w * val_pred + (1 - w) * last_val) for w in cfg.blend_grid}
        self.blend_weight = float(max(blend_scores, key=blend_scores.get))
        blended = self.blend_weight * val_pred + (1 - self.blend_weight) * last_val
        # No level is chosen on the validation window yet: measured on the rolling-origin splits it
        # moved the total further off than the model's own level (see the README); 1.0 is "as trained".
        self.total_scale, self.level_source = 1.0, LEVEL_SOURCE
        return v_depth, v_rounds, blended

    def _choose_churn_model(self, x_tr, y_tr, x_val, churn_val, fit_booster) -> tuple[int, int, float, np.ndarray]:
        """The churn model's depth and rounds by validation log loss, and its isotonic calibration."""
        cfg = self.config
        best = None
        for depth, rounds in cfg.churn_grid:
            model = fit_booster(churn_model(depth, rounds, cfg), x_tr[self.feature_names], ~y_tr["ordered"])
            prob = model.predict_proba(x_val[self.feature_names])[:, 1]
            loss = log_loss(churn_val, np.clip(prob, 1e-6, 1 - 1e-6), labels=[False, True])
            if best is None or loss < best[0]:
                best = (loss, depth, rounds, prob)
        loss, c_depth, c_rounds, val_prob = best
        # Isotonic calibration on the validation window (labels at the full horizon length when available).
        self.calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.005, y_max=0.995).fit(val_prob, churn_val)
        return c_depth, c_rounds, float(loss), val_prob

    def _fit_final(self, rows, start, end, fit_booster) -> None:
        """Final models, with the chosen settings, on every row whose labels end by `end`."""
        cfg = self.config
        all_pairs = training_cutoffs(start, end, cfg)
        x_all, y_all = rows.stack(all_pairs)
        features = x_all[self.feature_names]
        value, churn = self.params["value"], self.params["churn"]
        self.value_model = fit_booster(value_model(value["max_depth"], value["n_estimators"], cfg), features,
                                       y_all["target"])
        self.churn_model = fit_booster(churn_model(churn["max_depth"], churn["n_estimators"], cfg), features,
                                       ~y_all["ordered"])
        self.interval_model = fit_interval(features, y_all["target"], y_all["label_days"], cfg, fit_booster)
        ordered = y_all["ordered"]  # a column, not an array: it selects the rows of a Dask frame too
        self.next_order_model = fit_booster(next_order_model(cfg), features[ordered],
                                            np.log1p(y_all["days_to_next"][ordered]))
        self.training_window = {
            "first_cutoff": str(min(c for c, _ in all_pairs).date()),
            "last_cutoff": str(max(c for c, _ in all_pairs).date()),
            "cutoffs": len(all_pairs), "rows": int(len(x_all)),
            "label_days": sorted({int(d) for _, d in all_pairs}),
        }

    def features_at(self, history: CustomerHistory, cutoff, bg: BGNBDGammaGamma | None = None) -> pd.DataFrame:
        """Features at the full horizon; keeps the BG/NBD fit so single customers can be rescored later."""
        features, self.scoring_bg = feature_frame(history, cutoff, self.config.horizon_days, self.config, bg,
                                                  text=getattr(self, "text", None))
        return features

    def predict_features(self, features: pd.DataFrame) -> pd.DataFrame:
        """Predictions for a feature frame at the full horizon (label_days == horizon)."""
        x = feature_matrix(features, self.feature_names)
        threads = self.config.n_jobs
        return pd.DataFrame(self.combine(raw_predict(self.value_model, x, threads),
                                         raw_predict(self.churn_model, x, threads),
                                         raw_predict(self.interval_model, x, threads),
                                         raw_predict(self.next_order_model, x, threads),
                                         features["last_period_value"].to_numpy()), index=features.index)

    def combine(self, model_value: np.ndarray, raw_churn: np.ndarray, log_quantiles: np.ndarray,
                log_next_days: np.ndarray, last_period_value: np.ndarray) -> dict[str, np.ndarray]:
        """The scores from the four models' raw outputs: the value blended with the scaled last-period
        baseline, calibrated churn, the interval around the value, days to the next order. One formula
        for the population path and the one-customer rescoring path."""
        blended = (self.blend_weight * np.clip(model_value, 0, None) + (1 - self.blend_weight)
                   * self.last_period_scale * np.asarray(last_period_value, dtype=float))
        value = self.total_scale * blended
        p10, p90 = served_bounds(log_quantiles, self.interval_shift, value)
        return {"predicted_value": value, "value_p10": p10, "value_p90": p90,
                "churn_risk": self.calibrator.predict(raw_churn),
                "next_order_days": np.expm1(log_next_days).clip(min=1)}

    def predict(self, history: CustomerHistory, cutoff) -> pd.DataFrame:
        return self.predict_features(self.features_at(history, cutoff))

    def summary(self) -> dict:
        return {"config": {k: v for k, v in asdict(self.config).items() if not isinstance(v, tuple)},
                "params": self.params, "blend_weight": self.blend_weight,
                "last_period_scale": self.last_period_scale,
                "level": {"scale": self.total_scale, "source": self.level_source},
                "interval_shift": self.interval_shift,
                "validation": self.validation,
                "validation_metrics": self.validation_metrics, "training_window": self.training_window,
                "data_range": self.data_range, "warnings": self.warnings,
                "history_limits": getattr(self, "history_limits", []),
                "training_sample": getattr(self, "training_sample", None), "fit_seconds": self.fit_seconds}
