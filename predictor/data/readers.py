"""Reading a transaction file into typed canonical lines: CSV, CSV.gz, Parquet and CDNOW's text format.

DuckDB does the reading so a file larger than memory streams through a bounded buffer pool
(spilling to a private temp directory). A `SourceReader` maps the file's columns onto the
canonical fields, picks the timestamp format and gives `typed_select()`: one SQL row per source
line with typed columns and `bad`, the first field that did not parse. The file is scanned once
on the happy path; row numbers are only worked out (in a second scan) when a value is bad, and
every error names the file, the row and the column.
"""

from __future__ import annotations

import csv
import gzip
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from predictor.data.schema import CDNOW_FIELDS, MAPPABLE_FIELDS, ONLINE_RETAIL, TIMESTAMP_FORMATS
from predictor.errors import DataError
from predictor.settings import Settings

PARQUET_SUFFIXES = (".parquet", ".pq")
NUMERIC_FIELDS = ("amount", "quantity", "unit_price")
TEXT_FIELDS = ("customer_id", "order_id", "product_id", "product_name", "category", "country")
_SAMPLE_BYTES = 2**20  # read for the header, the delimiter and a timestamp sample
_TEXT_EXPECTED = ("a comma/semicolon/tab-separated text file (optionally .gz) with a header row "
                  "and the same number of fields on every line")


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def has_magic(path: Path, magic: bytes) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:
        return False


class SourceReader:
    """One file on a private DuckDB connection and temp directory, both closed on exit."""

    def __init__(self, path: Path, schema: str, column_map: dict[str, str], settings: Settings):
        self.path, self.schema, self.user_map, self.settings = path, schema, column_map, settings
        self.is_parquet = path.suffix.lower() in PARQUET_SUFFIXES or has_magic(path, b"PAR1")
        self.header_lines = 0 if self.is_parquet else 1  # added to 1-based data row numbers
        self.mapping: dict[str, str] = {}
        self.src_types: dict[str, str] = {}
        self.reader_sql = ""
        self.ts_format = "iso"
        self.ts_from_sample = True
        self.checks: list[tuple[str, str, str]] = []

    def __enter__(self) -> SourceReader:
        self.tmp = tempfile.mkdtemp(prefix="valuedesk-duckdb-")
        try:
            self.con = duckdb.connect(config={
                "memory_limit": self.settings.duckdb_memory_limit,
                "threads": int(self.settings.threads),
                "temp_directory": self.tmp,
            })
        except duckdb.Error as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise DataError(f"cannot start the loader with memory limit '{self.settings.duckdb_memory_limit}' "
                            f"and {self.settings.threads} threads: {str(exc).splitlines()[0]}",
                            expected="VALUEDESK_DUCKDB_MEMORY_LIMIT like 2GB or 512MB") from exc
        self.con.execute("SET enable_progress_bar = false")
        # Nothing relies on row order until a bad line must be found by number (see
        # raise_first_bad); without it DuckDB streams the file with less buffering.
        self.con.execute("SET preserve_insertion_order = false")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.con.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- errors --------------------------------------------------------------------------

    def error(self, message: str, *, column: str | None = None, row: int | None = None,
              expected: str | None = None) -> DataError:
        return DataError(message, path=str(self.path), column=column, row=row, expected=expected)

    def sql(self, query: str, what: str) -> duckdb.DuckDBPyConnection:
        try:
            return self.con.execute(query)
        except duckdb.Error as exc:
            raise self._read_error(exc, what) from exc

    def _read_error(self, exc: duckdb.Error, what: str) -> DataError:
        text = str(exc).strip()
        msg = text.splitlines()[0] if text else type(exc).__name__
        line = re.search(r"\b[Ll]ine:?\s*(\d+)", text)
        expected = "a Parquet file" if self.is_parquet else _TEXT_EXPECTED
        return self.error(f"could not {what}: {msg}", row=int(line.group(1)) if line else None, expected=expected)

    # -- source --------------------------------------------------------------------------

    def open_source(self) -> None:
        """Resolve which source column feeds each canonical field (raises DataError if one is missing)."""
        if self.schema == "cdnow":
            self._cdnow_source()
            return
        present = self._parquet_columns() if self.is_parquet else self._csv_columns()
        self.mapping = self._map_columns(present)
        self.src_types = {f: present[c] for f, c in self.mapping.items()}

    def _parquet_columns(self) -> dict[str, str]:
        self.reader_sql = f"read_parquet({sql_literal(str(self.path))})"
        rows = self.sql(f"DESCRIBE SELECT * FROM {self.reader_sql}", "read the Parquet schema").fetchall()
        return {r[0]: r[1] for r in rows}

    def _csv_columns(self) -> dict[str, str]:
        names, delim, encoding = self._csv_header()
        cols = "{" + ", ".join(f"{sql_literal(n)}: 'VARCHAR'" for n in names) + "}"
        self.reader_sql = (f"read_csv({sql_literal(str(self.path))}, header=true, auto_detect=false, "
                           f"columns={cols}, delim={sql_literal(delim)}, quote='\"', escape='\"', "
                           f"encoding={sql_literal(encoding)}, compression={sql_literal(self.compression)})")
        return {n: "VARCHAR" for n in names}

    def _csv_header(self) -> tuple[list[str], str, str]:
        """Column names, delimiter and encoding from the first line. Reading the header ourselves
        lets DuckDB skip its sniffer and read every column as text with no type guessing."""
        gz = has_magic(self.path, b"\x1f\x8b")
        try:
            with (gzip.open(self.path, "rb") if gz else self.path.open("rb")) as fh:
                head = fh.read(_SAMPLE_BYTES)
        except (OSError, EOFError) as exc:
            raise self.error(f"cannot read file: {exc}", expected="a readable CSV or gzip-compressed CSV") from exc
        try:
            head.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the end of the sample is fine; anything else means
            # Latin-1 (Kaggle's Online Retail CSVs are, for the £ sign).
            encoding = "utf-8" if exc.start >= len(head) - 3 else "latin-1"
        lines = head.decode(encoding, "ignore").lstrip("\ufeff").splitlines()
        text = lines[0] if lines else ""
        if not text.strip():
            raise self.error("the file has no header row", row=1, expected="a header row naming the columns")
        delim = max((",", ";", "\t", "|"), key=text.count)
        names = [n.strip() for n in next(csv.reader([text], delimiter=delim))]
        # The first lines (the last may be cut short) let the timestamp format be chosen without
        # a pass over the file.
        self.sample_rows = list(csv.reader(lines[1:-1], delimiter=delim))
        self.sample_names = names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise self.error("duplicate column name(s) in the header: " + ", ".join(dupes), row=1,
                             column=dupes[0], expected="unique column names")
        self.compression = "gzip" if gz else "none"
        return names, delim, encoding

    def _map_columns(self, present: dict[str, str]) -> dict[str, str]:
        """{canonical field: source column}: the schema's known names, then the user's column map."""
        mapping: dict[str, str] = {}
        if self.schema == "online_retail":
            for field, names_ in ONLINE_RETAIL.columns.items():
                found = next((n for n in names_ if n in present), None)
                if found is not None:
                    mapping[field] = found
        else:  # generic: columns already named like the canonical fields need no map entry
            mapping = {f: f for f in MAPPABLE_FIELDS if f in present}
        for field, col in self.user_map.items():
            if col not in present:
                raise self.error(f"the column map names column '{col}' (for {field}), which the file does not have",
                                 column=col, expected="one of the file's columns: " + ", ".join(present))
            mapping[field] = col
        needed = ["customer_id", "timestamp"]
        needed += ["quantity", "unit_price"] if self.schema == "online_retail" else []
        missing = [f for f in needed if f not in mapping]
        if self.schema != "online_retail" and "amount" not in mapping \
                and not {"quantity", "unit_price"} <= mapping.keys():
            missing.append("amount (or quantity and unit_price)")
        if missing:
            hint = ("" if self.schema == "online_retail"
                    else "; map them with e.g. --map customer_id=<col>,timestamp=<col>,amount=<col>")
            raise self.error("required column(s) missing: " + ", ".join(missing), column=missing[0],
                             expected="columns for " + ", ".join(missing) + " (the file has: "
                             + ", ".join(present) + ")" + hint)
        return mapping

    def _cdnow_source(self) -> None:
        """CDNOW_master.txt is whitespace-aligned text; each line is split here so a malformed
        line can be reported by number."""
        with self.path.open("rb") as fh:
            first = fh.readline().decode("utf-8", "replace")
        has_header = bool(re.search(r"[A-Za-z]", first))
        self.header_lines = 1 if has_header else 0
        self.reader_sql = (f"read_csv({sql_literal(str(self.path))}, columns={{'line': 'VARCHAR'}}, header=false, "
                           f"auto_detect=false, delim='\\x01', quote='', escape='', skip={self.header_lines})")
        self.mapping = {"customer_id": "customer_id", "timestamp": "date", "quantity": "number_of_cds",
                        "amount": "dollar_value"}
        self.src_types = {f: "VARCHAR" for f in self.mapping}

    def source_select(self) -> str:
        """One row per source line: the mapped fields as `r_<field>` (text trimmed, '' -> NULL)."""
        if self.schema == "cdnow":
            return ("SELECT f[1] AS r_customer_id, f[2] AS r_timestamp, f[3] AS r_quantity, f[4] AS r_amount, "
                    "len(f) AS n_fields FROM (SELECT regexp_split_to_array(trim(coalesce(line, '')), '\\s+') AS f "
                    f"FROM {self.reader_sql})")
        exprs = []
        for field, col in self.mapping.items():
            if self.src_types[field] == "VARCHAR":
                exprs.append(f"NULLIF(trim({sql_identifier(col)}), '') AS r_{field}")
            else:
                exprs.append(f"{sql_identifier(col)} AS r_{field}")
        return f"SELECT {', '.join(exprs)} FROM {self.reader_sql}"

    # -- timestamps ----------------------------------------------------------------------

    def _ts_expr(self, fmt: str | None = None) -> str:
        fmt = fmt or self.ts_format
        if fmt in ("native", "iso"):
            return "TRY_CAST(r_timestamp AS TIMESTAMP)"
        return f"try_strptime(r_timestamp, {sql_literal(fmt)})"

    def detect_timestamp_format(self, full: bool = False) -> None:
        """Pick the first format that parses every value: on the first rows (cheap), or, after
        a failure, on the whole column, so a day-first file whose first days are <= 12 is still
        read right."""
        if self.src_types["timestamp"] != "VARCHAR":
            self.ts_format = "native"
            return
        candidates = ["%Y%m%d"] if self.schema == "cdnow" else ["iso", *TIMESTAMP_FORMATS]
        src = f"({self.source_select()})"
        params: list[Any] = []
        if not full:
            sample = self._timestamp_sample()
            if sample is None:
                src = f"(SELECT r_timestamp FROM {src} WHERE r_timestamp IS NOT NULL LIMIT 5000)"
            else:
                src, params = "(SELECT unnest($1::VARCHAR[]) AS r_timestamp)", [sample]
        counts = ", ".join(f"count(*) FILTER (WHERE r_timestamp IS NOT NULL AND {self._ts_expr(f)} IS NULL)"
                           for f in candidates)
        try:
            fails = self.con.execute(f"SELECT {counts} FROM {src}", params).fetchall()[0]
        except duckdb.Error as exc:
            raise self._read_error(exc, "read the timestamps") from exc
        self.ts_format = candidates[min(range(len(candidates)), key=lambda i: (fails[i], i))]
        self.ts_from_sample = not full

    def _timestamp_sample(self) -> list[str] | None:
        """Timestamp texts from the first lines of a text file (None for Parquet, whose first
        row group DuckDB reads cheaply itself)."""
        if self.is_parquet:
            return None
        if self.schema == "cdnow":
            with self.path.open("rb") as fh:
                lines = fh.read(_SAMPLE_BYTES).decode("utf-8", "ignore").splitlines()[self.header_lines:-1]
            return [p[1] for p in (ln.split() for ln in lines) if len(p) > 1]
        i = self.sample_names.index(self.mapping["timestamp"])
        return [r[i].strip() for r in self.sample_rows if len(r) > i and r[i].strip()]

    def _ts_expected(self) -> str:
        if self.ts_format in ("iso", "native"):
            return "a date-time like 2011-12-09 12:50:00"
        sample = datetime(2011, 12, 9, 12, 50).strftime(self.ts_format)
        return f"a date-time in the column's format {self.ts_format} (e.g. {sample})"

    # -- typed lines ---------------------------------------------------------------------

    def _checks(self) -> list[tuple[str, str, str]]:
        """(field, SQL true for a bad value, what was expected), in the order they are reported."""
        checks = []
        if self.schema == "cdnow":
            checks.append(("fields", "n_fields <> 4", "4 whitespace-separated fields: " + " ".join(CDNOW_FIELDS)))
        checks.append(("timestamp", f"{self._ts_expr()} IS NULL", self._ts_expected()))
        for f in NUMERIC_FIELDS:
            if f not in self.mapping:
                continue
            e = _num_expr(f)
            required = f == "amount" or (f in ("quantity", "unit_price") and "amount" not in self.mapping)
            cond = f"(r_{f} IS NOT NULL AND ({e} IS NULL OR NOT isfinite({e})))"
            if required:
                cond = f"(r_{f} IS NULL OR {cond})"
            checks.append((f, cond, "a number like 12.5" + (" (required)" if required else "")))
        return checks

    def _bad_case(self) -> str:
        return "CASE " + " ".join(f"WHEN {c} THEN '{f}'" for f, c, _ in self.checks) + " END"

    def typed_select(self, extra_columns: dict[str, str]) -> str:
        """SQL for one row per source line: the canonical columns typed, `bad` (the first field that
        did not parse, else NULL) and `extra_columns` ({name: SQL over the typed canonical columns})."""
        if self.ts_from_sample:
            self.detect_timestamp_format()
        self.checks = self._checks()
        text = {}
        for f in TEXT_FIELDS:
            if f in self.mapping:
                text[f] = f"CAST(r_{f} AS VARCHAR)" if self.src_types[f] != "VARCHAR" else f"r_{f}"
            else:
                text[f] = "CAST(NULL AS VARCHAR)"
        # Online Retail writes customer ids as floats ("17850.0"); an id is a label, not a number.
        text["customer_id"] = f"regexp_replace({text['customer_id']}, '^(-?[0-9]+)\\.0+$', '\\1')"
        num = {f: _num_expr(f) for f in NUMERIC_FIELDS if f in self.mapping}
        amount = num["amount"] if "amount" in num else f"({num['quantity']} * {num['unit_price']})"
        self.has_order_id = "order_id" in self.mapping
        order_id = ("order_id" if self.has_order_id
                    else "customer_id || '-' || strftime(timestamp, '%Y%m%d')")
        extra = "".join(f", {sql} AS {name}" for name, sql in extra_columns.items())
        return f"""
            SELECT customer_id, {order_id} AS order_id, timestamp, amount, quantity, unit_price,
                   product_id, product_name, category, country{extra}, bad
            FROM (SELECT {text['customer_id']} AS customer_id, {text['order_id']} AS order_id,
                         {self._ts_expr()} AS timestamp, {amount} AS amount,
                         {num.get('quantity', 'CAST(NULL AS DOUBLE)')} AS quantity,
                         {num.get('unit_price', 'CAST(NULL AS DOUBLE)')} AS unit_price,
                         {text['product_id']} AS product_id, {text['product_name']} AS product_name,
                         {text['category']} AS category, {text['country']} AS country,
                         {self._bad_case()} AS bad
                  FROM ({self.source_select()}))"""

    def raise_first_bad(self) -> None:
        """Raise a DataError for the first line whose `bad` is set, by its row number. Returns
        (without raising) only when the timestamp format, guessed from the first rows, is detected
        again on the whole column: the caller then selects the typed lines again."""
        values = " ".join(f"WHEN {sql_literal(f)} THEN CAST(r_{f} AS VARCHAR)"
                          for f, _, _ in self.checks if f != "fields")
        self.con.execute("SET preserve_insertion_order = true")
        rows = self.sql(f"""
            SELECT rn, bad, CASE bad {values} END FROM (
                SELECT row_number() OVER () AS rn, {self._bad_case()} AS bad, * FROM ({self.source_select()}))
            WHERE bad IS NOT NULL ORDER BY rn LIMIT 1""", "read the file").fetchall()
        rn, field, value = rows[0]  # the caller counted a bad line, so a scan finds it
        if field == "timestamp" and self.ts_from_sample:
            self.detect_timestamp_format(full=True)
            return
        expected = next(e for f, _, e in self.checks if f == field)
        row = rn + self.header_lines
        if field == "fields":
            raise self.error("the line does not have 4 fields", row=row, expected=expected)
        seen = "an empty value" if value is None else f"'{value}'"
        raise self.error(f"cannot parse {seen} as {field}", column=self.mapping.get(field, field),
                         row=row, expected=expected)


def _num_expr(field: str) -> str:
    return f"TRY_CAST(r_{field} AS DOUBLE)"  # also accepts surrounding spaces
