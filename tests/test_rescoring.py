"""The one-customer fast path (predictor/rescoring.py) against the population path (score_frame):
same feature row, predictions and drivers for real Online Retail and CDNOW customers and the edge cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from predictor.errors import DataError
from predictor.models import MODEL_FEATURES
from predictor.scoring import CustomerScorer

PRODUCT_COLUMNS = ["product_id", "product_name", "category", "country"]


@pytest.fixture(scope="module")
def scorer(scored_settings):
    return CustomerScorer.load(scored_settings)


def _missing(value) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def assert_same_scores(fast: dict, reference: dict, label: str) -> None:
    assert list(fast) == list(reference), label
    feature_keys = [f"f_{name}" for name in MODEL_FEATURES]
    got_row = np.array([fast[k] for k in feature_keys], dtype=float)
    want_row = np.array([reference[k] for k in feature_keys], dtype=float)
    assert np.allclose(got_row, want_row, rtol=1e-9, atol=1e-9, equal_nan=True), (
        label, [(k, fast[k], reference[k]) for k, a, b in zip(feature_keys, got_row, want_row)
                if not np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True)])
    for key, want in reference.items():
        if key == "score_ms":
            continue
        got = fast[key]
        if _missing(want):
            assert _missing(got), (label, key, got, want)
        elif isinstance(want, float):
            assert type(got) is float and got == pytest.approx(want, rel=1e-9, abs=1e-9), (label, key, got, want)
        else:  # ids, dates, integer counts, the country, the driver sentences
            assert type(got) is type(want) and got == want, (label, key, got, want)


def check(scorer: CustomerScorer, orders: pd.DataFrame, customer_id: str = "new", as_of=None) -> dict:
    fast = scorer.score_orders(orders, customer_id=customer_id, as_of=as_of)
    reference = scorer.score_orders_population(orders, customer_id=customer_id, as_of=as_of)
    assert_same_scores(fast, reference, customer_id)
    return fast


def with_new_order(own: pd.DataFrame, day: pd.Timestamp, amount: float, order_id: str) -> pd.DataFrame:
    """The customer's lines plus one new order: a copy of their last line, re-dated and re-priced."""
    new = own.tail(1).copy()
    new["order_id"], new["timestamp"], new["amount"] = order_id, day + pd.Timedelta(hours=11), amount
    if "is_cancellation" in new:
        new["is_cancellation"] = False
    if "is_outlier" in new:
        new["is_outlier"] = False
    return pd.concat([own, new], ignore_index=True)


def test_fast_path_matches_population_path_on_200_online_retail_customers(scorer, online_retail):
    tx = online_retail.transactions
    rng = np.random.default_rng(11)
    ids = rng.choice(tx["customer_id"].unique(), 200, replace=False)
    end = tx["timestamp"].max().normalize()
    lines = tx[tx["customer_id"].isin(ids)]
    checked = with_products = with_country = 0
    for i, (customer, own) in enumerate(lines.groupby("customer_id", observed=True)):
        if not ((~own["is_cancellation"]) & ~own["is_outlier"] & (own["amount"] > 0)).any():
            continue  # only refunds or flagged lines: neither path scores them (tested below)
        orders = with_new_order(own, end - pd.Timedelta(days=int(rng.integers(0, 30))),
                                float(rng.uniform(5, 900)), f"N{customer}")
        # Half with product lines and countries, half as a plain order list (the API's usual input).
        if i % 2:
            orders = orders.drop(columns=PRODUCT_COLUMNS)
        row = check(scorer, orders, str(customer))
        checked += 1
        with_products += not np.isnan(row["f_distinct_products"])
        with_country += row["country"] is not None
    assert checked >= 190 and with_products >= 90 and with_country >= 90


def test_fast_path_matches_population_path_on_cdnow_customers(scorer, cdnow):
    """CDNOW histories (1997-98, many same-day orders, up to 18 months) scored on their own timeline:
    the history reaches back a year, so the same-window-last-year feature is computed too."""
    tx = cdnow.transactions
    rng = np.random.default_rng(3)
    counts = tx.groupby("customer_id", observed=True).size()
    ids = [*rng.choice(counts.index[counts == 1], 20, replace=False),
           *rng.choice(counts.index[counts > 1], 80, replace=False), counts.idxmax()]
    as_of = tx["timestamp"].max().normalize()
    seen_last_year = 0
    for customer in ids:
        own = tx[tx["customer_id"] == customer]
        row = check(scorer, own, str(customer), as_of=as_of)
        seen_last_year += not np.isnan(row["f_spend_same_window_last_year"])
    assert seen_last_year == len(ids)


def orders(*rows, **columns) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["timestamp", "amount"])
    for name, values in columns.items():
        frame[name] = values
    return frame


EDGE_CASES = {
    "one order": orders(("2011-05-01", 20.0)),
    "one order today": orders(("2011-12-09 18:00", 55.0)),
    "same-day orders": orders(("2011-03-01 09:00", 10.0), ("2011-06-01 09:00", 30.0),
                              ("2011-06-01 15:00", 45.0), ("2011-06-01 16:00", 5.0)),
    "a refund order": orders(("2011-02-01", 100.0), ("2011-02-10", -40.0), ("2011-08-01", 60.0)),
    "refunds above spend": orders(("2011-02-01", 50.0), ("2011-02-10", -80.0)),
    "an order netting a refund line": orders(("2011-02-01", 100.0), ("2011-04-01", 70.0), ("2011-04-01", -20.0),
                                             ("2011-09-01", 35.0), order_id=["A", "B", "B", "C"]),
    "no order ids (each row an order)": orders(("2011-01-05", 12.0), ("2011-01-05", 8.0), ("2011-10-01", 9.0)),
    "some rows without an order id": orders(("2011-01-05", 12.0), ("2011-03-05", 8.0), ("2011-10-01", 9.0),
                                            order_id=["A", None, "C"]),
    "quantity on some lines": orders(("2011-01-05", 12.0), ("2011-05-05", 8.0), ("2011-10-01", 9.0),
                                     quantity=[3.0, None, 7.0]),
    "products, no categories": orders(("2011-01-05", 12.0), ("2011-01-05", 8.0), ("2011-10-01", 9.0),
                                      order_id=["A", "A", "B"], product_id=["p1", "p2", "p1"]),
    "products and categories, no country": orders(
        ("2011-01-05", 12.0), ("2011-01-05", 8.0), ("2011-10-01", 9.0), ("2011-10-02", -4.0),
        order_id=["A", "A", "B", "C"], product_id=["p1", "p2", "p3", "p4"], category=["tea", "cups", "tea", "toys"]),
    "a category only on a refund line": orders(("2011-01-05", 12.0), ("2011-10-02", -4.0),
                                               category=[None, "toys"]),
    "countries tied": orders(("2011-01-05", 12.0), ("2011-06-05", 8.0), ("2011-10-01", 9.0), ("2011-10-02", 9.0),
                             product_id=["p1", "p2", "p3", None], country=["Spain", "France", "Spain", "France"]),
    "a country and categories, refund lines": orders(
        ("2011-01-05", 12.0), ("2011-01-05", -2.0), ("2011-07-01", 30.0), ("2011-11-01", 9.0),
        order_id=["A", "A", "B", "C"], product_id=["p1", "p1", "p2", "p3"], category=["tea", "tea", None, "cups"],
        country=["Spain", "Spain", None, "Spain"]),
    "a flagged outlier line": orders(("2011-01-05", 12.0), ("2011-02-05", 90000.0), ("2011-10-01", 9.0),
                                     is_outlier=[False, True, False]),
    "older than the model's data": orders(("2009-03-01", 40.0), ("2009-11-20", 25.0), ("2010-06-01", 30.0),
                                          ("2011-11-28", 45.0)),
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_fast_path_matches_population_path_on_edge_cases(scorer, case):
    check(scorer, EDGE_CASES[case], customer_id=case)


def test_fast_path_matches_when_scoring_before_the_last_orders(scorer):
    history = orders(("2011-01-05", 12.0), ("2011-04-05", 80.0), ("2011-06-01", 9.0), ("2011-11-01", 300.0))
    row = check(scorer, history, as_of="2011-06-01")
    assert row["orders"] == 3 and row["historical_value"] == pytest.approx(101.0)


@pytest.mark.parametrize("history", [orders(("2011-02-10", -40.0)), orders(("2011-11-10", 40.0))],
                         ids=["only a refund", "every order after as_of"])
def test_no_purchase_to_score_is_a_data_error_on_both_paths(scorer, history):
    for score in (scorer.score_orders, scorer.score_orders_population):
        with pytest.raises(DataError, match="No purchase on or before 2011-06-01"):
            score(history, as_of="2011-06-01")


def test_rescoring_predicts_single_threaded_with_the_saved_feature_order(scorer):
    # One row at a time: a thread pool costs more than it saves and stalls on a busy machine.
    for booster, _ in scorer._boosters.values():
        assert booster.feature_names == MODEL_FEATURES
        assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] == "1"


def test_orders_sent_without_an_id_still_count(scorer):
    """A request where only some orders carry an order_id: the others are separate orders, not dropped."""
    orders = pd.DataFrame({"timestamp": ["2011-05-01", "2011-08-01", "2011-11-01"], "amount": [50.0, 70.0, 90.0],
                           "order_id": ["A1", None, ""]})
    result = scorer.score_orders(orders, customer_id="mixed-ids")
    assert result["orders"] == 3 and result["historical_value"] == pytest.approx(210.0)
    check(scorer, orders, customer_id="mixed-ids")
