"""The suppression list: customers erased by `valuedesk forget`, never loaded again.

`<data_dir>/suppression.json` holds a random salt and the salted SHA-256 of each erased customer id, so
the list itself does not name anyone. `load_transactions` drops the lines of every listed customer right
after cleaning, and the list's digest is part of the data's fingerprint, so the next build neither reuses
cached transactions nor scores that still hold them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import pandas as pd

from predictor.atomic import write_json_atomic
from predictor.errors import ValueDeskError

SUPPRESSION_FILE = "suppression.json"


class SuppressionList:
    def __init__(self, data_dir: Path | str):
        self.path = Path(data_dir) / SUPPRESSION_FILE
        self._data: dict | None = None

    def _load(self) -> dict:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_text())
            except FileNotFoundError:
                self._data = {"salt": None, "hashes": []}
            except (OSError, ValueError) as exc:
                raise ValueDeskError(f"{self.path} is unreadable ({exc}); expected the suppression list "
                                     "`valuedesk forget` writes. Restore it from a backup: without it erased "
                                     "customers would be loaded again.") from None
        return self._data

    def _hash(self, customer_id: str, salt: str) -> str:
        return hashlib.sha256(f"{salt}:{customer_id}".encode()).hexdigest()

    def add(self, customer_ids: list[str]) -> int:
        """List these customers; returns how many were new."""
        data = self._load()
        salt = data["salt"] or secrets.token_hex(16)
        known = set(data["hashes"])
        new = {self._hash(str(c), salt) for c in customer_ids} - known
        self._data = {"salt": salt, "hashes": sorted(known | new)}
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_json_atomic(self.path, self._data)
        return len(new)

    def __len__(self) -> int:
        return len(self._load()["hashes"])

    def listed(self, customer_ids: pd.Series) -> pd.Series:
        """True for each id on the list."""
        data = self._load()
        if not data["hashes"]:
            return pd.Series(False, index=customer_ids.index)
        hashes, salt = set(data["hashes"]), data["salt"]
        unique = pd.Series(customer_ids.astype(str).unique())
        hit = set(unique[unique.map(lambda c: self._hash(c, salt) in hashes)])
        return customer_ids.astype(str).isin(hit)

    def drop_from(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` without the rows of listed customers (its `customer_id` column)."""
        if not len(self) or frame.empty:
            return frame
        return frame.loc[~self.listed(frame["customer_id"]).to_numpy()].reset_index(drop=True)

    def tag(self) -> str:
        """What the data's fingerprint gains from the list: empty while nobody is listed."""
        hashes = self._load()["hashes"]
        if not hashes:
            return ""
        return "+forget:" + hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]
