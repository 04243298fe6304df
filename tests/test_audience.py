"""The one audience engine (predictor.customers.audience_engine) against plain pandas, on customers
cut from the real Online Retail log: every surface that selects customers goes through it, so it is
checked here once, field by field, against expressions written independently of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _tools_data import crude_customers, crude_transactions
from predictor.customers.audience import CustomerFilter, FilterError, parse_conditions
from predictor.customers.audience_engine import AudienceTable


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    frame = crude_customers(crude_transactions(nrows=200_000))
    # A few missing values, as real tables have: they must match no set and no complement.
    frame.loc[frame.index[:7], "country"] = pd.NA
    frame.loc[frame.index[7:12], "churn_risk"] = np.nan
    frame["last_order_date"] = frame["last_order"]
    return frame


def brute(frame: pd.DataFrame, flt: dict) -> np.ndarray:
    """The same selection written out with pandas, independently of the engine."""
    keep = pd.Series(True, index=frame.index)
    lower = frame["country"].astype("string").str.lower()
    for key, value in flt.items():
        if key == "tiers":
            keep &= frame["tier"].isin(value)
        elif key == "lifecycle":
            keep &= frame["lifecycle"].isin(value)
        elif key == "segments":
            keep &= frame["rfm_segment"].isin(value)
        elif key == "countries":
            keep &= lower.isin([v.lower() for v in value]).fillna(False)
        elif key == "at_risk":
            keep &= frame["at_risk"] == value
        else:
            bound, field = key.split("_", 1)
            column = {"churn_risk": "churn_risk", "value": "predicted_value", "recency_days": "recency_days"}[field]
            keep &= frame[column] >= value if bound == "min" else frame[column] <= value
    return keep.fillna(False).to_numpy(dtype=bool)


FILTERS = [
    {},
    {"tiers": ["Gold", "Platinum"]},
    {"lifecycle": ["at risk", "lapsing"], "min_churn_risk": 0.4},
    {"segments": ["Champions", "At Risk"], "countries": ["germany", "FRANCE"]},
    {"countries": ["United Kingdom"], "min_value": 100, "max_value": 5000},
    {"max_churn_risk": 0.3, "min_recency_days": 10, "max_recency_days": 120},
    {"tiers": ["Bronze"], "countries": ["Atlantis"]},
    {"countries": ["Germany", "France", "Spain", "Belgium", "Norway", "EIRE"]},  # the lookup-table path
    {"at_risk": True, "tiers": ["Gold", "Platinum", "Silver"]},
    {"at_risk": False, "countries": ["France"]},
]


@pytest.mark.parametrize("flt", FILTERS)
def test_customer_filter_selects_what_pandas_selects(customers, flt):
    table = AudienceTable(customers)
    expected = brute(customers, flt)
    assert expected.any() or flt.get("countries") == ["Atlantis"]
    np.testing.assert_array_equal(table.mask(CustomerFilter(**flt)), expected)
    np.testing.assert_array_equal(CustomerFilter(**flt).mask(customers).to_numpy(), expected)


def test_operator_language_matches_pandas(customers):
    table = AudienceTable(customers)
    flt = {"tier": {"not in": ["Bronze"]}, "orders": {"between": [2, 10]}, "churn_risk": {">": 0.2},
           "last_order_date": {">=": "2011-01-01"}, "country": {"!=": "United Kingdom"}}
    expected = ((customers["tier"] != "Bronze") & customers["orders"].between(2, 10)
                & (customers["churn_risk"] > 0.2) & (customers["last_order"] >= "2011-01-01")
                & (customers["country"] != "United Kingdom") & customers["country"].notna())
    np.testing.assert_array_equal(table.mask(parse_conditions(flt)), expected.fillna(False).to_numpy(dtype=bool))


def test_at_risk_flag_takes_only_true_or_false(customers):
    table = AudienceTable(customers)
    assert table.mask(parse_conditions({"at_risk": True})).sum() == customers["at_risk"].sum()
    assert table.mask(parse_conditions({"at_risk": {"!=": True}})).sum() == (~customers["at_risk"]).sum()
    for bad in ("yes", 1, {">": True}):
        with pytest.raises(FilterError, match="at_risk"):
            parse_conditions({"at_risk": bad})
    with pytest.raises(FilterError, match="min/max"):
        parse_conditions({"min_at_risk": 1})
    assert [c.label() for c in CustomerFilter(at_risk=True).conditions()] == ["at risk"]


def test_conditions_read_as_a_marketer_says_them():
    labels = [c.label() for c in parse_conditions({
        "churn_risk": {">=": 0.5}, "min_value": 1500, "recency_days": {"<=": 30}, "min_recency_days": 90,
        "last_order_date": {"<": "2011-06-01"}, "historical_value": {">": 99.5}, "at_risk": False})]
    assert labels == ["churn risk at least 50%", "predicted value at least 1,500", "an order within the last 30 days",
                      "no order for at least 90 days", "last order date before 2011-06-01",
                      "lifetime revenue above 99.5", "not at risk"]


def test_narrowing_counts_each_step_like_pandas(customers):
    table = AudienceTable(customers)
    steps = table.narrowing(CustomerFilter(tiers=["Gold", "Platinum"], at_risk=True, countries=["Germany"]))
    gold = customers["tier"].isin(["Gold", "Platinum"])
    german = gold & (customers["country"] == "Germany").fillna(False)
    risky = german & customers["at_risk"]
    # Names first, in the filter's field order, then the at-risk flag.
    assert steps == [("tier in Gold, Platinum", int(gold.sum())), ("country in Germany", int(german.sum())),
                     ("at risk", int(risky.sum()))]


def test_selections_are_cached_and_read_only(customers):
    table = AudienceTable(customers)
    flt = CustomerFilter(tiers=["Gold"], min_churn_risk=0.1)
    first = table.select(flt)
    assert table.select(flt) is first
    with pytest.raises(ValueError):
        first.mask[0] = not first.mask[0]
    assert first.count == int(brute(customers, flt.model_dump(exclude_none=True)).sum())
    np.testing.assert_array_equal(np.unpackbits(first.bits, bitorder="little")[:len(customers)], first.mask)
    # Combining filters never writes into a cached category array.
    before = table.mask(CustomerFilter(tiers=["Gold"])).copy()
    table.mask(CustomerFilter(tiers=["Gold"], countries=["France"]))
    np.testing.assert_array_equal(table.mask(CustomerFilter(tiers=["Gold"])), before)


def test_unknown_names(customers):
    with pytest.raises(FilterError, match="Did you mean 'Gold'"):
        CustomerFilter(tiers=["Goldd"])
    with pytest.raises(FilterError, match="Unknown filter field 'colour'"):
        parse_conditions({"colour": "red"})
    # A slice of the customers may lack a real country: it matches nobody there ...
    assert not AudienceTable(customers).mask(CustomerFilter(countries=["Narnia"])).any()
    # ... while the index, which takes free text, names the closest country.
    with pytest.raises(FilterError, match="Did you mean 'Germany'"):
        AudienceTable(customers, strict_countries=True).mask(CustomerFilter(countries=["Germny"]))


def test_missing_field_is_a_specific_error(customers):
    table = AudienceTable(customers.drop(columns=["recency_days"]))
    with pytest.raises(FilterError, match="no 'recency_days' field"):
        table.mask(CustomerFilter(max_recency_days=30))


@pytest.mark.parametrize("flt", FILTERS)
def test_categorical_columns_select_the_same_rows(customers, flt):
    """The planning frame holds names as categoricals; the engine reads their codes directly."""
    categorical = customers.astype({c: "category" for c in ("tier", "lifecycle", "rfm_segment", "country")})
    np.testing.assert_array_equal(AudienceTable(categorical).mask(CustomerFilter(**flt)), brute(customers, flt))
