"""Who is calling: API keys with names and scopes, and the caller every tool call is checked and audited as.

Keys live in `<data_dir>/keys.json` as SHA-256 hashes only (a key is 256 random bits, so a plain hash is
as strong as a slow one and keeps the check cheap); the key itself is shown once, when it is made. The
file is re-read when it changes, so `valuedesk keys add|revoke|rotate` takes effect in running servers
without a restart. A presented key is compared with every stored hash by `hmac.compare_digest`, all of
them every time, so the time taken does not say how close a guess was or which key matched.

Scopes: `read` (every tool that only reads), `export` (audience files), `export:contact` (contact data in
audience files), `admin` (all of them). The legacy single `VALUEDESK_API_KEY` is the principal `api-key`
with `read` and `export`. Local callers (the CLI, a loopback server with no keys) are the principal
`local`: `read` and `export` from a server, every scope from the command line (the data's owner).
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from predictor.atomic import write_json_atomic
from predictor.errors import ValueDeskError

SCOPES = ("read", "export", "export:contact", "admin")
KEYS_FILE = "keys.json"
KEY_PREFIX = "vd_"


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


@dataclass(frozen=True)
class Caller:
    """A principal on a surface (http, mcp, agent, ui, cli): what the registry checks and the audit records."""

    principal: Principal
    surface: str


LOCAL_OWNER = Principal("local", frozenset(SCOPES))  # the command line: the data's owner
LOCAL_SERVER = Principal("local", frozenset({"read", "export"}))  # a loopback server with no keys
LEGACY_KEY = frozenset({"read", "export"})  # VALUEDESK_API_KEY
CLI_CALLER = Caller(LOCAL_OWNER, "cli")

# The caller of the code running now, set by each surface where a request enters (HTTP, MCP, UI, CLI) so
# the agent's tool calls inside that request are checked and audited as the same principal.
current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("valuedesk_caller", default=None)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def parse_scopes(text: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise ValueDeskError(f"Unknown scope(s) {', '.join(unknown) or '(none given)'}; expected some of "
                             f"{', '.join(SCOPES)}, comma-separated.")
    return scopes


@dataclass
class KeyStore:
    """The named, scoped keys of one data directory (plus the legacy single key, when set)."""

    data_dir: Path
    legacy_key: str | None = None
    _mtime: tuple | None = None
    _entries: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def path(self) -> Path:
        return Path(self.data_dir) / KEYS_FILE

    def entries(self) -> list[dict]:
        """The stored keys (name, scopes, sha256, created_at), re-read when the file changed."""
        try:
            stat = self.path.stat()
            mtime = (stat.st_mtime_ns, stat.st_ino)  # a rewrite is a rename: a new inode even within one tick
        except FileNotFoundError:
            mtime = None
        with self._lock:
            if mtime != self._mtime:
                self._entries = self._read() if mtime is not None else []
                self._mtime = mtime
            return list(self._entries)

    def _read(self) -> list[dict]:
        try:
            keys = json.loads(self.path.read_text()).get("keys", [])
        except (OSError, ValueError, AttributeError) as exc:
            raise ValueDeskError(f"{self.path} is unreadable ({exc}); expected {{\"keys\": [...]}} as "
                                 "`valuedesk keys add` writes it.") from None
        return [k for k in keys if isinstance(k, dict) and {"name", "scopes", "sha256"} <= set(k)]

    @property
    def configured(self) -> bool:
        return bool(self.legacy_key) or bool(self.entries())

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal whose key this is, or None; compares against every key, whatever matches."""
        if not presented:
            return None
        digest = key_hash(presented)
        found = None
        candidates = [(k["sha256"], Principal(k["name"], frozenset(k["scopes"]))) for k in self.entries()]
        if self.legacy_key:
            candidates.append((key_hash(self.legacy_key), Principal("api-key", LEGACY_KEY)))
        for stored, principal in candidates:
            if hmac.compare_digest(stored, digest) and found is None:
                found = principal
        return found

    # -- administration (`valuedesk keys`)

    def add(self, name: str, scopes: frozenset[str]) -> str:
        """A new key for `name` (shown once, never stored); a name already in use is refused."""
        if any(k["name"] == name for k in self.entries()):
            raise ValueDeskError(f"A key named '{name}' exists; revoke it or rotate it instead.")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self._write(self.entries() + [{"name": name, "scopes": sorted(scopes), "sha256": key_hash(key),
                                       "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}])
        return key

    def revoke(self, name: str) -> None:
        kept = [k for k in self.entries() if k["name"] != name]
        if len(kept) == len(self.entries()):
            raise ValueDeskError(f"No key named '{name}' (`valuedesk keys list`).")
        self._write(kept)

    def rotate(self, name: str) -> str:
        old = next((k for k in self.entries() if k["name"] == name), None)
        if old is None:
            raise ValueDeskError(f"No key named '{name}' (`valuedesk keys list`).")
        self.revoke(name)
        return self.add(name, frozenset(old["scopes"]))

    def _write(self, entries: list[dict]) -> None:
        Path(self.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        write_json_atomic(self.path, {"keys": entries})  # 0600, renamed into place


def named(store: KeyStore, name: str) -> Principal | None:
    """The principal a key of this name belongs to (for a UI user signed in under that name)."""
    entry = next((k for k in store.entries() if k["name"] == name), None)
    return Principal(entry["name"], frozenset(entry["scopes"])) if entry else None


def ui_authenticator(store: KeyStore, users: str):
    """Gradio's `auth` callable: a listed user signs in with their principal name and their API key."""
    allowed = {u.strip() for u in users.split(",") if u.strip()}

    def check(username: str, password: str) -> bool:
        principal = store.authenticate(password)
        return principal is not None and principal.name == username and username in allowed

    return check


def run_as(caller: Caller, iterator):
    """Iterate `iterator` (a generator) with `current_caller` set to `caller` at every step: a server may
    run each step on another worker thread, where a value set in the previous step would be gone."""
    context = contextvars.copy_context()
    context.run(current_caller.set, caller)
    while True:
        try:
            yield context.run(next, iterator)
        except StopIteration:
            return


def on_surface(surface: str) -> Caller:
    """The current principal (the request's, else the command line's owner) calling through `surface`:
    the agent's tool calls are made as whoever asked the question."""
    return Caller((current_caller.get() or CLI_CALLER).principal, surface)


_stores: dict[tuple[str, str | None], KeyStore] = {}


def key_store(settings) -> KeyStore:
    """The keys of this data directory, one store per process (it re-reads keys.json when it changes)."""
    key = (str(settings.data_dir), settings.api_key)
    if key not in _stores:
        _stores[key] = KeyStore(Path(settings.data_dir), legacy_key=settings.api_key)
    return _stores[key]


def caller_for(store: KeyStore, authorization: str | None, surface: str) -> Caller | None:
    """The caller a request's Authorization header names; None for a missing or wrong key when keys exist.
    With no key configured (a loopback server) everyone is the local server principal."""
    if not store.configured:
        return Caller(LOCAL_SERVER, surface)
    scheme, _, token = (authorization or "").partition(" ")
    principal = store.authenticate(token.strip()) if scheme.lower() == "bearer" else store.authenticate(None)
    return Caller(principal, surface) if principal is not None else None
