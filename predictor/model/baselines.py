"""The models marketers use today, as fit/predict estimators: BG/NBD + Gamma-Gamma and last-period spend."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from predictor.errors import ValueDeskError
from predictor.model.columnar import NS_PER_DAY, OrderRuns, Purchases, map_partitions, order_runs
from predictor.model.features import CustomerHistory, day_start
from predictor.model.sampling import smallest_hash_rows


class BaselineFitError(ValueDeskError):
    """No tolerance/penalizer setting let the baseline converge."""


RFM_COLUMNS = ["frequency", "recency", "T", "monetary_value"]
# Tried in order; lifetimes' default tolerance fails to converge on some data sets.
FIT_ATTEMPTS = ((1e-6, 0.0), (1e-4, 0.0), (1e-4, 0.001), (1e-3, 0.01), (1e-3, 0.1))


def rfm_summary(history: CustomerHistory, cutoff) -> pd.DataFrame:
    """lifetimes' (frequency, recency, T, monetary_value) in days, from orders on or before the cutoff,
    one row per customer sorted by customer id.

    Purchases on the same day count as one, as in lifetimes' summary_data_from_transaction_data."""
    runs = order_runs(history.orders)
    customers, block = map_partitions(runs, day_start(cutoff) + pd.Timedelta(days=1),
                                      lambda bought: rfm_columns(bought, cutoff), RFM_COLUMNS)
    summary = pd.DataFrame(block.T, columns=RFM_COLUMNS, index=runs.run_ids(customers), copy=False)
    return summary if summary.index.is_monotonic_increasing else summary.sort_index()


def rfm_columns(bought: Purchases, cutoff) -> dict[str, np.ndarray]:
    """`rfm_summary` on the columnar pass, as RFM_COLUMNS -> column in the purchases' customer order."""
    if not len(bought.rows):
        return {name: np.zeros(0) for name in RFM_COLUMNS}
    ns, amount = bought.column(bought.runs.ns), bought.column(bought.runs.amount)
    day = ns - ns % NS_PER_DAY  # the calendar day (midnight) of each purchase
    new_day = np.r_[True, day[1:] != day[:-1]]
    new_day[bought.first] = True
    day_rows = np.flatnonzero(new_day)
    daily = np.add.reduceat(amount, day_rows)
    first_day, last_day = day[bought.first], day[bought.last]
    frequency = bought.sums(new_day.astype(float)) - 1
    # Gamma-Gamma uses the mean value of repeat purchases only.
    first_spend = daily[np.searchsorted(day_rows, bought.first)]
    repeat = np.clip(bought.sums(amount) - first_spend, 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        monetary = np.where(frequency > 0, repeat / np.where(frequency > 0, frequency, np.nan), 0.0)
    return {"frequency": frequency, "recency": (last_day - first_day) / NS_PER_DAY,
            "T": (day_start(cutoff).value - first_day) / NS_PER_DAY, "monetary_value": monetary}


@dataclass
class BGNBDGammaGamma:
    """BG/NBD for purchase counts plus Gamma-Gamma for order value (lifetimes), one fit per cutoff."""

    # Fit population parameters on a sample for speed: the customers with the smallest seeded hashes.
    max_fit_customers: int | None = None
    random_seed: int = 0
    fitted_with: dict = field(default_factory=dict)
    fit_seconds: float = 0.0

    def fit(self, summary: pd.DataFrame) -> "BGNBDGammaGamma":
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        start = time.perf_counter()
        data = summary
        if self.max_fit_customers:  # a sample the partitioned engine draws the same (predictor/engine)
            data = smallest_hash_rows(summary, self.max_fit_customers, self.random_seed)
        freq, rec, T = (data[c].to_numpy(float) for c in ("frequency", "recency", "T"))
        self.bgf = None
        last_error: Exception | None = None
        for tol, penalizer in FIT_ATTEMPTS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    bgf = BetaGeoFitter(penalizer_coef=penalizer)
                    bgf.fit(freq, rec, T, tol=tol)
                params = bgf.params_.to_numpy(dtype=float)
                if np.all(np.isfinite(params)) and np.all(params > 0):
                    self.bgf = bgf
                    self.fitted_with["bgnbd"] = {"tol": tol, "penalizer": penalizer}
                    break
            except Exception as exc:  # lifetimes raises ConvergenceError or plain errors from scipy
                last_error = exc
        if self.bgf is None:
            raise BaselineFitError(f"BG/NBD did not converge on {len(data)} customers with any of {FIT_ATTEMPTS} "
                                   f"(tolerance, penalizer); last error: {last_error}")

        repeat = data.loc[(data["frequency"] > 0) & (data["monetary_value"] > 0)]
        self.ggf = None
        for tol, penalizer in FIT_ATTEMPTS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ggf = GammaGammaFitter(penalizer_coef=penalizer)
                    ggf.fit(repeat["frequency"].to_numpy(float), repeat["monetary_value"].to_numpy(float), tol=tol)
                params = ggf.params_.to_numpy(dtype=float)
                if np.all(np.isfinite(params)) and np.all(params > 0):
                    self.ggf = ggf
                    self.fitted_with["gamma_gamma"] = {"tol": tol, "penalizer": penalizer}
                    break
            except Exception as exc:
                last_error = exc
        if self.ggf is None:
            raise BaselineFitError(f"Gamma-Gamma did not converge on {len(repeat)} repeat customers with any of "
                                   f"{FIT_ATTEMPTS} (tolerance, penalizer); last error: {last_error}")
        self.fit_seconds = time.perf_counter() - start
        return self

    def predict(self, summary: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
        """Expected orders, order value, spend and P(no order) over the horizon, per customer."""
        columns = self.predict_arrays(*(summary[c].to_numpy(float) for c in ("frequency", "recency", "T", "monetary_value")),
                                      horizon_days)
        return pd.DataFrame(columns, index=summary.index)

    def predict_arrays(self, freq: np.ndarray, rec: np.ndarray, T: np.ndarray, monetary_value: np.ndarray,
                       horizon_days: float) -> dict[str, np.ndarray]:
        """`predict` on plain arrays: the one formula both the population and the one-customer rescoring use."""
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            expected_orders = self.bgf.conditional_expected_number_of_purchases_up_to_time(horizon_days, freq, rec, T)
            p_alive = self.bgf.conditional_probability_alive(freq, rec, T)
            value = self.ggf.conditional_expected_average_profit(freq, monetary_value)
        r, alpha = self.bgf.params_["r"], self.bgf.params_["alpha"]
        # P(no purchase in (T, T+h]) = 1 - P(alive) * (1 - ((alpha+T)/(alpha+T+h))^(r+x))
        p_buy_if_alive = 1.0 - ((alpha + T) / (alpha + T + horizon_days)) ** (r + freq)
        out = {"expected_orders": np.nan_to_num(np.asarray(expected_orders, float)),
               "p_alive": np.clip(np.nan_to_num(np.asarray(p_alive, float), nan=0.5), 0, 1),
               "expected_order_value": np.nan_to_num(np.asarray(value, float))}
        out["predicted_value"] = out["expected_orders"] * out["expected_order_value"]
        out["churn_risk"] = np.clip(1.0 - out["p_alive"] * p_buy_if_alive, 0, 1)
        return out


@dataclass
class LastPeriodSpend:
    """Spend in the last `horizon_days` before the cutoff, scaled when the history is shorter."""

    def predict(self, history: CustomerHistory, cutoff, horizon_days: int, customers: pd.Index) -> pd.Series:
        runs = order_runs(history.orders)
        spend = pd.Series(self.per_run(runs, history.start, cutoff, horizon_days), index=runs.run_ids())
        return spend.reindex(pd.Index(customers), fill_value=0.0)

    @staticmethod
    def per_run(runs: OrderRuns, start: pd.Timestamp, cutoff, horizon_days: int) -> np.ndarray:
        """The prediction for every customer (run) of `runs`: net spend in the window, floored at 0."""
        edge = day_start(cutoff) + pd.Timedelta(days=1)
        available = (edge - start) / pd.Timedelta(days=1)
        window_days = min(horizon_days, available)
        lo = edge - pd.Timedelta(days=window_days)
        rows = np.flatnonzero((runs.ns >= lo.value) & (runs.ns < edge.value))
        return np.clip(runs.run_sums(rows, runs.amount[rows]), 0, None) * (horizon_days / window_days)
