"""Per-session conversation memory: a small store of finished turns, in SQLite under the data directory
(the embedded default) or in PostgreSQL when VALUEDESK_SESSIONS_URL names one (agent/memory_postgres.py:
the store that API replicas serving one build share; the data directory stays read-only to them).

What a follow-up needs is kept (agent.turns shapes it), nothing else: per turn the user's question, the final answer, and a
compact summary of each tool call (name, arguments, and the result's scalars, ids and counts: never
whole result lists), plus the offline planner's plan of the turn. Each turn the service reads the
session's last `agent_history_turns` turns back as chat messages and feeds them to the agent graph
ahead of the new question; the graph itself runs without a checkpointer, so no intermediate LangGraph
state is ever written (a LangGraph checkpointer writes the whole state at every step of every turn,
which grows with the square of the conversation).

Bounds (agent/settings.py): a session keeps at most `agent_session_max_turns` turns and
`agent_session_max_bytes` bytes (oldest turns dropped on every write); turns older than
`agent_session_max_age_days` are never read and are deleted by the prune; all sessions together keep at
most `agent_session_store_max_mb` (least recently used sessions dropped first). The prune runs when the
store opens, every `agent_session_prune_every` writes and every 10 minutes of writing. `TurnStore` holds
these rules once; each backend only runs the statements.

Sessions belong to an owner (the HTTP API's caller: a hash of the bearer key, or "anonymous"; "local"
for the CLI, the UI and the eval harness): the same session id under two owners is two sessions.

The SQLite folder is created 0700 and the database file 0600. Failures of either store are
`SessionStoreFull` (the disk or the database is full: HTTP 507) or `SessionStoreUnavailable` (cannot be
opened, read or written: HTTP 503), never a raw driver error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.settings import AgentSettings
from predictor.errors import ValueDeskError

log = logging.getLogger(__name__)

LOCAL_OWNER = "local"
ANONYMOUS_OWNER = "anonymous"
PRUNE_INTERVAL_S = 600.0
LEGACY_FILES = ("sessions.sqlite", "sessions.sqlite-wal", "sessions.sqlite-shm")

SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    session TEXT NOT NULL,
    ts REAL NOT NULL,
    size INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_session ON turns(owner, session, id);
CREATE INDEX IF NOT EXISTS turns_by_time ON turns(ts);
"""


class SessionStoreError(ValueDeskError):
    """The session store cannot be used; `code`, `status` and `hint` are what the HTTP API answers
    (the same codes as the tools' storage errors)."""

    code = "storage_unavailable"
    status = 503
    hint = ("Make the data directory (VALUEDESK_DATA_DIR) writable by the server's user (or, for a read-only "
            "data directory, point VALUEDESK_SESSIONS_URL at PostgreSQL), then try again.")


class SessionStoreUnavailable(SessionStoreError):
    """The session store cannot be opened, read or written (permissions, I/O error, locked)."""


class SessionStoreFull(SessionStoreError):
    """The disk (or the database's page limit) is full."""

    code = "insufficient_storage"
    status = 507
    hint = "Free space (or quota) on the disk that holds the data directory, then try again."


def sessions_path(settings: AgentSettings) -> Path:
    return settings.data_dir / "agent" / "sessions.db"


def owner_for_key(api_key: str | None) -> str:
    """The owner id of an API caller: a hash of its key (never the key itself), or "anonymous"."""
    if not api_key:
        return ANONYMOUS_OWNER
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:32]


def store_error(exc: BaseException, action: str) -> SessionStoreError:
    """The SessionStoreError for an sqlite3/OS failure while `action` ("opened", "read", "written")."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    code = getattr(exc, "errno", None)
    # OSError's text names the path; the message goes to API clients, so only the reason is kept.
    reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__
    if name.startswith("SQLITE_FULL") or code in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in reason:
        return SessionStoreFull(f"The agent's session store is full ({reason}); the conversation could not be saved.")
    return SessionStoreUnavailable(f"The agent's session store could not be {action} ({reason}).")


# ---------------------------------------------------------------- the rules, once


def mention_pattern(customer_ids: list[str]) -> re.Pattern:
    """A customer id as a whole token (14911, not 149110)."""
    return re.compile(r"(?<![\w.])(?:" + "|".join(map(re.escape, customer_ids)) + r")(?![\w])")


class TurnStore:
    """What every backend shares: the limits, the shrinking of a turn to its session's byte cap, which
    turns and sessions go, and when the whole store is pruned. Backends implement `_write`, `load`,
    `reset`, `check`, `_sweep`, `stats` and `close`."""

    backend = "?"

    def __init__(self, settings: AgentSettings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock
        self._writes = 0
        self._last_prune = 0.0

    @property
    def max_age_s(self) -> float:
        return self.settings.agent_session_max_age_days * 86400.0

    @property
    def store_max_bytes(self) -> int:
        return int(self.settings.agent_session_store_max_mb * 1024 * 1024)

    def _prune_at_start(self) -> None:
        try:
            self.prune()
        except SessionStoreError as exc:  # a full disk must not keep the agent from answering read-only
            log.warning("session store prune at start failed: %s", exc)

    def append(self, owner: str, session_id: str, record: dict[str, Any]) -> None:
        """Store a finished turn, then drop the session's oldest turns past its turn and byte caps."""
        data = self._fitted(record)
        now = self.clock()
        self._write(owner, session_id, now, data)  # ASCII: characters are bytes
        self._writes += 1
        if self._writes % self.settings.agent_session_prune_every == 0 or now - self._last_prune >= PRUNE_INTERVAL_S:
            self.prune()

    def prune(self) -> dict[str, int]:
        """Delete turns past the age limit, then whole least-recently-used sessions while all turns
        together exceed the store cap (down to 90% of it); return what went."""
        now = self.clock()
        stats = self._sweep(now - self.max_age_s, self.store_max_bytes)
        self._last_prune = now
        if stats["aged_turns"] or stats["evicted_sessions"]:
            log.info("session store pruned: %s", stats)
            from tools.audit import audit_retention

            audit_retention(self.settings.audit_path, "sessions",
                            {**stats, "max_age_days": self.settings.agent_session_max_age_days})
        return stats

    def turns_to_drop(self, newest_first: list[tuple[Any, int]]) -> list[Any]:
        """Ids of a session's turns ([(id, size)], newest first) past its turn and byte caps (the newest
        turn always stays)."""
        max_turns, max_bytes = self.settings.agent_session_max_turns, self.settings.agent_session_max_bytes
        total, drop = 0, []
        for i, (row_id, row_size) in enumerate(newest_first):
            if i == 0 or (i < max_turns and total + row_size <= max_bytes):
                total += row_size
            else:
                drop.append(row_id)
        return drop

    @staticmethod
    def sessions_to_evict(least_recent_first: list[tuple[str, str, int]], total: int,
                          cap: int) -> tuple[list[tuple[str, str]], int]:
        """(owner, session) keys to drop, least recently used first, while the store is over `cap`
        (down to 90% of it), and the total left."""
        evict: list[tuple[str, str]] = []
        if total <= cap:
            return evict, total
        for owner, session, size in least_recent_first:
            evict.append((owner, session))
            total -= size
            if total <= 0.9 * cap:
                break
        return evict, total

    def _fitted(self, record: dict[str, Any]) -> str:
        """The record's JSON (ASCII: any text, lone surrogates included, stores as it came), shrunk
        (result ids, summaries, then the question and answer) to fit the session's byte cap."""
        limit = self.settings.agent_session_max_bytes
        data = json.dumps(record, default=str)
        if len(data) <= limit:
            return data
        record = json.loads(data)
        record.get("meta", {}).pop("valuedesk_results", None)
        for call in record.get("calls") or []:
            call.pop("summary", None)
        data = json.dumps(record, default=str)
        while len(data) > limit and (len(record["a"]) > 200 or len(record["q"]) > 200):
            record["a"], record["q"] = record["a"][: len(record["a"]) // 2], record["q"][: len(record["q"]) // 2]
            data = json.dumps(record, default=str)
        return data

    @staticmethod
    def _decoded(rows: list[str], session_id: str) -> list[dict[str, Any]]:
        """Stored turns (newest first) as records, oldest first."""
        out = []
        for text in reversed(rows):
            try:
                out.append(json.loads(text))
            except ValueError:
                log.warning("skipped an unreadable turn in session %s", session_id)
        return out

    def _write(self, owner: str, session_id: str, now: float, data: str) -> None:
        raise NotImplementedError

    def _sweep(self, cutoff: float, cap: int) -> dict[str, int]:
        raise NotImplementedError


# ---------------------------------------------------------------- SQLite (the embedded default)


class SessionStore(TurnStore):
    """The turns of every session in one SQLite file (WAL; safe for several server processes on one machine)."""

    backend = "sqlite"

    def __init__(self, settings: AgentSettings, path: Path | None = None, *, clock: Callable[[], float] = time.time):
        super().__init__(settings, clock)
        self.path = Path(path or sessions_path(settings))
        self._lock = threading.Lock()
        self._conn = self._open()
        self._prune_at_start()

    # -- opening
    def _open(self) -> sqlite3.Connection:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if folder.stat().st_uid == os.getuid():
                os.chmod(folder, 0o700)
            self._remove_legacy(folder)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            if self.path.stat().st_mode & 0o077:
                os.chmod(self.path, 0o600)
            conn = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            log.error("cannot open the session store %s: %s", self.path, exc)
            raise store_error(exc, "opened") from exc
        try:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file only
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint the WAL every 256 pages (1 MiB) and truncate it back to 1 MiB: the WAL is most
            # of the store's size on disk otherwise (SQLite's default lets it reach 4 MiB).
            conn.execute("PRAGMA wal_autocheckpoint=256")
            conn.execute(f"PRAGMA journal_size_limit={1024 * 1024}")
            conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            log.error("cannot open the session store %s: %s", self.path, exc)
            raise store_error(exc, "opened") from exc
        return conn

    @staticmethod
    def _remove_legacy(folder: Path) -> None:
        """The LangGraph checkpoint file of earlier versions (it grew without bound; its conversations
        are not carried over)."""
        for name in LEGACY_FILES:
            old = folder / name
            try:
                size = old.stat().st_size
                old.unlink()
                log.info("removed the old agent checkpoint store %s (%.1f MB)", old, size / 1e6)
            except FileNotFoundError:
                pass
            except OSError as exc:  # not ours to remove: leave it, it is never read
                log.warning("could not remove the old agent checkpoint store %s: %s", old, exc)

    def _run(self, action: str, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                log.error("the session store %s could not be %s: %s", self.path, action, exc)
                raise store_error(exc, action) from exc

    # -- turns
    def load(self, owner: str, session_id: str, limit: int) -> list[dict[str, Any]]:
        """The session's last `limit` turns younger than the age limit, oldest first."""
        cutoff = self.clock() - self.max_age_s

        def read(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute(
                "SELECT data FROM turns WHERE owner=? AND session=? AND ts>=? ORDER BY id DESC LIMIT ?",
                (owner, session_id, cutoff, max(0, int(limit))))]

        return self._decoded(self._run("read", read), session_id)

    def _write(self, owner: str, session_id: str, now: float, data: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO turns(owner, session, ts, size, data) VALUES (?, ?, ?, ?, ?)",
                         (owner, session_id, now, len(data), data))
            rows = conn.execute("SELECT id, size FROM turns WHERE owner=? AND session=? ORDER BY id DESC",
                                (owner, session_id)).fetchall()
            drop = self.turns_to_drop(rows)
            if drop:
                conn.executemany("DELETE FROM turns WHERE id=?", [(row_id,) for row_id in drop])
            conn.execute("COMMIT")

        self._run("written", write)

    def reset(self, owner: str, session_id: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM turns WHERE owner=? AND session=?", (owner, session_id))

        self._run("written", delete)

    def erase(self, customer_ids: list[str]) -> int:
        """Delete every session with a turn that mentions one of these customers (`valuedesk forget`)."""
        pattern = mention_pattern(customer_ids)

        def delete(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            hit = {(o, s) for o, s, data in conn.execute("SELECT owner, session, data FROM turns") if pattern.search(data)}
            conn.executemany("DELETE FROM turns WHERE owner=? AND session=?", sorted(hit))
            conn.execute("COMMIT")
            return len(hit)

        return self._run("written", delete)

    def check(self) -> None:
        """Raise SessionStoreError when the store cannot be read."""
        self._run("read", lambda conn: conn.execute("SELECT 1 FROM turns LIMIT 1").fetchall())

    # -- pruning
    def _sweep(self, cutoff: float, cap: int) -> dict[str, int]:
        def sweep(conn: sqlite3.Connection) -> dict[str, int]:
            conn.execute("BEGIN IMMEDIATE")
            aged = conn.execute("DELETE FROM turns WHERE ts < ?", (cutoff,)).rowcount
            total = conn.execute("SELECT COALESCE(SUM(size), 0) FROM turns").fetchone()[0]
            sessions = [] if total <= cap else conn.execute(
                "SELECT owner, session, SUM(size) FROM turns GROUP BY owner, session ORDER BY MAX(id)").fetchall()
            evict, total = self.sessions_to_evict(sessions, total, cap)
            conn.executemany("DELETE FROM turns WHERE owner=? AND session=?", evict)
            conn.execute("COMMIT")
            if aged or evict:
                conn.execute("PRAGMA incremental_vacuum")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return {"aged_turns": aged, "evicted_sessions": len(evict), "stored_bytes": int(total)}

        return self._run("written", sweep)

    def stats(self) -> dict[str, int]:
        """Sessions, turns and bytes stored (turn data, and the files on disk with the WAL)."""
        def read(conn: sqlite3.Connection) -> tuple[int, int, int]:
            return conn.execute("SELECT COUNT(DISTINCT owner || '/' || session), COUNT(*), COALESCE(SUM(size), 0) "
                                "FROM turns").fetchone()

        sessions, turns, stored = self._run("read", read)
        on_disk = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
                      if p.exists())
        return {"sessions": sessions, "turns": turns, "stored_bytes": stored, "file_bytes": on_disk}

    def close(self) -> None:
        with self._lock:
            self._conn.close()


SessionMemory = SessionStore  # the name earlier versions used


def open_session_store(settings: AgentSettings, *, clock: Callable[[], float] = time.time) -> TurnStore:
    """The store the settings name: PostgreSQL when `sessions_url` is set, else SQLite in the data dir."""
    if settings.sessions_url:
        from agent.memory_postgres import PostgresSessionStore

        return PostgresSessionStore(settings, clock=clock)
    return SessionStore(settings, clock=clock)
