"""The conformal interval and the short-history limits (predictor/model/intervals.py, limits.py)."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.model.intervals import conformal_shift, interval_bounds
from predictor.model.limits import history_limits


def _covered(log_q, realised, shift):
    p10, p90 = interval_bounds(log_q, shift)
    return np.mean((realised >= p10) & (realised <= p90))


@pytest.mark.parametrize("coverage", [0.6, 0.8, 0.9])
def test_the_shift_makes_the_calibration_rows_covered_as_claimed(online_retail_history, coverage):
    # Real spends: each customer's 2011 spend, against a deliberately too-wide and a too-narrow interval.
    orders = online_retail_history.orders
    spend = orders.loc[orders["timestamp"] >= "2011-01-01"].groupby("customer_id", observed=True)["amount"].sum()
    realised = spend.clip(lower=0).to_numpy()
    for width in (0.2, 3.0):
        centre = np.log1p(np.median(realised))
        log_q = np.column_stack([np.zeros(len(realised)), np.full(len(realised), centre + width)])
        shift = conformal_shift(log_q, realised, coverage)
        n = len(realised)
        assert _covered(log_q, realised, shift) == pytest.approx(np.ceil((n + 1) * coverage) / n, abs=2 / n)


def test_rows_below_the_lower_end_stay_misses():
    realised = np.array([0.0, 0.0, 5.0, 50.0, 500.0])
    log_q = np.column_stack([np.log1p([10.0] * 5), np.log1p([1000.0] * 5)])
    shift = conformal_shift(log_q, realised, 0.8)
    # Three rows lie under P10 = 10 whatever the shift: at most 2 of 5 can be covered, and they are.
    assert _covered(log_q, realised, shift) == pytest.approx(0.4)


def test_limits_name_the_weakest_parts_and_why():
    short = {limit.part: limit.reason for limit in history_limits(190, 183, 140, 66, 0.8)}
    assert set(short) == {"total", "interval", "churn_risk", "seasonality"}
    assert "190 days" in short["total"] and "140 days" in short["total"] and "BG/NBD" in short["total"]
    assert "66-day window" in short["interval"]  # the validation window the interval was calibrated on
    assert "140 days" in short["churn_risk"]
    # Enough history for a full horizon label but not a year before it: only the season is weak.
    assert [limit.part for limit in history_limits(400, 183, 183, 183, 1.0)] == ["seasonality"]
    assert history_limits(800, 183, 183, 183, 1.0) == []
