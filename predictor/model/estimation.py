"""Label-free performance estimates: how well the model in use is doing on a window whose outcomes are
not in yet, from its own predictions and the customers' features alone.

Both follow NannyML's documented algorithms (NannyML itself is not a dependency: its 0.13 release pulls
FLAML, LightGBM, gcsfs, s3fs, plotly < 6, kaleido and a Segment telemetry client):

- Churn: confidence-based performance estimation (CBPE). The churn risks are first calibrated on a
  reference window whose outcomes are known (isotonic regression, as NannyML does when the scores are
  not calibrated). With calibrated probabilities p, the expected true positives above each threshold are
  the running sum of p and the expected false positives the running sum of 1 - p; the ROC curve drawn
  from them gives the estimated AUC. Valid while the calibration holds (no concept drift).
- Spend: direct loss estimation (DLE). A "nanny" booster learns the absolute error of the value model
  on the reference window from the model's inputs and outputs; its mean prediction on the new window is
  the estimated MAE. Valid while the error's relation to the features holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.isotonic import IsotonicRegression

CBPE_METHOD = ("CBPE (NannyML's confidence-based performance estimation): churn risks calibrated on the "
               "last closed window (isotonic), expected ROC curve from the calibrated probabilities")
DLE_METHOD = ("DLE (NannyML's direct loss estimation): a booster trained on the last closed window to "
              "predict each customer's absolute error from the model's inputs and outputs")
MIN_REFERENCE = 200  # customers in the reference window below which neither estimator is fitted


def expected_auc(probabilities: np.ndarray, scores: np.ndarray | None = None) -> float | None:
    """The ROC AUC expected when each customer churns with probability `probabilities`, ranking by
    `scores` (default: the probabilities). Ties in the score move together along the curve."""
    p = np.asarray(probabilities, dtype="float64")
    s = p if scores is None else np.asarray(scores, dtype="float64")
    positives, negatives = p.sum(), (1 - p).sum()
    if len(p) == 0 or positives <= 0 or negatives <= 0:
        return None
    order = np.argsort(-s, kind="stable")
    p, s = p[order], s[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # the curve's points sit at the end of each tied run
    tpr = np.r_[0.0, np.cumsum(p)[last_of_tie] / positives]
    fpr = np.r_[0.0, np.cumsum(1 - p)[last_of_tie] / negatives]
    return float(np.trapezoid(tpr, fpr))


@dataclass
class ConfidenceBasedEstimator:
    """CBPE for the churn model: fit on a closed window's risks and outcomes, estimate AUC on new risks."""

    calibrator: IsotonicRegression | None = None

    def fit(self, churn_risk: np.ndarray, churned: np.ndarray) -> "ConfidenceBasedEstimator":
        risk, outcome = np.asarray(churn_risk, dtype="float64"), np.asarray(churned, dtype="float64")
        if len(risk) != len(outcome):
            raise ValueError(f"{len(risk)} churn risks but {len(outcome)} outcomes")
        self.calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(risk, outcome)
        return self

    def calibrated(self, churn_risk: np.ndarray) -> np.ndarray:
        if self.calibrator is None:
            raise RuntimeError("fit the estimator on a closed window first")
        return self.calibrator.predict(np.asarray(churn_risk, dtype="float64"))

    def estimate(self, churn_risk: np.ndarray) -> dict:
        p = self.calibrated(churn_risk)
        auc = expected_auc(p, np.asarray(churn_risk, dtype="float64"))
        return {"churn_auc": None if auc is None else round(auc, 4),
                "churn_rate": round(float(p.mean()), 4) if len(p) else None, "method": CBPE_METHOD}


@dataclass
class DirectLossEstimator:
    """DLE for the value model: learns |actual - predicted| on a closed window, estimates MAE on new rows."""

    seed: int = 42
    nanny: xgb.XGBRegressor | None = None
    columns: tuple[str, ...] = ()

    def fit(self, inputs: pd.DataFrame, absolute_error: np.ndarray) -> "DirectLossEstimator":
        error = np.asarray(absolute_error, dtype="float64")
        if len(inputs) != len(error):
            raise ValueError(f"{len(inputs)} rows of model inputs but {len(error)} errors")
        self.columns = tuple(inputs.columns)
        # Shallow and slow-learning: the nanny must not memorise the few large errors of the window.
        self.nanny = xgb.XGBRegressor(n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8,
                                      min_child_weight=5, random_state=self.seed, n_jobs=1)
        self.nanny.fit(inputs.to_numpy(dtype="float32"), error)
        return self

    def estimate(self, inputs: pd.DataFrame) -> dict:
        if self.nanny is None:
            raise RuntimeError("fit the estimator on a closed window first")
        missing = [c for c in self.columns if c not in inputs.columns]
        if missing:
            raise ValueError(f"the new window lacks the model inputs {missing}")
        errors = np.clip(self.nanny.predict(inputs[list(self.columns)].to_numpy(dtype="float32")), 0, None)
        return {"mae": round(float(errors.mean()), 2) if len(errors) else None, "method": DLE_METHOD}


def nanny_inputs(features: pd.DataFrame, predictions: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    """What the DLE nanny sees per customer: the model's features and its outputs."""
    outputs = predictions[["predicted_value", "value_p10", "value_p90", "churn_risk"]]
    inputs = features[feature_names].reset_index(drop=True)
    return pd.concat([inputs, outputs.reset_index(drop=True)], axis=1)
