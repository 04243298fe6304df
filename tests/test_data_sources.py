"""Other transaction sources through the same loader: generic CSV and Parquet through a column map,
Online Retail II headers, day-first dates, CDNOW from lifetimes, the full Online Retail file against its
README, and the loader's helpers (column maps, content fingerprints)."""

from __future__ import annotations

import gzip
import time

import pandas as pd
import pytest

from predictor.data.load import cdnow_path, parse_column_map, source_fingerprint
from predictor.errors import DataError

from _data_support import FULL, GENERIC_MAP, load, raw, renamed_columns, result  # noqa: F401


# ----------------------------------------------------------------------------- other sources


def test_generic_csv_and_parquet_through_a_column_map(raw, tmp_path):
    df = renamed_columns(raw)
    csv_path = tmp_path / "log.csv"
    df.to_csv(csv_path, index=False)
    typed = df.assign(household_id=df["household_id"].replace("", None),
                      transaction_timestamp=pd.to_datetime(df["transaction_timestamp"]),
                      qty=df["qty"].astype("int64"), price=df["price"].astype(float))
    pq_path = tmp_path / "log.parquet"
    typed.to_parquet(pq_path, index=False)
    mapping = parse_column_map(GENERIC_MAP)
    a = load(csv_path, "generic", mapping)
    b = load(pq_path, "generic", mapping)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    tx = a.transactions
    assert tx["category"].notna().all() and (tx["category"] == tx["product_id"].str[:2]).all()
    assert (tx["is_cancellation"] == (tx["amount"] < 0)).all()
    assert a.report.rule("non_product_codes").action == "skipped"
    assert a.report.rule("non_positive_price").action == "skipped"  # no unit price mapped
    assert a.report.rows_read == len(raw)
    assert a.report.amount_read == pytest.approx(df["sales_value"].sum())
    assert a.report.customers_read == raw.loc[raw["CustomerID"] != "", "CustomerID"].nunique()
    assert a.report.rule("exact_duplicates").rows_removed == raw.duplicated().sum()


def test_generic_amount_from_quantity_times_unit_price(raw, tmp_path):
    df = renamed_columns(raw).drop(columns="sales_value")
    path = tmp_path / "log.csv.gz"
    with gzip.open(path, "wt") as fh:
        df.to_csv(fh, index=False)
    res = load(path, "generic", parse_column_map(
        "customer_id=household_id,order_id=basket_id,timestamp=transaction_timestamp,"
        "quantity=qty,unit_price=price,product_id=sku"))
    expected_read = (raw["Quantity"].astype(float) * raw["UnitPrice"].astype(float)).sum()
    assert res.report.amount_read == pytest.approx(expected_read)
    rule = res.report.rule("non_positive_price")
    assert rule.action == "removed" and rule.rows_removed > 0
    assert res.transactions["country"].isna().all()


def test_generic_without_order_ids_uses_customer_and_day(raw, tmp_path):
    df = renamed_columns(raw)[["household_id", "transaction_timestamp", "sales_value"]]
    path = tmp_path / "log.csv"
    df.rename(columns={"household_id": "customer_id", "transaction_timestamp": "timestamp",
                       "sales_value": "amount"}).to_csv(path, index=False)
    res = load(path, "generic")  # canonical column names need no map
    tx = res.transactions
    assert (tx["order_id"] == tx["customer_id"] + "-" + tx["timestamp"].dt.strftime("%Y%m%d")).all()
    assert tx["quantity"].isna().all() and tx["product_id"].isna().all()
    assert res.report.rule("exact_duplicates").action == "skipped"


def test_online_retail_ii_headers_and_kaggle_dates_load_the_same(raw, result, tmp_path):
    df = raw.rename(columns={"InvoiceNo": "Invoice", "UnitPrice": "Price", "CustomerID": "Customer ID"})
    # Kaggle's export writes M/D/YYYY H:MM; the fixture starts in December (day <= 12), so the
    # format is only settled by later rows.
    ts = pd.to_datetime(df["InvoiceDate"])
    df["InvoiceDate"] = [f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}" for t in ts]
    path = tmp_path / "online_retail_ii.csv"
    df.to_csv(path, index=False)
    res = load(path)
    assert res.report.timestamp_format == "%m/%d/%Y %H:%M"
    pd.testing.assert_frame_equal(res.transactions, result.transactions)


def test_day_first_dates_are_told_apart_from_month_first(raw, tmp_path):
    df = raw.copy()
    ts = pd.to_datetime(df["InvoiceDate"])
    df["InvoiceDate"] = ts.dt.strftime("%d/%m/%Y %H:%M")
    path = tmp_path / "day_first.csv"
    df.to_csv(path, index=False)
    res = load(path)
    assert res.report.timestamp_format == "%d/%m/%Y %H:%M"
    assert res.report.first_timestamp.month == 12 and res.report.first_timestamp.year == 2010


def test_cdnow_loads():
    res = load(None, "cdnow")
    tx = res.transactions
    src = pd.read_csv(cdnow_path(), sep=r"\s+", dtype=str)
    assert len(tx) == len(src) == 69_659
    assert tx["customer_id"].nunique() == src["customer_id"].nunique() == 23_570
    assert tx["amount"].sum() == pytest.approx(src["dollar_value"].astype(float).sum())
    assert tx["quantity"].sum() == src["number_of_cds"].astype(int).sum()
    assert (tx["order_id"] == tx["customer_id"] + "-" + tx["timestamp"].dt.strftime("%Y%m%d")).all()
    assert tx["timestamp"].min() == pd.Timestamp("1997-01-01") and tx["timestamp"].max() == pd.Timestamp("1998-06-30")
    assert not tx["is_cancellation"].any() and not tx["is_outlier"].any()
    assert res.report.rule("exact_duplicates").action == "skipped"


@pytest.mark.skipif(not FULL.exists(), reason="full Online Retail file not present")
def test_full_online_retail_matches_the_data_readme():
    start = time.perf_counter()
    res = load(FULL)
    elapsed = time.perf_counter() - start
    rep = res.report
    assert rep.rows_read == 541_909
    assert rep.customers_read == 4_372
    assert rep.rule("exact_duplicates").rows_removed == 5_268
    assert rep.amount_read == pytest.approx(9_747_747.93, abs=0.01)
    assert str(rep.first_timestamp) == "2010-12-01 08:26:00" and str(rep.last_timestamp) == "2011-12-09 12:50:00"
    # Customers with a non-cancelled invoice (README: 4,339) less those whose every line is a
    # non-product code or zero-priced.
    assert 4_300 <= rep.customers_kept <= 4_339
    tx = res.transactions
    assert tx.loc[tx["quantity"].abs() == 80995, "is_outlier"].all()
    assert tx.loc[tx["quantity"].abs() == 74215, "is_outlier"].all()
    assert res.fingerprint == "sha256:818a13159ec1479a11a360d96965546480b15e2cfff8afcf4c5ceedaa4a158e3"
    assert elapsed < 30


# ----------------------------------------------------------------------------- helpers


def test_parse_column_map():
    assert parse_column_map(" customer_id=household_id , amount=sales value ") == {
        "customer_id": "household_id", "amount": "sales value"}
    assert parse_column_map("") == {}
    for bad in ("customer_id", "customer_id=", "colour=red", "amount=a,amount=b"):
        with pytest.raises(DataError):
            parse_column_map(bad)


def test_source_fingerprint_is_content_based(tmp_path, monkeypatch):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(b"x,y\n1,2\n")
    b.write_bytes(b"x,y\n1,2\n")
    assert source_fingerprint(a) == source_fingerprint(b)
    b.write_bytes(b"x,y\n1,3\n")
    assert source_fingerprint(a) != source_fingerprint(b)
    import predictor.data.load as data
    monkeypatch.setattr(data, "_FULL_HASH_MAX_BYTES", 4)
    before = source_fingerprint(b)
    assert before.startswith("sampled-sha256:")
    with b.open("ab") as fh:
        fh.write(b"4,5\n")
    assert source_fingerprint(b) != before
