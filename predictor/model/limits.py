"""Which parts of a prediction a short history leaves weakest, and why, in the words `evaluate`,
`score`, `model_report` and the UI show (the model's `warnings`).

Three limits, each tied to what the training could and could not see:
- a history shorter than the horizon: no label window is as long as the horizon, so every training
  label is a shorter window scaled up to it (the BG/NBD purchase curve), and the level and interval
  are set on a validation window shorter than the horizon; the total is the weakest figure;
- churn risk learnt from label windows shorter than the horizon reads "no order soon" more than
  "no order in the whole horizon";
- a history shorter than a year plus the horizon: no training label covers the same season a year
  earlier, so seasonal peaks come only through the blend with last-period spend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class HistoryLimit:
    part: str  # which figure is weakest: "total", "interval", "churn_risk", "seasonality"
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def history_limits(span_days: float, horizon_days: int, longest_label_days: int, validation_days: int,
                   blend_weight: float) -> list[HistoryLimit]:
    """The limits of a model trained on `span_days` of history for a `horizon_days` horizon."""
    limits = []
    if longest_label_days < horizon_days:
        limits.append(HistoryLimit("total", (
            f"Only {span_days:.0f} days of history for a {horizon_days}-day forecast: no past window is as long "
            f"as the forecast (the longest is {longest_label_days} days), so each customer's predicted value and "
            "above all the total are extrapolated from shorter windows scaled up along the BG/NBD purchase "
            "curve. Treat the total as a rough guide and re-forecast as more history arrives.")))
        limits.append(HistoryLimit("interval", (
            f"The P10-P90 range was calibrated on a {validation_days}-day window scaled up to {horizon_days} "
            "days, so how often it holds over the full forecast is less certain.")))
        limits.append(HistoryLimit("churn_risk", (
            f"Churn risk was learnt from windows of at most {longest_label_days} days, so it reads closer to "
            f"'no order in the next {longest_label_days} days' than in the next {horizon_days}.")))
    if span_days < 365 + horizon_days:
        limits.append(HistoryLimit("seasonality", (
            f"Only {span_days:.0f} days of history: no training label covers the same season a year earlier, "
            "so seasonal peaks (e.g. Christmas) are learnt only through the blend with last-period spend "
            f"(weight {1 - blend_weight:.1f}). Predictions for seasonal windows are less reliable.")))
    return limits
