"""Bad input to the loader: every problem is a DataError naming the file, line, column and what was
expected, and loses nothing (no half-written temporary folder is left behind)."""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
from pathlib import Path

import pytest

from predictor.data.load import cdnow_path, load_transactions, parse_column_map
from predictor.errors import DataError
from predictor.settings import Settings

from _data_support import FIXTURE, GENERIC_MAP, RAW_COLUMNS, load, raw, renamed_columns  # noqa: F401


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
    renamed_columns(raw).to_csv(path, index=False)
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
    df = renamed_columns(raw).astype({"sales_value": str})
    df.loc[6, "sales_value"] = "n/a"
    path = tmp_path / "log.parquet"
    df.to_parquet(path, index=False)
    err = _bad(path, "generic", parse_column_map(GENERIC_MAP))
    assert (err.row, err.column) == (7, "sales_value") and "'n/a'" in str(err)
