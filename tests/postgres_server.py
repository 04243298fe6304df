"""A real PostgreSQL server for the session-store tests: Debian's `postgresql` binaries
(/usr/lib/postgresql/<version>/bin, installed by scripts/setup_postgres.sh), a cluster initdb'd into a
temporary folder, started with pg_ctl on a free 127.0.0.1 port with its unix socket in that folder.

PostgreSQL refuses to run as root, so under root the cluster belongs to (and the server runs as) the
`postgres` system user (or `nobody`). It is a throwaway test server: trust authentication and
fsync off.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "valuedesk"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, pg_ctl and postgres, or None."""
    def version(path: str) -> int:
        name = Path(path).parent.name
        return int(name) if name.isdigit() else 0

    for path in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if all(os.access(Path(path) / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            return Path(path)
    return None


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None (this user) unless this is root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL")


class PostgresServer:
    """initdb + pg_ctl start in a temporary folder; `url(db)` for TCP, `socket_url(db)` for the socket."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="vd-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._user = _server_user()
        self._databases = 0

    def _run(self, *args: str, timeout: float = 120) -> None:
        as_user = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []} if self._user else {}
        done = subprocess.run([str(self.bin_dir / args[0]), *args[1:]], cwd=self.root, capture_output=True,
                              text=True, timeout=timeout, env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"},
                              **as_user)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}\n{self.log()}")

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def start(self) -> PostgresServer:
        if self._user:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                  "--no-locale", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.root}&port={self.port}"

    def new_database(self) -> str:
        """A fresh empty database's name."""
        import psycopg

        self._databases += 1
        name = f"sessions_{self._databases}"
        with psycopg.connect(self.socket_url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
