"""Load a transaction log into the canonical schema and clean it: the entry points of step 1.

`load_transactions` reads the file (predictor.data.readers), applies the cleaning rules
(predictor.data.cleaning) and returns the clean lines with a report of every rule
(`report.to_table()` prints it). Only the cleaned lines come back as pandas.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from predictor.suppression import SuppressionList
from predictor.data.cleaning import clean, stage_rules
from predictor.data.cleaning_report import CleaningReport
from predictor.data.readers import SourceReader
from predictor.data.schema import MAPPABLE_FIELDS, SCHEMA_NAMES
from predictor.errors import DataError
from predictor.settings import Settings


class LoadResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    transactions: pd.DataFrame
    report: CleaningReport
    fingerprint: str
    source: str


def parse_column_map(text: str | None) -> dict[str, str]:
    """Parse `customer_id=household_id,order_id=basket_id,...` into {canonical: source column}.

    Keys must be canonical fields (or `unit_price`, used to compute amount)."""
    if text is None or not text.strip():
        return {}
    mapping: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise DataError(f"column map entry '{item.strip()}' is not of the form field=column",
                            expected="comma-separated field=column pairs, e.g. customer_id=household_id")
        _check_mappable(key)
        if key in mapping:
            raise DataError(f"column map gives field '{key}' twice", column=key, expected="each field once")
        mapping[key] = value
    return mapping


def _check_mappable(field: str) -> None:
    if field not in MAPPABLE_FIELDS:
        raise DataError(f"column map names unknown field '{field}'", column=field,
                        expected="one of " + ", ".join(MAPPABLE_FIELDS))


def cdnow_path() -> Path:
    """CDNOW_master.txt as shipped inside the `lifetimes` package (found without importing it)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the lifetimes package, which ships CDNOW_master.txt, is not installed",
                        expected="pip install lifetimes")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "CDNOW_master.txt"
    if not path.is_file():
        raise DataError("CDNOW_master.txt is missing from the lifetimes package", path=str(path),
                        expected="an intact lifetimes installation")
    return path


_FULL_HASH_MAX_BYTES = 256 * 2**20
_SAMPLE_BYTES = 2**20


def source_fingerprint(path: str | os.PathLike[str]) -> str:
    """Content fingerprint of a source file. Files up to 256 MiB are hashed in full (about a
    second); larger ones by size, mtime and the first and last MiB, which catches appends and
    replacements without reading gigabytes."""
    p = Path(path)
    try:
        st = p.stat()
        h = hashlib.sha256()
        with p.open("rb") as fh:
            if st.st_size <= _FULL_HASH_MAX_BYTES:
                for block in iter(lambda: fh.read(4 * 2**20), b""):
                    h.update(block)
                return f"sha256:{h.hexdigest()}"
            h.update(fh.read(_SAMPLE_BYTES))
            fh.seek(max(0, st.st_size - _SAMPLE_BYTES))
            h.update(fh.read(_SAMPLE_BYTES))
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", path=str(p), expected="a readable file") from exc
    return f"sampled-sha256:{st.st_size}:{st.st_mtime_ns}:{h.hexdigest()}"


def load_transactions(path: str | os.PathLike[str] | None, schema: str = "online_retail",
                      column_map: dict[str, str] | None = None, *, settings: Settings) -> LoadResult:
    """Read a transaction log, map it onto the canonical schema and clean it.

    `schema` is "online_retail", "cdnow" or "generic"; `column_map` ({canonical field: source
    column}, see `parse_column_map`) renames columns for any schema. `path=None` loads the
    bundled data for that schema (settings.default_data, or CDNOW from lifetimes). `settings`
    gives DuckDB's memory limit and threads and the outlier rule's z.
    Row numbers in errors are file line numbers for text files (the header is line 1; a quoted
    field spanning lines shifts them) and 1-based row numbers for Parquet. Raises DataError for
    any bad input; writes nothing (DuckDB's spill directory is private and removed).
    """
    column_map = dict(column_map or {})
    p = _source_path(path, schema, column_map, settings)
    with SourceReader(p, schema, column_map, settings) as reader:
        reader.open_source()
        stage_rules(reader)
        report, df = clean(reader, settings.outlier_robust_z)
    suppressed = SuppressionList(settings.data_dir)
    df = suppressed.drop_from(df)  # customers erased by `valuedesk forget` never come back
    if df.empty:
        why = ", ".join(f"{r.rows_removed:,} by {r.name}" for r in report.rules if r.rows_removed)
        raise DataError(f"no transactions left after cleaning ({report.rows_read:,} read; removed {why})",
                        path=str(p), expected="lines with a customer id, a product and a positive price")
    return LoadResult(transactions=df, report=report, fingerprint=source_fingerprint(p) + suppressed.tag(),
                      source=str(p))


def _source_path(path: str | os.PathLike[str] | None, schema: str, column_map: dict[str, str],
                 settings: Settings) -> Path:
    """The file to read, checked before any reading starts."""
    if schema not in SCHEMA_NAMES:
        raise DataError(f"unknown schema '{schema}'", expected="one of " + ", ".join(SCHEMA_NAMES))
    for field in column_map:
        _check_mappable(field)
    if schema == "cdnow" and column_map:
        raise DataError("the cdnow schema has fixed columns and takes no column map",
                        expected="schema='generic' to map columns")
    if path is None:
        if schema == "generic":
            raise DataError("no file given", expected="the path of a CSV or Parquet transaction file")
        path = cdnow_path() if schema == "cdnow" else settings.default_data
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError("file not found", path=str(p), expected="an existing transaction file")
    if not p.is_file():
        raise DataError("not a file", path=str(p), expected="a CSV, CSV.gz or Parquet file")
    if p.stat().st_size == 0:
        raise DataError("the file is empty", path=str(p), expected="a header row and at least one transaction")
    return p.resolve()
