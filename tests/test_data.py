"""Loading and cleaning transaction logs (predictor.data.load) on real data: a fixture cut from UCI
Online Retail (tests/fixtures/make_fixtures.py), the full file, and CDNOW from lifetimes.

Expected figures are computed independently with pandas from the raw rows, or taken from the
data set's README; nothing is copied from the loader's own output."""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictor.data.cleaning_report import CleaningReport
from predictor.data.load import LoadResult, cdnow_path, load_transactions, parse_column_map, source_fingerprint
from predictor.errors import DataError
from predictor.data.schema import NON_PRODUCT_CODES, OUTPUT_DTYPES
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


# ----------------------------------------------------------------------------- shape


def test_columns_dtypes_and_order_follow_the_contract(result):
    tx = result.transactions
    assert list(tx.columns) == list(OUTPUT_DTYPES)
    for col, dtype in OUTPUT_DTYPES.items():
        assert str(tx[col].dtype) == dtype, col
    assert tx["category"].isna().all()  # Online Retail has no category
    keys = list(zip(tx["customer_id"], tx["timestamp"]))
    assert keys == sorted(keys)
    # Float-string ids are normalised: "17850.0" -> "17850".
    assert not tx["customer_id"].str.contains(r"\.").any()
    assert isinstance(result.report, CleaningReport)
    assert result.fingerprint == source_fingerprint(FIXTURE)
    assert result.source == str(FIXTURE.resolve())


def test_report_conserves_rows_and_money(result, raw, expected):
    rep = result.report
    tx = result.transactions
    assert rep.rows_read == len(raw)
    assert rep.amount_read == pytest.approx(expected["amount"])
    assert rep.customers_read == raw.loc[raw["CustomerID"] != "", "CustomerID"].nunique()
    assert rep.rows_kept == len(tx) and rep.customers_kept == tx["customer_id"].nunique()
    assert rep.amount_kept == pytest.approx(tx["amount"].sum())
    assert rep.rows_read - sum(r.rows_removed for r in rep.rules) == rep.rows_kept
    assert rep.amount_read - sum(r.amount_removed for r in rep.rules) == pytest.approx(rep.amount_kept)
    table = rep.to_table()
    for r in rep.rules:
        assert r.name in table and f"{r.rows_removed:,}" in table
    assert f"{rep.rows_read:,}" in table


# ----------------------------------------------------------------------------- removal rules


@pytest.mark.parametrize("rule", ["exact_duplicates", "missing_customer", "non_product_codes", "non_positive_price"])
def test_removal_rule_counts_match_an_independent_recount(result, expected, rule):
    rows, amount = expected[rule]
    assert rows > 0, f"the fixture must exercise {rule}"
    got = result.report.rule(rule)
    assert got.action == "removed"
    assert got.rows_removed == rows
    assert got.amount_removed == pytest.approx(amount, abs=1e-6)


def test_removed_lines_are_gone(result, raw):
    tx = result.transactions
    assert tx["customer_id"].notna().all()
    assert not tx["product_id"].str.upper().isin(NON_PRODUCT_CODES).any()
    assert not tx["product_id"].str.startswith("gift_").any()
    assert not tx["order_id"].str.startswith("A").any()
    assert ((tx["amount"] != 0) | tx["is_cancellation"]).all()
    # The bad-debt adjustments are in the fixture but not in the output.
    assert (raw["StockCode"] == "B").sum() == 3
    # Duplicates are kept once: every purchase line key appears once.
    buys = tx[~tx["is_cancellation"]]
    key = ["order_id", "product_id", "product_name", "quantity", "amount", "timestamp"]
    assert not buys.duplicated(subset=key).any()


# ----------------------------------------------------------------------------- cancellations


def test_cancellations_are_negative_lines_at_their_own_time(result, raw):
    tx = result.transactions
    canc = tx[tx["is_cancellation"]]
    assert len(canc) > 0 and (canc["amount"] < 0).all() and (canc["quantity"] < 0).all()
    assert canc["order_id"].str.startswith("C").all()
    src = raw[raw["InvoiceNo"].str.startswith("C")]
    when = dict(zip(src["InvoiceNo"], pd.to_datetime(src["InvoiceDate"])))
    assert all(when[o] == t for o, t in zip(canc["order_id"], canc["timestamp"]))
    assert result.report.rule("cancellations_netted").rows_flagged == len(canc)
    assert result.report.rule("cancellations_netted").amount_flagged == pytest.approx(canc["amount"].sum())


def test_net_quantity_never_goes_below_zero(result, raw):
    """Capping: no customer cancels more of a product than they bought before the cancellation."""
    tx = result.transactions.sort_values(["customer_id", "product_id", "timestamp", "is_cancellation"])
    running = tx.groupby(["customer_id", "product_id"])["quantity"].cumsum()
    assert (running >= -1e-9).all()
    capped = result.report.rule("cancellation_capped")
    assert capped.rows_flagged > 0  # the fixture has over-sized cancellations
    # A capped line keeps the cancellation's own unit price.
    src = raw[raw["InvoiceNo"].str.startswith("C")].drop_duplicates(subset=RAW_COLUMNS)
    price = {(o, p): float(u) for o, p, u in zip(src["InvoiceNo"], src["StockCode"], src["UnitPrice"])}
    canc = tx[tx["is_cancellation"]]
    unit = canc["amount"] / canc["quantity"]
    assert np.allclose(unit, [price[(o, p)] for o, p in zip(canc["order_id"], canc["product_id"])])


def test_cancellations_without_an_earlier_purchase_are_dropped(result, expected):
    s = expected["survivors"]
    s = s.assign(ts=pd.to_datetime(s["InvoiceDate"]), cancel=s["InvoiceNo"].str.startswith("C"))
    first_buy = s[~s["cancel"]].groupby(["CustomerID", "StockCode"])["ts"].min()
    canc = s[s["cancel"]].join(first_buy.rename("first"), on=["CustomerID", "StockCode"])
    orphan = canc[canc["first"].isna() | (canc["first"] > canc["ts"])]
    assert len(orphan) > 0
    kept = set(zip(result.transactions["order_id"], result.transactions["product_id"]))
    assert not any((o, p) in kept for o, p in zip(orphan["InvoiceNo"], orphan["StockCode"]))
    rule = result.report.rule("unmatched_cancellations")
    assert rule.rows_removed >= len(orphan)
    assert rule.amount_removed < 0


def test_a_cancellation_after_the_cutoff_does_not_change_earlier_lines(result, raw, tmp_path):
    """Lines up to a cutoff are identical whether or not the later cancellations exist."""
    cutoff = pd.Timestamp("2011-06-30")
    late = raw["InvoiceNo"].str.startswith("C") & (pd.to_datetime(raw["InvoiceDate"]) > cutoff)
    assert late.sum() > 10
    path = tmp_path / "no_late_cancellations.csv"
    raw[~late].to_csv(path, index=False)
    without = load(path).transactions
    with_ = result.transactions
    before = lambda df: df[df["timestamp"] <= cutoff].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(before(with_), before(without))
    # ...and the later cancellations do reduce later value, on their own dates.
    assert with_.loc[with_["timestamp"] > cutoff, "amount"].sum() < without.loc[without["timestamp"] > cutoff, "amount"].sum()


# ----------------------------------------------------------------------------- outliers


def test_giant_same_day_cancelled_lines_are_flagged_not_dropped(result):
    tx = result.transactions
    rep = result.report
    flagged = tx[tx["is_outlier"]]
    for qty in (80995, 74215):
        pair = tx[tx["quantity"].abs() == qty]
        assert len(pair) == 2 and pair["is_outlier"].all()
        assert pair["amount"].sum() == pytest.approx(0)
        assert pair["timestamp"].dt.date.nunique() == 1
    buys = tx[~tx["is_cancellation"]]
    assert (buys.loc[buys["is_outlier"], "amount"] > rep.outlier_threshold).all()
    assert (buys.loc[~buys["is_outlier"], "amount"] <= rep.outlier_threshold).all()
    # Each flagged cancellation follows a flagged purchase of the same product by the customer.
    for _, c in flagged[flagged["is_cancellation"]].iterrows():
        b = flagged[~flagged["is_cancellation"] & (flagged["customer_id"] == c["customer_id"])
                    & (flagged["product_id"] == c["product_id"]) & (flagged["timestamp"] <= c["timestamp"])]
        assert len(b) > 0
    assert rep.rule("extreme_outliers").rows_flagged == len(flagged)
    assert rep.rule("extreme_outliers").rows_removed == 0


def test_outlier_threshold_follows_the_setting(raw):
    loose = load_transactions(FIXTURE, "online_retail", settings=Settings(threads=1, outlier_robust_z=4.0))
    strict = load_transactions(FIXTURE, "online_retail", settings=Settings(threads=1, outlier_robust_z=12.0))
    assert loose.report.outlier_threshold < strict.report.outlier_threshold
    assert loose.transactions["is_outlier"].sum() > strict.transactions["is_outlier"].sum()
    assert len(loose.transactions) == len(strict.transactions)  # flagged, never dropped


# ----------------------------------------------------------------------------- other sources


def _renamed(raw: pd.DataFrame) -> pd.DataFrame:
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


def test_generic_csv_and_parquet_through_a_column_map(raw, tmp_path):
    df = _renamed(raw)
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
    df = _renamed(raw).drop(columns="sales_value")
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
    df = _renamed(raw)[["household_id", "transaction_timestamp", "sales_value"]]
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


# ----------------------------------------------------------------------------- bad input


def _leftover_temp_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("valuedesk-duckdb-*")}


def _write_fixture_with(tmp_path: Path, line: int, column: str, value: str) -> Path:
    """The fixture with one field replaced; `line` counts the header as line 1."""
    with gzip.open(FIXTURE, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[line - 1][rows[0].index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path = tmp_path / "bad.csv"
    path.write_text(buf.getvalue())
    return path


def _bad(path, schema="online_retail", column_map=None) -> DataError:
    before = _leftover_temp_dirs()
    listing = sorted(Path(path).parent.iterdir()) if Path(path).parent.exists() else []
    with pytest.raises(DataError) as info:
        load(path, schema, column_map)
    assert _leftover_temp_dirs() <= before
    if listing:
        assert sorted(Path(path).parent.iterdir()) == listing  # nothing written next to the data
    return info.value


def test_missing_file(tmp_path):
    err = _bad(tmp_path / "nope.csv")
    assert err.path == str(tmp_path / "nope.csv") and "not found" in str(err)


def test_empty_file_and_header_only_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert "empty" in str(_bad(empty))
    empty_gz = tmp_path / "empty.csv.gz"
    with gzip.open(empty_gz, "wb"):
        pass
    assert "no header row" in str(_bad(empty_gz))
    header = tmp_path / "header.csv"
    header.write_text(",".join(RAW_COLUMNS) + "\n")
    err = _bad(header)
    assert "no transactions" in str(err) and err.path == str(header.resolve())


def test_nothing_left_after_cleaning(raw, tmp_path):
    path = tmp_path / "anonymous.csv"
    anon = raw[raw["CustomerID"] == ""]
    anon.to_csv(path, index=False)
    err = _bad(path)
    assert "no transactions left" in str(err) and "missing_customer" in str(err)
    assert f"{len(anon):,} read" in str(err)


def test_generic_needs_a_path():
    with pytest.raises(DataError, match="no file given"):
        load(None, "generic")


def test_missing_required_columns(raw, tmp_path):
    path = tmp_path / "no_customer.csv"
    raw.drop(columns="CustomerID").to_csv(path, index=False)
    err = _bad(path)
    assert err.column == "customer_id" and "InvoiceNo" in err.expected
    err = _bad(path, "generic")
    assert "customer_id" in str(err) and "--map" in err.expected


def test_unparseable_date_names_line_column_and_value(tmp_path):
    path = _write_fixture_with(tmp_path, 500, "InvoiceDate", "2011-13-45 10:00:00")
    err = _bad(path)
    assert (err.row, err.column) == (500, "InvoiceDate")
    assert "2011-13-45 10:00:00" in str(err) and "date-time" in err.expected


def test_unparseable_number_names_line_column_and_value(tmp_path):
    path = _write_fixture_with(tmp_path, 1234, "UnitPrice", "2,55")
    err = _bad(path)
    assert (err.row, err.column) == (1234, "UnitPrice") and "'2,55'" in str(err) and "number" in err.expected
    path = _write_fixture_with(tmp_path, 77, "Quantity", "")
    err = _bad(path)
    assert (err.row, err.column) == (77, "Quantity") and "empty" in str(err)


def test_map_naming_absent_columns(raw, tmp_path):
    path = tmp_path / "log.csv"
    _renamed(raw).to_csv(path, index=False)
    err = _bad(path, "generic", {"customer_id": "household_id", "timestamp": "when", "amount": "sales_value"})
    assert err.column == "when" and "household_id" in err.expected


def test_unknown_schema_and_unknown_map_field():
    with pytest.raises(DataError, match="unknown schema"):
        load(FIXTURE, "shopify")
    with pytest.raises(DataError) as info:
        load(FIXTURE, "generic", {"colour": "Country"})
    assert info.value.column == "colour"


def test_cdnow_malformed_line(tmp_path):
    lines = cdnow_path().read_text().splitlines()
    lines[9] = " 00004 19970101  2"
    path = tmp_path / "cdnow.txt"
    path.write_text("\n".join(lines) + "\n")
    err = _bad(path, "cdnow")
    assert err.row == 10 and "4 whitespace-separated fields" in err.expected
    lines[9] = " 00004 19971301  2   20.00"
    path.write_text("\n".join(lines) + "\n")
    err = _bad(path, "cdnow")
    assert err.row == 10 and err.column == "date"


def test_line_with_an_extra_field_is_reported_by_line(tmp_path):
    with gzip.open(FIXTURE, "rt", newline="") as fh:
        lines = fh.read().splitlines()
    lines[41] += ",surplus"
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    err = _bad(path)
    assert err.row == 42 and "same number of fields" in err.expected


def test_duplicate_header_names(raw, tmp_path):
    path = tmp_path / "dupes.csv"
    raw.rename(columns={"Country": "Description"}).to_csv(path, index=False)
    err = _bad(path)
    assert err.column == "Description" and err.row == 1


def test_latin1_semicolon_file_loads(raw, tmp_path):
    """Spreadsheet exports: ';'-separated, Latin-1 (the £ sign), comma-free numbers."""
    df = raw.head(400).copy()
    plain = (df["CustomerID"] != "") & (df["UnitPrice"].astype(float) > 0) & df["StockCode"].str.match(r"^\d{5}$") \
        & ~df["InvoiceNo"].str.startswith("C")
    df.loc[plain[plain].index[0], "Description"] = "GIFT VOUCHER £20"
    path = tmp_path / "export.csv"
    df.to_csv(path, index=False, sep=";", encoding="latin-1")
    res = load(path)
    assert res.report.rows_read == 400
    assert (res.transactions["product_name"] == "GIFT VOUCHER £20").sum() == 1


def test_memory_limit_setting_is_applied(tmp_path):
    with pytest.raises(DataError, match="memory limit"):
        load_transactions(FIXTURE, "online_retail", settings=Settings(threads=1, duckdb_memory_limit="lots"))
    small = load_transactions(FIXTURE, "online_retail", settings=Settings(threads=1, duckdb_memory_limit="64MB"))
    assert small.report.rows_kept > 0


def test_parquet_bad_value_is_reported_by_row(raw, tmp_path):
    df = _renamed(raw).astype({"sales_value": str})
    df.loc[6, "sales_value"] = "n/a"
    path = tmp_path / "log.parquet"
    df.to_parquet(path, index=False)
    err = _bad(path, "generic", parse_column_map(GENERIC_MAP))
    assert (err.row, err.column) == (7, "sales_value") and "'n/a'" in str(err)
