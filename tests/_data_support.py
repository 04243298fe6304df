"""Shared data of the loading tests (tests/test_data*.py): the fixture cut from UCI Online Retail, its raw
rows, the loader's result and each removal rule recomputed independently with pandas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from predictor.data.load import LoadResult, load_transactions
from predictor.data.schema import NON_PRODUCT_CODES
from predictor.settings import SHARED_DATA, Settings

FIXTURE = Path(__file__).parent / "fixtures" / "online_retail_sample.csv.gz"
FULL = SHARED_DATA / "online_retail" / "online_retail.csv.gz"
SETTINGS = Settings(threads=1, duckdb_memory_limit="1GB")
RAW_COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]


def load(path, schema="online_retail", column_map=None) -> LoadResult:
    return load_transactions(path, schema, column_map=column_map, settings=SETTINGS)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """The fixture as plain strings, exactly as in the file."""
    return pd.read_csv(FIXTURE, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def result() -> LoadResult:
    return load(FIXTURE)


@pytest.fixture(scope="module")
def expected(raw) -> dict:
    """Each removal rule recomputed with pandas, applied in the documented order."""
    df = raw.copy()
    df["amount"] = df["Quantity"].astype(float) * df["UnitPrice"].astype(float)
    out = {"rows": len(df), "amount": df["amount"].sum()}
    dup = df.duplicated(subset=RAW_COLUMNS)
    out["exact_duplicates"] = (int(dup.sum()), df.loc[dup, "amount"].sum())
    df = df[~dup]
    miss = df["CustomerID"] == ""
    out["missing_customer"] = (int(miss.sum()), df.loc[miss, "amount"].sum())
    df = df[~miss]
    code = df["StockCode"].str.upper()
    nonp = code.isin(NON_PRODUCT_CODES) | df["StockCode"].str.lower().str.startswith("gift_") \
        | df["InvoiceNo"].str.startswith("A")
    out["non_product_codes"] = (int(nonp.sum()), df.loc[nonp, "amount"].sum())
    df = df[~nonp]
    price = df["UnitPrice"].astype(float) <= 0
    out["non_positive_price"] = (int(price.sum()), df.loc[price, "amount"].sum())
    out["survivors"] = df[~price]
    return out


def renamed_columns(raw: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "household_id": raw["CustomerID"].str.replace(r"\.0$", "", regex=True),
        "basket_id": raw["InvoiceNo"],
        "transaction_timestamp": raw["InvoiceDate"],
        "qty": raw["Quantity"],
        "price": raw["UnitPrice"],
        "sku": raw["StockCode"],
        "dept": raw["StockCode"].str[:2],
        "region": raw["Country"],
    })
    out["sales_value"] = (raw["Quantity"].astype(float) * raw["UnitPrice"].astype(float)).round(4)
    return out


GENERIC_MAP = "customer_id=household_id,order_id=basket_id,timestamp=transaction_timestamp,amount=sales_value," \
              "quantity=qty,product_id=sku,category=dept,country=region"
