"""The models marketers use today, as fit/predict estimators: BG/NBD + Gamma-Gamma and last-period spend."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from predictor.errors import ValueDeskError
from predictor.model.features import CustomerHistory, day_start


class BaselineFitError(ValueDeskError):
    """No tolerance/penalizer setting let the baseline converge."""


# Tried in order; lifetimes' default tolerance fails to converge on some data sets.
FIT_ATTEMPTS = ((1e-6, 0.0), (1e-4, 0.0), (1e-4, 0.001), (1e-3, 0.01), (1e-3, 0.1))


def rfm_summary(history: CustomerHistory, cutoff) -> pd.DataFrame:
    """lifetimes' (frequency, recency, T, monetary_value) in days, from orders on or before the cutoff.

    Purchases on the same day count as one, as in lifetimes' summary_data_from_transaction_data."""
    edge = day_start(cutoff) + pd.Timedelta(days=1)
    orders = history.orders
    purchases = orders.loc[(orders["timestamp"] < edge) & ~orders["is_cancellation"] & (orders["amount"] > 0)]
    daily = purchases.assign(day=purchases["timestamp"].dt.normalize()).groupby(
        ["customer_id", "day"], observed=True, sort=False)["amount"].sum().reset_index()
    g = daily.groupby("customer_id", observed=True, sort=True)
    first, last, count = g["day"].min(), g["day"].max(), g.size()
    cutoff_day = day_start(cutoff)
    summary = pd.DataFrame({
        "frequency": (count - 1).astype(float),
        "recency": (last - first) / pd.Timedelta(days=1),
        "T": (cutoff_day - first) / pd.Timedelta(days=1),
    })
    # Gamma-Gamma uses the mean value of repeat purchases only.
    first_spend = daily.sort_values("day").groupby("customer_id", observed=True)["amount"].first()
    total = g["amount"].sum()
    repeat = (total - first_spend).clip(lower=0)
    summary["monetary_value"] = np.where(summary["frequency"] > 0, repeat / summary["frequency"].replace(0, np.nan), 0.0)
    summary.index = summary.index.astype("string")
    return summary


@dataclass
class BGNBDGammaGamma:
    """BG/NBD for purchase counts plus Gamma-Gamma for order value (lifetimes), one fit per cutoff."""

    max_fit_customers: int | None = None  # fit population parameters on a seeded sample for speed
    random_seed: int = 0
    fitted_with: dict = field(default_factory=dict)
    fit_seconds: float = 0.0

    def fit(self, summary: pd.DataFrame) -> "BGNBDGammaGamma":
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        start = time.perf_counter()
        data = summary
        if self.max_fit_customers and len(summary) > self.max_fit_customers:
            data = summary.sample(self.max_fit_customers, random_state=self.random_seed)
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
        edge = day_start(cutoff) + pd.Timedelta(days=1)
        available = (edge - history.start) / pd.Timedelta(days=1)
        window_days = min(horizon_days, available)
        lo = edge - pd.Timedelta(days=window_days)
        orders = history.orders
        window = orders.loc[(orders["timestamp"] >= lo) & (orders["timestamp"] < edge)]
        spend = window.groupby("customer_id", observed=True)["amount"].sum().clip(lower=0)
        return spend.reindex(customers, fill_value=0.0) * (horizon_days / window_days)
