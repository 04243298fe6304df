"""Agent session memory in PostgreSQL: the store that API replicas serving one build share
(VALUEDESK_SESSIONS_URL=postgresql://...). SQLite under the data directory (agent/memory.py) stays the
embedded default; with this store an API process writes nothing into the data directory.

Why not LangGraph's Postgres checkpointer (langgraph-checkpoint-postgres): the agent runs its graph
without a checkpointer on purpose (see agent/memory.py). A checkpointer writes the graph's whole state
at every step of every turn (it grows with the square of the conversation: 164 MB after 80 turns on
SQLite), knows no owners, and has no per-session turn or byte cap, no age limit and no
least-recently-used eviction; putting it in would change what the store keeps and bring back that
growth. So this module runs the same turn store (the rules of `TurnStore`, shared with SQLite) on
PostgreSQL, with psycopg 3 and a psycopg_pool connection pool.

Several processes write at once, so:
- a turn is appended and its session trimmed in one transaction holding a per-session advisory lock
  (two replicas appending to one session trim it in turn, never from a stale view);
- the whole-store prune takes a store-wide advisory try-lock: one replica sweeps, the others skip;
- the table is created under an advisory lock (concurrent CREATE TABLE IF NOT EXISTS can collide).

Failures are the same `SessionStoreError`s as SQLite's: a full disk on the server (SQLSTATE 53100) is
`SessionStoreFull` (507); anything else (server down, pool timeout, permissions) is
`SessionStoreUnavailable` (503). Their messages never carry the URL, host or password.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from agent.memory import SessionStoreError, SessionStoreFull, SessionStoreUnavailable, TurnStore, mention_pattern
from agent.settings import AgentSettings

log = logging.getLogger(__name__)

TABLE = "valuedesk_agent_turns"
CONNECT_TIMEOUT_S = 10
POOL_SIZE = 4
# Advisory lock ids (any bigint; these spell "vdschema" and "vdprune" in ASCII).
SCHEMA_LOCK = 0x7664736368656D61
PRUNE_LOCK = 0x76647072756E65
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner TEXT NOT NULL,
    session TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    size INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_by_session ON {TABLE}(owner, session, id);
CREATE INDEX IF NOT EXISTS {TABLE}_by_time ON {TABLE}(ts);
"""
UNAVAILABLE_HINT = ("Check that the PostgreSQL server of VALUEDESK_SESSIONS_URL is running, reachable and lets "
                    "this user write its tables, then try again.")
FULL_HINT = "Free space on the disk of the PostgreSQL server of VALUEDESK_SESSIONS_URL, then try again."


def where(url: str) -> str:
    """host:port/dbname of a URL, for logs (never the user or password)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable URL"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def pg_store_error(exc: BaseException, action: str) -> SessionStoreError:
    """The SessionStoreError for a psycopg failure while `action` ("opened", "read", "written")."""
    sqlstate = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    # A server's own error has an SQLSTATE and a primary message without addresses; a failed
    # connection's text names the host and port, which API clients are not told.
    reason = (diag.message_primary if sqlstate and diag is not None and diag.message_primary
              else "the PostgreSQL server did not answer")
    if sqlstate == "53100":  # disk_full
        error: SessionStoreError = SessionStoreFull(
            f"The agent's session store is full ({reason}); the conversation could not be saved.")
        error.hint = FULL_HINT
    else:
        error = SessionStoreUnavailable(f"The agent's session store could not be {action} ({reason}).")
        error.hint = UNAVAILABLE_HINT
    return error


class PostgresSessionStore(TurnStore):
    """The turns of every session in one PostgreSQL table, shared by every process that names it."""

    backend = "postgres"

    def __init__(self, settings: AgentSettings, url: str | None = None, *, clock: Callable[[], float] = time.time):
        super().__init__(settings, clock)
        self.url = url or settings.sessions_url or ""
        self.where = where(self.url)
        self._pool = self._open()
        self._prune_at_start()

    def _open(self) -> ConnectionPool:
        """Create the table (a direct connection fails fast when the server is down), then the pool."""
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    for statement in filter(str.strip, SCHEMA.split(";")):
                        conn.execute(statement)
            pool = ConnectionPool(self.url, min_size=1, max_size=POOL_SIZE, open=False, timeout=CONNECT_TIMEOUT_S,
                                  kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
                                  check=ConnectionPool.check_connection, name="valuedesk-sessions")
            pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            log.error("cannot open the session store at %s: %s", self.where, exc)
            raise pg_store_error(exc, "opened") from exc
        return pool

    def _run(self, action: str, fn: Callable[[psycopg.Connection], Any]) -> Any:
        try:
            with self._pool.connection() as conn:
                return fn(conn)
        except psycopg.Error as exc:
            log.error("the session store at %s could not be %s: %s", self.where, action, exc)
            raise pg_store_error(exc, action) from exc

    # -- turns
    def load(self, owner: str, session_id: str, limit: int) -> list[dict[str, Any]]:
        """The session's last `limit` turns younger than the age limit, oldest first."""
        cutoff = self.clock() - self.max_age_s

        def read(conn: psycopg.Connection) -> list[str]:
            return [r[0] for r in conn.execute(
                f"SELECT data FROM {TABLE} WHERE owner=%s AND session=%s AND ts>=%s ORDER BY id DESC LIMIT %s",
                (owner, session_id, cutoff, max(0, int(limit))))]

        return self._decoded(self._run("read", read), session_id)

    def _write(self, owner: str, session_id: str, now: float, data: str) -> None:
        def write(conn: psycopg.Connection) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{owner}\n{session_id}",))
                conn.execute(f"INSERT INTO {TABLE}(owner, session, ts, size, data) VALUES (%s, %s, %s, %s, %s)",
                             (owner, session_id, now, len(data), data))
                rows = conn.execute(f"SELECT id, size FROM {TABLE} WHERE owner=%s AND session=%s ORDER BY id DESC",
                                    (owner, session_id)).fetchall()
                drop = self.turns_to_drop(rows)
                if drop:
                    conn.execute(f"DELETE FROM {TABLE} WHERE id = ANY(%s)", (drop,))

        self._run("written", write)

    def reset(self, owner: str, session_id: str) -> None:
        self._run("written", lambda conn: conn.execute(
            f"DELETE FROM {TABLE} WHERE owner=%s AND session=%s", (owner, session_id)))

    def erase(self, customer_ids: list[str]) -> int:
        """Delete every session with a turn that mentions one of these customers (`valuedesk forget`)."""
        pattern = mention_pattern(customer_ids)

        def delete(conn: psycopg.Connection) -> int:
            rows = conn.execute(f"SELECT owner, session, data FROM {TABLE}").fetchall()
            hit = sorted({(o, s) for o, s, data in rows if pattern.search(data)})
            for owner, session in hit:
                conn.execute(f"DELETE FROM {TABLE} WHERE owner=%s AND session=%s", (owner, session))
            return len(hit)

        return self._run("written", delete)

    def check(self) -> None:
        """Raise SessionStoreError when the store cannot be read."""
        self._run("read", lambda conn: conn.execute(f"SELECT 1 FROM {TABLE} LIMIT 1").fetchall())

    # -- pruning
    def _sweep(self, cutoff: float, cap: int) -> dict[str, int]:
        def sweep(conn: psycopg.Connection) -> dict[str, int]:
            with conn.transaction():
                if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (PRUNE_LOCK,)).fetchone()[0]:
                    return {"aged_turns": 0, "evicted_sessions": 0, "stored_bytes": self._stored(conn)}
                aged = conn.execute(f"DELETE FROM {TABLE} WHERE ts < %s", (cutoff,)).rowcount
                total = self._stored(conn)
                sessions = [] if total <= cap else conn.execute(
                    f"SELECT owner, session, SUM(size) FROM {TABLE} GROUP BY owner, session ORDER BY MAX(id)"
                ).fetchall()
                evict, total = self.sessions_to_evict(sessions, total, cap)
                with conn.cursor() as cur:
                    cur.executemany(f"DELETE FROM {TABLE} WHERE owner=%s AND session=%s", evict)
            return {"aged_turns": aged, "evicted_sessions": len(evict), "stored_bytes": int(total)}

        return self._run("written", sweep)

    @staticmethod
    def _stored(conn: psycopg.Connection) -> int:
        return int(conn.execute(f"SELECT COALESCE(SUM(size), 0) FROM {TABLE}").fetchone()[0])

    def stats(self) -> dict[str, int]:
        """Sessions, turns and bytes stored (turn data, and the table with its indexes on the server)."""
        def read(conn: psycopg.Connection) -> tuple[int, int, int, int]:
            return conn.execute(
                f"SELECT (SELECT COUNT(*) FROM (SELECT DISTINCT owner, session FROM {TABLE}) s), COUNT(*), "
                f"COALESCE(SUM(size), 0), pg_total_relation_size('{TABLE}') FROM {TABLE}").fetchone()

        sessions, turns, stored, on_disk = self._run("read", read)
        return {"sessions": int(sessions), "turns": int(turns), "stored_bytes": int(stored),
                "file_bytes": int(on_disk)}

    def close(self) -> None:
        self._pool.close()
