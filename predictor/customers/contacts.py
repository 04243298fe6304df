"""Contact data (names, e-mail addresses, phone numbers, postal addresses), kept apart from everything else.

A marketer's customers file (`valuedesk build --customers PATH --customers-map customer_id=...,email=...`)
is read here, checked, and stored in one file of its own, `<data_dir>/contacts/contacts.parquet` (0600),
outside the build versions: no profile, index, score, tool result, log or error message is made from it.
The only reader is an audience export whose caller holds the `export:contact` scope
(tools/functions/campaigns.py). Erasing a customer (`valuedesk forget`) removes their row here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from predictor.atomic import atomic_path
from predictor.data.side_files import parse_field_map, read_side_file
from predictor.errors import DataError

CONTACTS_DIR = "contacts"
CONTACTS_FILE = "contacts.parquet"
CONTACT_FIELDS = ("email", "first_name", "last_name", "full_name", "phone", "address", "city", "postcode",
                  "country_name", "company")


def contacts_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / CONTACTS_DIR / CONTACTS_FILE


def parse_contact_map(text: str) -> dict[str, str]:
    """`customer_id=Customer ID,email=Email` as {field: column}; the fields are checked by load_contacts."""
    return parse_field_map(text, "--customers-map", "customer_id=Customer ID,email=Email")


def load_contacts(path: Path | str, column_map: dict[str, str]) -> pd.DataFrame:
    """The customers file as customer_id + contact fields (strings), checked. `column_map` maps our field
    names to the file's columns (customer_id is required); errors name the file, column or row."""
    unknown = sorted(set(column_map) - {"customer_id", *CONTACT_FIELDS})
    if unknown:
        raise DataError(f"--customers-map names unknown field(s) {', '.join(unknown)}; expected customer_id and "
                        f"any of {', '.join(CONTACT_FIELDS)}.")
    if "customer_id" not in column_map:
        raise DataError("--customers-map must map customer_id (e.g. customer_id=Customer ID).")
    frame = read_side_file(path, column_map, "customer_id", "Customers file", "--customers-map")
    # The same normalisation as the transaction loaders: "12346.0" from a spreadsheet is customer 12346.
    frame["customer_id"] = frame["customer_id"].str.replace(r"\.0+$", "", regex=True)
    return frame.drop_duplicates("customer_id", keep="last").reset_index(drop=True)


def save_contacts(data_dir: Path | str, frame: pd.DataFrame) -> Path:
    path = contacts_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomic_path(path, mode=0o600) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def read_contacts(data_dir: Path | str) -> pd.DataFrame | None:
    """The stored contacts indexed by customer_id, or None when no customers file was imported."""
    path = contacts_path(data_dir)
    if not path.exists():
        return None
    return pd.read_parquet(path).set_index("customer_id")


def drop_contacts(data_dir: Path | str, customer_ids: set[str]) -> int:
    """Remove these customers' contact rows (erasure); returns how many were removed."""
    frame = read_contacts(data_dir)
    if frame is None:
        return 0
    keep = ~frame.index.isin(customer_ids)
    if keep.all():
        return 0
    save_contacts(data_dir, frame[keep].reset_index())
    return int((~keep).sum())
