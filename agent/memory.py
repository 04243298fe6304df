"""Per-session conversation memory: a LangGraph SQLite checkpointer under the data directory.

Each session id is a LangGraph thread; every step of every turn is checkpointed, so a follow-up
("and which of them are in Germany?") sees the previous question, tool calls and answer, also after
a restart of the process.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from predictor.errors import ValueDeskError
from predictor.settings import Settings


class SessionStoreError(ValueDeskError):
    """The session store cannot be opened."""


def sessions_path(settings: Settings) -> Path:
    return settings.data_dir / "agent" / "sessions.sqlite"


class SessionMemory:
    """Owns the SQLite connection and the checkpointer built on it (one per AgentService)."""

    def __init__(self, settings: Settings, path: Path | None = None):
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.path = path or sessions_path(settings)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One connection shared by the server's worker threads; SqliteSaver serialises access with its lock.
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise SessionStoreError(f"Cannot open the session store {self.path}: {exc}. "
                                    "Check that VALUEDESK_DATA_DIR is writable.") from exc
        self.checkpointer = SqliteSaver(self._conn)
        self._lock = threading.Lock()

    def reset(self, session_id: str) -> None:
        with self._lock:
            self.checkpointer.delete_thread(session_id)

    def close(self) -> None:
        self._conn.close()
