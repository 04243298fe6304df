"""Files read beside the transaction log (a products file, a customers file with contact data): a column
map from the marketer's flag, the file read as strings, every column and key checked with a message that
names the file, the column or the row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from predictor.errors import DataError


def parse_field_map(text: str, flag: str, example: str) -> dict[str, str]:
    """`field=Column,field=Column` as {field: column} (columns may hold spaces)."""
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    bad = [p[0] for p in pairs if len(p) != 2 or not p[0].strip() or not p[1].strip()]
    if bad:
        raise DataError(f"{flag} entry '{bad[0]}' is not field=column; expected e.g. {example}.")
    return {field.strip(): column.strip() for field, column in pairs}


def read_side_file(path: Path | str, column_map: dict[str, str], key: str, label: str, flag: str) -> pd.DataFrame:
    """The file's mapped columns as stripped strings, one row per `key` (the last one wins)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{label} {path} does not exist; expected a CSV or Parquet file.")
    try:
        raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{label} {path} cannot be read: {type(exc).__name__}.") from None
    missing = [c for c in column_map.values() if c not in raw.columns]
    if missing:
        raise DataError(f"{label} {path} has no column {', '.join(map(repr, missing))} (from {flag}); "
                        f"its columns are {', '.join(map(str, raw.columns[:20]))}.")
    frame = pd.DataFrame({f: raw[c].astype(str).str.strip() for f, c in column_map.items()})
    empty = frame.index[frame[key].eq("")]
    if len(empty):
        raise DataError(f"{label} {path} row {int(empty[0]) + 2}: {key} ('{column_map[key]}') is empty.")
    return frame


def parse_numbers(values: pd.Series, column: str, path: Path | str, row_of=None) -> pd.Series:
    """`values` as numbers (empty reads 0); the first that is not one fails with its file row and column.
    `row_of` maps an index label to the file's row number (default: label + 2, after the header)."""
    numbers = pd.to_numeric(values.replace("", "0"), errors="coerce")
    bad = numbers.index[numbers.isna()]
    if len(bad):
        row = row_of(bad[0]) if row_of else int(bad[0]) + 2
        raise DataError(f"{path} row {row}: {column} '{values.loc[bad[0]]}' is not a number.")
    return numbers


def parse_times(values: pd.Series, column: str, path: Path | str, row_of=None) -> pd.Series:
    """`values` as naive UTC timestamps; the first that is not a date fails with its file row and column."""
    times = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = times.index[times.isna()]
    if len(bad):
        row = row_of(bad[0]) if row_of else int(bad[0]) + 2
        raise DataError(f"{path} row {row}: {column} '{values.loc[bad[0]]}' is not a date; expected e.g. "
                        "2011-12-01 08:26:00 +0000.")
    return times.dt.tz_localize(None)
