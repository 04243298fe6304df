"""Agent sessions in PostgreSQL for API replicas (issue 18, item 6), against a real PostgreSQL server
these tests start (tests/postgres_server.py): the SQLite store's own behavioural tests (test_sessions.py)
run unchanged on PostgreSQL, both backends keep every turn of two concurrent writer processes within the
caps, and two `valuedesk api` processes serving one read-only build continue each other's sessions
through VALUEDESK_SESSIONS_URL without writing a byte into the data directory.

Skipped only when the PostgreSQL server binaries are absent (scripts/setup_postgres.sh installs them)
and VALUEDESK_REQUIRE_POSTGRES is not set (`make test` sets it, so there a missing server fails)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

import test_sessions as sqlite_suite
from _agent_support import agent_embedder, make_settings, no_real_llm  # noqa: F401  (fixtures)
from _tools_data import TEST_ENV, free_port, tools_data_dir
from agent.memory import SessionStoreUnavailable, open_session_store, owner_for_key
from agent.settings import AgentSettings
from postgres_server import PostgresServer, postgres_bin_dir
from test_sessions import GERMANY, GOLD, data_dir, is_gold_follow_up, record, registry  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent
KEY = "replica-key-789"


@pytest.fixture(scope="module")
def postgres():
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        reason = ("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin "
                  "(`bash scripts/setup_postgres.sh` installs Debian's postgresql)")
        if os.environ.get("VALUEDESK_REQUIRE_POSTGRES"):
            pytest.fail(f"VALUEDESK_REQUIRE_POSTGRES is set but there are {reason}")
        pytest.skip(reason)
    server = PostgresServer(bin_dir).start()
    yield server
    server.stop()


@pytest.fixture
def on_postgres(postgres, monkeypatch, tmp_path):
    """Point test_sessions' store and settings at PostgreSQL: one fresh database per data directory."""
    from agent.memory_postgres import PostgresSessionStore

    urls: dict[Path, str] = {}
    opened = []

    def url_for(folder) -> str:
        return urls.setdefault(Path(folder), postgres.socket_url(postgres.new_database()))

    def settings(folder, **kw):
        return make_settings(folder, sessions_url=url_for(folder), **kw)

    def store(settings, path=None, *, clock=time.time):
        opened.append(PostgresSessionStore(settings, url_for(settings.data_dir), clock=clock))
        return opened[-1]

    monkeypatch.setattr(sqlite_suite, "make_settings", settings)
    monkeypatch.setattr(sqlite_suite, "SessionStore", store)
    yield urls
    for each in opened:
        each.close()
    assert not list(tmp_path.rglob("sessions.db"))  # nothing fell back to SQLite


# ---------------------------------------------------------------- the same behaviour on both backends


@pytest.mark.parametrize("case", [
    sqlite_suite.test_byte_cap_drops_oldest_turns_but_keeps_the_newest,
    sqlite_suite.test_turns_past_the_age_limit_are_forgotten_and_pruned_on_schedule,
    sqlite_suite.test_store_cap_drops_least_recently_used_sessions,
], ids=lambda case: case.__name__.removeprefix("test_"))
def test_sqlite_store_tests_pass_on_postgres(case, on_postgres, tmp_path):
    case(tmp_path)
    assert on_postgres  # the test opened its stores on PostgreSQL


def test_bounded_sessions_and_follow_ups_on_postgres(on_postgres, tmp_path, data_dir, registry, agent_embedder):
    sqlite_suite.test_session_stays_bounded_in_turns_and_bytes_and_follow_ups_still_work(
        tmp_path, data_dir, registry, agent_embedder)
    assert len(on_postgres) == 1


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request, tmp_path):
    """Settings for a fresh store of each backend: (settings, backend)."""
    url = None
    if request.param == "postgres":
        server = request.getfixturevalue("postgres")
        url = server.socket_url(server.new_database())
    return make_settings(tmp_path / "data", sessions_url=url, agent_session_max_turns=30), request.param


def test_owners_isolate_sessions_and_reset_clears_one(store_settings):
    settings, backend = store_settings
    store = open_session_store(settings)
    assert store.backend == backend
    a, b = owner_for_key("key-a"), owner_for_key("key-b")
    store.append(a, "same", record(1))
    store.append(b, "same", record(2))
    store.append(a, "same", record(3))
    assert [r["q"] for r in store.load(a, "same", 10)] == ["question 1", "question 3"]
    assert [r["q"] for r in store.load(b, "same", 10)] == ["question 2"]
    store.reset(b, "same")
    assert store.load(b, "same", 10) == [] and len(store.load(a, "same", 10)) == 2
    assert store.stats()["sessions"] == 1 and store.stats()["turns"] == 2
    store.close()


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from agent.memory import open_session_store
    from agent.settings import AgentSettings
    from agent.turns import turn_record

    name, other, data_dir, url, start = sys.argv[1:6]
    store = open_session_store(AgentSettings(data_dir=data_dir, sessions_url=url or None, agent_session_max_turns=30))
    Path(f"{start}-{name}").touch()  # ready
    while not Path(start).exists():
        time.sleep(0.01)
    for i in range(25):
        store.append("o", "shared", turn_record(f"{name} {i}", "answer", "answer", []))
        store.append("o", f"own-{name}", turn_record(f"{name} {i}", "answer", "answer", []))
    deadline = time.monotonic() + 60
    while len(store.load("o", f"own-{other}", 100)) < 25:  # the other process's turns show up here
        assert time.monotonic() < deadline, "never saw the other writer's turns"
        time.sleep(0.05)
""")


def test_two_writer_processes_see_each_others_turns_within_the_caps(store_settings, tmp_path):
    """Two processes (as two API replicas) append to one session at once: every write lands, the
    session keeps exactly its newest 30 turns, and each process reads the other's session."""
    settings, _ = store_settings
    start = tmp_path / "start"
    url = settings.sessions_url or ""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, name, other, str(settings.data_dir), url, str(start)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name, other in (("A", "B"), ("B", "A"))]
    deadline = time.monotonic() + 120
    while not all(Path(f"{start}-{name}").exists() for name in "AB"):  # both open: start them together
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), procs[0].stdout.read()
        time.sleep(0.05)
    start.touch()
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    store = open_session_store(settings)
    kept = [r["q"] for r in store.load("o", "shared", 100)]
    assert len(kept) == 30 and store.stats()["turns"] == 30 + 25 + 25
    for name in "AB":  # each writer's turns in its own order, ending with its last one
        mine = [int(q.split()[1]) for q in kept if q.startswith(name)]
        assert mine == sorted(mine) and mine[-1] == 24
    store.close()


# ---------------------------------------------------------------- failures and settings


def test_unreachable_postgres_is_a_503_that_names_no_address_or_password(tmp_path):
    from agent.memory_postgres import PostgresSessionStore

    port = free_port()  # nothing listens there
    settings = make_settings(tmp_path, sessions_url=f"postgresql://app:s3cret-pw@127.0.0.1:{port}/sessions")
    with pytest.raises(SessionStoreUnavailable) as err:
        PostgresSessionStore(settings)
    assert err.value.status == 503 and "could not be opened" in str(err.value)
    assert "s3cret" not in str(err.value) and str(port) not in str(err.value)
    assert "VALUEDESK_SESSIONS_URL" in err.value.hint
    assert not (tmp_path / "agent").exists()


def test_server_errors_are_507_when_its_disk_is_full_and_503_otherwise(postgres, tmp_path):
    """The server's own errors (raised here by a trigger with the SQLSTATE a full disk or a read-only
    server gives) map to the same errors as SQLite's; a failed write leaves the session as it was."""
    import psycopg

    from agent.memory import SessionStoreFull
    from agent.memory_postgres import TABLE, PostgresSessionStore

    url = postgres.socket_url(postgres.new_database())
    store = PostgresSessionStore(make_settings(tmp_path, sessions_url=url))
    store.append("o", "s", record(1))

    def fail_inserts(errcode: str, message: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE OR REPLACE FUNCTION vd_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                         f"RAISE EXCEPTION '{message}' USING ERRCODE = '{errcode}'; END $$")
            conn.execute(f"CREATE OR REPLACE TRIGGER vd_fail BEFORE INSERT ON {TABLE} "
                         "FOR EACH ROW EXECUTE FUNCTION vd_fail()")

    fail_inserts("disk_full", "could not extend file: No space left on device")
    with pytest.raises(SessionStoreFull) as full:
        store.append("o", "s", record(2))
    assert full.value.status == 507 and "No space left" in str(full.value) and "disk" in full.value.hint
    fail_inserts("read_only_sql_transaction", "cannot execute INSERT in a read-only transaction")
    with pytest.raises(SessionStoreUnavailable) as unavailable:
        store.append("o", "s", record(3))
    assert unavailable.value.status == 503 and "could not be written (cannot execute INSERT" in str(unavailable.value)
    assert [r["q"] for r in store.load("o", "s", 5)] == ["question 1"]  # reading still works
    store.close()


def test_sessions_url_is_read_from_the_environment_and_checked(monkeypatch, tmp_path):
    from valuedesk.config import load_settings

    monkeypatch.setenv("VALUEDESK_SESSIONS_URL", "postgresql://u@db.internal:5432/vd")
    assert load_settings().sessions_url == "postgresql://u@db.internal:5432/vd"
    with pytest.raises(ValidationError):
        AgentSettings(data_dir=tmp_path, sessions_url="mysql://u@db/vd")
    monkeypatch.delenv("VALUEDESK_SESSIONS_URL")
    assert open_session_store(make_settings(tmp_path)).backend == "sqlite"  # the embedded default


# ---------------------------------------------------------------- two replicas over one read-only build


def read_only_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    for folder, dirs, files in os.walk(target):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~0o222)
    target.chmod(target.stat().st_mode & ~0o222)
    return target


def tree_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under `root` with its mode, size and modification time (symlinks not followed)."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in ["", *dirs, *files]:
            info = os.lstat(Path(folder) / name)
            state[str((Path(folder) / name).relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return state


def audit_folder(exports_dir: Path) -> Path:
    """A replica's own writable audit trail folder, beside its exports folder."""
    return exports_dir.with_name(exports_dir.name.replace("exports", "audit"))


def start_replica(data_dir: Path, sessions_url: str, exports_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, **TEST_ENV, "VALUEDESK_DATA_DIR": str(data_dir), "VALUEDESK_LLM_BACKEND": "offline",
           "VALUEDESK_API_KEY": KEY, "VALUEDESK_SESSIONS_URL": sessions_url, "ANONYMIZED_TELEMETRY": "False",
           "VALUEDESK_EXPORTS_DIR": str(exports_dir), "VALUEDESK_AUDIT_DIR": str(audit_folder(exports_dir))}
    command = [sys.executable, "-m", "valuedesk.cli", "api", "--port", str(port)]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        # Root writes through any permission bits; without these capabilities it cannot.
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *command]
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "valuedesk api did not start"
        time.sleep(0.3)


def test_two_api_replicas_share_sessions_over_a_read_only_build(postgres, agent_embedder, tmp_path):
    build = tmp_path / "build"
    shutil.copytree(agent_embedder.cache_dir, build / "embeddings", dirs_exist_ok=True)  # the planner's MiniLM
    read_only_copy(tools_data_dir(), build)
    before = tree_state(build)
    url = postgres.url(postgres.new_database())
    exports = [tmp_path / f"exports-{n}" for n in range(2)]  # each replica's own writable folder
    for folder in [*exports, *map(audit_folder, exports)]:
        folder.mkdir(mode=0o777)
        folder.chmod(0o777)  # writable by the replica even when it runs without root's capabilities
    replicas = [start_replica(build, url, folder) for folder in exports]
    try:
        for proc, base in replicas:
            wait_healthy(proc, base)
        (_, one), (_, two) = replicas
        with httpx.Client(base_url=one, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as a, \
                httpx.Client(base_url=two, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as b:
            first = a.post("/v1/agent/chat", json={"message": GERMANY, "session_id": "replicated"})
            assert first.status_code == 200 and first.json()["kind"] == "answer", first.text
            follow = b.post("/v1/agent/chat", json={"message": GOLD, "session_id": "replicated"}).json()
            assert is_gold_follow_up(follow)  # replica two read the turn replica one wrote
            assert a.post("/v1/agent/reset", json={"session_id": "replicated"}).status_code == 200
            after_reset = b.post("/v1/agent/chat", json={"message": GOLD, "session_id": "replicated"}).json()
            assert after_reset["kind"] == "clarify"  # the reset on replica one cleared it for replica two
            # The tools answer from the read-only build on both replicas.
            found = [c.post("/v1/tools/find_customers", json={"countries": ["Germany"], "limit": 3}).json()
                     for c in (a, b)]
            assert found[0] == found[1] and found[0]["returned"] == 3
            customer = b.post("/v1/tools/get_customer", json={"customer_id": found[0]["customers"][0]["customer_id"]})
            assert customer.status_code == 200, customer.text
            assert a.post("/v1/tools/segment_summary", json={"group_by": "tier"}).status_code == 200
            # Exports go to the replica's VALUEDESK_EXPORTS_DIR, named as always ('exports/<name>').
            export = b.post("/v1/tools/export_audience", json={"tiers": ["Gold"]})
            assert export.status_code == 200, export.text
            written = export.json()
            assert written["file"].startswith("exports/") and (exports[1] / Path(written["file"]).name).is_file()
            assert str(build) not in written["path"]
    finally:
        for proc, _ in replicas:
            proc.terminate()
            proc.wait(timeout=30)
        after = tree_state(build)
        for folder, dirs, _ in os.walk(build):  # let the tmp_path cleanup remove the copy
            for name in ["", *dirs]:
                path = Path(folder) / name
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o200)
    assert after == before  # not a byte written into the data directory: no sessions.db, caches or locks
