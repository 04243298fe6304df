"""Score every customer (train on all history, predict the next horizon) and rescore one customer
from a saved model without retraining."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from predictor.atomic import atomic_path
from predictor.model.artifacts import ModelBundle, load_model_bundle, save_model
from predictor.errors import DataError
from predictor.model.explain import drivers, row_drivers
from predictor.model.features import CustomerHistory, day_start
from predictor.model.boosters import iteration_range
from predictor.model.estimators import CLVModel, TrainingConfig
from predictor.model.rescoring import NS_PER_DAY, customer_from_lines, feature_row, feature_vector

# A customer this likely to place no order in the horizon gets no expected next-order date.
NO_NEXT_ORDER_ABOVE = 0.8


def score_frame(model: CLVModel, history: CustomerHistory, as_of, currency: str = "£",
                with_drivers: bool = True, bg=None) -> pd.DataFrame:
    """The scores table (docs/CONTRACTS.md) for every customer with an order on or before `as_of`."""
    as_of = day_start(as_of)
    features = model.features_at(history, as_of, bg=bg)
    pred = model.predict_features(features)
    out = pd.DataFrame(index=features.index)
    out["as_of"] = as_of
    out["horizon_days"] = model.config.horizon_days
    out = out.join(pred)
    out["expected_next_order"] = (as_of + pd.to_timedelta(out["next_order_days"].round(), unit="D")).where(
        out["churn_risk"] < NO_NEXT_ORDER_ABOVE)
    orders = history.before(as_of).orders
    purchases = orders.loc[~orders["is_cancellation"] & (orders["amount"] > 0)]
    g = orders.groupby("customer_id", observed=True)
    out["historical_value"] = g["amount"].sum().reindex(out.index).clip(lower=0)
    recent = orders.loc[orders["timestamp"] >= as_of + pd.Timedelta(days=1) - pd.Timedelta(days=365)]
    out["revenue_12m"] = recent.groupby("customer_id", observed=True)["amount"].sum().reindex(out.index).fillna(0).clip(lower=0)
    pg = purchases.groupby("customer_id", observed=True)
    out["orders"] = pg["order_id"].nunique().reindex(out.index).fillna(0).astype(int)
    out["first_order"] = pg["timestamp"].min().reindex(out.index)
    out["last_order"] = pg["timestamp"].max().reindex(out.index)
    out["recency_days"] = features["recency_days"]
    out["tenure_days"] = features["tenure_days"]
    out["mean_gap_days"] = features["mean_gap_days"]
    out["aov"] = features["aov"]
    out["spend_90d"] = features["spend_90d"]
    out["trend"] = features["trend_90d"]
    out["country"] = _main_country(history, out.index)
    out["drivers"] = drivers(model.value_model.get_booster(), features[model.value_model.feature_names_in_],
                             currency=currency) if with_drivers else [[] for _ in range(len(out))]
    out = pd.concat([out, features.drop(columns="label_scale").add_prefix("f_")], axis=1)
    out.index.name = "customer_id"
    return out.reset_index()


def _main_country(history: CustomerHistory, index: pd.Index) -> pd.Series:
    lines = history.lines
    if lines is None or "country" not in lines:
        return pd.Series(pd.NA, index=index, dtype="string")
    top = lines.dropna(subset=["country"]).groupby(["customer_id", "country"], observed=True).size()
    if top.empty:
        return pd.Series(pd.NA, index=index, dtype="string")
    # The most frequent country, ties to the name that sorts first (as the one-customer path does): an
    # explicit, per-customer rule. A plain sort of the counts is not stable, so which tied country won
    # could change when some other customer's counts did.
    top = top.rename("n").reset_index()
    top["country"] = top["country"].astype("string")
    main = (top.sort_values(["customer_id", "n", "country"], ascending=[True, False, True], kind="stable")
            .drop_duplicates("customer_id").set_index("customer_id")["country"])
    return main.reindex(index).astype("string")


def with_categories(transactions: pd.DataFrame) -> pd.DataFrame:
    """The log with every product line categorised as `valuedesk build` does (the source's category
    first, the keyword rules of predictor/data/categories.py for the rest); unchanged when every product
    line already has a category (a build's cached log) or the log names no products (CDNOW).

    Categorising is idempotent: a log categorised once gets the same categories again, so scoring the
    raw log and scoring the cached, categorised one see the same category features."""
    if "product_id" not in transactions:
        return transactions
    products = transactions["product_id"].notna()
    if not products.any():
        return transactions
    if "category" in transactions and transactions.loc[products, "category"].notna().all():
        return transactions
    from predictor.data.categories import apply_categories, build_category_map

    return apply_categories(transactions, build_category_map(transactions).mapping)


def history_from_transactions(transactions: pd.DataFrame) -> CustomerHistory:
    lines = transactions
    if "country" in transactions and transactions["country"].notna().any():
        history = CustomerHistory.from_lines(transactions)
        keep = ~transactions["is_outlier"].astype(bool) if "is_outlier" in transactions else slice(None)
        detail = lines.loc[keep, [c for c in ("customer_id", "timestamp", "amount", "product_id", "category", "country")
                                  if c in lines]]
        history.lines = detail.assign(customer_id=detail["customer_id"].astype("string"))
        return history
    return CustomerHistory.from_lines(transactions)


def score_customers(transactions: pd.DataFrame, settings, config: TrainingConfig | None = None,
                    data_fingerprint: str = "", evaluation: dict | None = None,
                    promotion: dict | None = None) -> tuple[pd.DataFrame, ModelBundle]:
    """Train on all history, score everyone as of the last day in the data, save model and scores.

    Product categories are filled the way `valuedesk build` fills them before training, so the model
    depends on the data alone: a log fresh from the source and the build's cached log (which carries
    the derived categories) give bit-identical models and scores."""
    history = history_from_transactions(with_categories(transactions))
    config = config or TrainingConfig.from_settings(settings)
    model = CLVModel(config).fit(history)
    scores = score_frame(model, history, history.end, settings.currency_symbol)
    bundle = save_model(model, settings.model_dir, data_fingerprint, evaluation, promotion)
    scores["model_version"] = bundle.metadata["version"]
    with atomic_path(settings.scores_path) as tmp:
        scores.to_parquet(tmp, index=False)
    return scores, bundle


class CustomerScorer:
    """Rescore one customer after a new order with the saved model: no retraining, no population refit.

    `score_orders` computes the customer's feature row with numpy (predictor/model/rescoring.py) and predicts
    with the boosters directly, in a few milliseconds; `score_orders_population` runs the same orders
    through the population path (`score_frame`), the reference the fast path is tested against."""

    REQUIRED = ("timestamp", "amount")

    def __init__(self, bundle: ModelBundle, settings):
        self.bundle = bundle
        self.settings = settings
        self.model = bundle.model
        self.data_start = pd.Timestamp(bundle.metadata["data_range"]["start"])
        self.data_end = pd.Timestamp(bundle.metadata["data_range"]["end"])
        # One row at a time: a thread pool costs more than it saves and stalls on a busy machine.
        self._boosters = {}
        for name in ("value_model", "churn_model", "interval_model", "next_order_model"):
            estimator = getattr(self.model, name)
            estimator.set_params(n_jobs=1)
            booster = estimator.get_booster()
            booster.set_param({"nthread": 1})
            self._boosters[name] = (booster, iteration_range(estimator))

    @classmethod
    def load(cls, settings) -> "CustomerScorer":
        return cls(load_model_bundle(settings), settings)

    def _prepare(self, orders: pd.DataFrame, customer_id: str, as_of) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
        """Validated lines, the scoring day and the data start the features count from."""
        missing = [c for c in self.REQUIRED if c not in orders]
        if missing:
            raise DataError(f"Orders are missing {', '.join(missing)}", column=missing[0],
                            expected="each order with a timestamp and an amount")
        if orders.empty:
            raise DataError("No orders given", expected="at least one order with a timestamp and an amount")
        frame = orders.copy()
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], errors="coerce")
        bad = frame["timestamp"].isna()
        if bad.any():
            raise DataError("Unparseable order date", column="timestamp", row=int(np.flatnonzero(bad)[0]),
                            expected="an ISO date such as 2011-11-30")
        out_of_range = (frame["timestamp"] < pd.Timestamp("1970-01-01")) | (frame["timestamp"] > pd.Timestamp("2100-01-01"))
        if out_of_range.any():
            raise DataError("Order date out of range", column="timestamp", row=int(np.flatnonzero(out_of_range)[0]),
                            expected="a date between 1970 and 2100")
        frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce")
        if frame["amount"].isna().any():
            raise DataError("Unparseable order amount", column="amount",
                            row=int(np.flatnonzero(frame["amount"].isna())[0]), expected="a number")
        frame["customer_id"] = str(customer_id)
        default_ids = pd.Series([f"{customer_id}-{i}" for i in range(len(frame))], index=frame.index)
        if "order_id" not in frame:
            frame["order_id"] = default_ids
        else:
            # An order sent without an id is still an order; without its own id it would merge with
            # (or vanish into) the others.
            given = frame["order_id"].astype("string").str.strip()
            frame["order_id"] = given.mask(given.isna() | (given == ""), default_ids)
        frame["is_cancellation"] = frame["amount"] < 0
        first, last = frame["timestamp"].min(), frame["timestamp"].max()
        data_start = min(self.data_start, day_start(first))
        as_of = day_start(as_of) if as_of is not None else max(self.data_end, day_start(last))
        return frame, as_of, data_start

    @staticmethod
    def _no_purchase(as_of: pd.Timestamp) -> DataError:
        return DataError(f"No purchase on or before {as_of.date()}", column="amount",
                         expected="at least one order with a positive amount on or before the scoring date")

    def score_orders(self, orders: pd.DataFrame, customer_id: str = "new", as_of=None) -> dict:
        """Scores for one customer's order history as of `as_of` (default: the model's last data day, or the
        customer's last order day if later): the keys of one scores-table row plus model_version and score_ms."""
        if self.model.scoring_bg is None:  # a bundle without BG/NBD parameters: only the population path copes
            return self.score_orders_population(orders, customer_id, as_of)
        frame, as_of, data_start = self._prepare(orders, customer_id, as_of)
        started = time.perf_counter()
        horizon = self.model.config.horizon_days
        customer = customer_from_lines(frame, data_start)
        row = feature_row(customer, as_of, horizon, self.model.scoring_bg)
        if row is None:
            raise self._no_purchase(as_of)
        x = feature_vector(row)
        pred = self._predict(x, row["last_period_value"])

        edge = (as_of + pd.Timedelta(days=1)).value
        past = customer.order_ns < edge
        buy = past & ~customer.order_cancel & (customer.order_amount > 0)
        recent = past & (customer.order_ns >= edge - 365 * NS_PER_DAY)
        result = {"customer_id": str(customer_id), "as_of": as_of, "horizon_days": horizon, **pred}
        result["expected_next_order"] = (as_of + pd.Timedelta(days=float(np.round(pred["next_order_days"])))
                                         if pred["churn_risk"] < NO_NEXT_ORDER_ABOVE else pd.NaT)
        result["historical_value"] = max(float(customer.order_amount[past].sum()), 0.0)
        result["revenue_12m"] = max(float(customer.order_amount[recent].sum()), 0.0)
        result["orders"] = int(buy.sum())
        result["first_order"] = pd.Timestamp(int(customer.order_ns[buy].min()))
        result["last_order"] = pd.Timestamp(int(customer.order_ns[buy].max()))
        for key, feature in (("recency_days", "recency_days"), ("tenure_days", "tenure_days"),
                             ("mean_gap_days", "mean_gap_days"), ("aov", "aov"), ("spend_90d", "spend_90d"),
                             ("trend", "trend_90d")):
            result[key] = row[feature]
        result["country"] = customer.country
        booster, _ = self._boosters["value_model"]
        result["drivers"] = row_drivers(booster, x, row, currency=self.settings.currency_symbol)
        result.update({f"f_{name}": value for name, value in row.items()})
        result["model_version"] = self.bundle.metadata["version"]
        result["score_ms"] = (time.perf_counter() - started) * 1000
        return result

    def _predict(self, x: np.ndarray, last_period_value: float) -> dict:
        """CLVModel.predict_features for one float32 row, through the boosters (no sklearn wrapper)."""
        def run(name: str) -> np.ndarray:
            booster, rounds = self._boosters[name]
            return booster.inplace_predict(x, iteration_range=rounds)

        scores = self.model.combine(run("value_model"), run("churn_model"), run("interval_model"),
                                    run("next_order_model"), np.array([last_period_value]))
        return {name: float(values[0]) for name, values in scores.items()}

    def score_orders_population(self, orders: pd.DataFrame, customer_id: str = "new", as_of=None) -> dict:
        """`score_orders` through the population path (score_frame on a one-customer history): slower, kept as
        the reference the fast path must agree with."""
        frame, as_of, data_start = self._prepare(orders, customer_id, as_of)
        history = history_from_transactions(frame.sort_values("timestamp"))
        history.data_start = data_start
        known = history.before(as_of).orders
        if not (~known["is_cancellation"] & (known["amount"] > 0)).any():
            raise self._no_purchase(as_of)
        started = time.perf_counter()
        row = score_frame(self.model, history, as_of, self.settings.currency_symbol, bg=self.model.scoring_bg)
        result = row.iloc[0].to_dict()
        result["model_version"] = self.bundle.metadata["version"]
        result["score_ms"] = (time.perf_counter() - started) * 1000
        return result
