"""The audit trail: one line per tool call from every surface, append-only, in a hash chain.

`<data_dir>/audit/audit.jsonl` (or VALUEDESK_AUDIT_DIR): each line is a JSON record {seq, time, principal, surface, tool, args,
result_bytes, duration_ms, error, export?, event?, prev, hash} where `hash` is the SHA-256 of the previous
line's hash and this record's canonical JSON (sorted keys, without `hash`). Editing, deleting or
reordering any line breaks every hash after it, which `verify` reports with the first line that fails.
Appends from several processes (API workers) take an exclusive `flock` and read the last hash under it.

Customer ids in arguments are pseudonymised with a keyed hash (HMAC-SHA256 with a secret of the data
directory, `audit/key`), so the trail says which calls touched the same customer without holding the id,
and erasing a customer (`valuedesk forget`) never has to rewrite it.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from predictor.errors import ValueDeskError

AUDIT_DIR = "audit"
AUDIT_FILE = "audit.jsonl"
KEY_FILE = "key"
GENESIS = "0" * 64
ID_FIELDS = ("customer_id", "customer_ids")
log = logging.getLogger(__name__)


class AuditLog:
    """The trail in `folder` (settings.audit_path: data_dir/audit, or VALUEDESK_AUDIT_DIR)."""

    def __init__(self, folder: Path | str):
        self.root = Path(folder)
        self.path = self.root / AUDIT_FILE
        self._secret: bytes | None = None

    def _key(self) -> bytes:
        if self._secret is None:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.root / KEY_FILE
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                self._secret = path.read_bytes()
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(32))
                self._secret = path.read_bytes()
        return self._secret

    def pseudonym(self, value: Any) -> str:
        return "id:" + hmac.new(self._key(), str(value).encode(), hashlib.sha256).hexdigest()[:16]

    def scrub(self, args: dict[str, Any]) -> dict[str, Any]:
        """The arguments as recorded: customer ids replaced by their pseudonyms."""
        out = {}
        for key, value in (args or {}).items():
            if key in ID_FIELDS and value is not None:
                out[key] = ([self.pseudonym(v) for v in value] if isinstance(value, list)
                            else self.pseudonym(value))
            else:
                out[key] = value
        return out

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Chain `record` onto the trail (adds seq, time when missing, prev and hash) and return it."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                last = _last_line(fh)
                prev = json.loads(last) if last else None
                record = {"seq": (prev["seq"] + 1) if prev else 1,
                          "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **record,
                          "prev": prev["hash"] if prev else GENESIS}
                record["hash"] = chain_hash(record)
                fh.write((json.dumps(record, sort_keys=True, default=str) + "\n").encode())
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    yield json.loads(line)
                except ValueError:
                    raise ValueDeskError(f"{self.path} line {number} is not JSON: the trail was damaged.") from None

    def verify(self) -> tuple[bool, int, str]:
        """(intact, lines checked, what failed first)."""
        prev, count = GENESIS, 0
        if not self.path.exists():
            return True, 0, "no audit trail yet"
        with self.path.open("rb") as fh:
            for count, line in enumerate(fh, 1):
                try:
                    record = json.loads(line)
                except ValueError:
                    return False, count, f"line {count} is not JSON"
                if record.get("prev") != prev:
                    return False, count, f"line {count} does not follow line {count - 1} (a line was removed or moved)"
                if record.get("hash") != chain_hash(record):
                    return False, count, f"line {count} was modified (its hash does not match its content)"
                prev = record["hash"]
        return True, count, f"{count} lines, chain intact"


def chain_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((record.get("prev", GENESIS) + canonical).encode()).hexdigest()


def _last_line(fh) -> bytes:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    block = min(size, 65536)
    while True:
        fh.seek(size - block)
        tail = fh.read(block).rstrip(b"\n")
        if b"\n" in tail or block == size:
            return tail.rsplit(b"\n", 1)[-1]
        block = min(size, block * 4)


def file_sha256(path: Path) -> str | None:
    try:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def audit_retention(folder: Path | str, store: str, deleted: dict[str, Any]) -> None:
    """A deletion by a retention limit (sessions, exports), in the audit trail: what and how much, never whose."""
    try:
        AuditLog(folder).append({"principal": "system", "surface": "retention", "tool": f"{store}_retention",
                                   "event": "deleted", "args": {}, "error": None, "deleted": deleted})
    except OSError as exc:
        log.error("retention deletion not audited (%s): %s", exc, deleted)
