"""One data directory, many builds: every build is a version folder switched in by one pointer.

    <data_dir>/builds/<version>/   models/, scores.parquet, customers.parquet, profiles.parquet,
                                   transactions.parquet, categories.parquet, tier_transitions.parquet,
                                   build.json, manifest.json (size and sha256 of every file above),
                                   index.json (the profile collection indexed for this version)
    <data_dir>/current -> builds/<version>

A build writes its folder under `builds/.staging-*`, renames it into place and then moves `current`
in one `os.replace` of a symlink, so a reader sees the old version or the new one, never a mix; a
build killed at any point leaves staging debris that `clean_debris` removes at the next start.
Readers resolve `current` once (`current_version`) and read every file from that one folder.

A data directory without `current` (tests' fixtures, `valuedesk score --out`) is read flat: the
files sit in the data directory itself and there is no manifest to check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from predictor.atomic import fsync_dir, replace_symlink, write_text_atomic
from predictor.errors import ArtifactError

log = logging.getLogger(__name__)

BUILDS_DIR = "builds"
CURRENT = "current"
MANIFEST = "manifest.json"
INDEX_FILE = "index.json"  # attached after the build (background indexing), so not in the manifest
HEALTH_FILE = "health.json"  # the model's health report, attached whenever it is computed (not in the manifest)
STAGING_PREFIX = ".staging-"
BUILD_LOCK = ".build.lock"
# The Dask engine's customer buckets (predictor/engine/buckets.py), beside the versions: an input cache.
BUCKETS = "buckets"
# Hidden folders a killed engine run leaves: bucket staging and scored parts (predictor/engine).
ENGINE_TEMP_PREFIXES = (f".{BUCKETS}.", ".dask-parts.", ".dask-customers.")
REBUILD_COMMAND = "valuedesk build --rescore"
# The files of a version folder (see the module docstring).
MODELS = "models"
SCORES = "scores.parquet"
CUSTOMERS = "customers.parquet"
PROFILES = "profiles.parquet"
TRANSACTIONS = "transactions.parquet"
CATEGORIES = "categories.parquet"
TRANSITIONS = "tier_transitions.parquet"
BUILD_JSON = "build.json"
# Files of the pre-version flat layout, removed once a version serves (they are never read again).
FLAT_FILES = (SCORES, CUSTOMERS, PROFILES, TRANSACTIONS, CATEGORIES, TRANSITIONS, BUILD_JSON)


class IntegrityError(ArtifactError):
    """A file of the serving build is missing, truncated, altered or unreadable."""

    def __init__(self, message: str, *, file: str):
        super().__init__(message)
        self.file = file


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(4 * 2**20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class BuildVersion:
    """The files of one build (or of a flat data directory when `name` is None)."""

    data_dir: Path
    root: Path
    name: str | None

    # -- paths
    @property
    def model_dir(self) -> Path:
        return self.root / MODELS

    def path(self, name: str) -> Path:
        return self.root / name

    def rel(self, path: Path | str) -> str:
        """`path` relative to the data directory (what messages show: never a server's absolute path)."""
        try:
            return str(Path(path).relative_to(self.data_dir))
        except ValueError:
            return Path(path).name

    # -- manifest
    def manifest(self) -> dict[str, Any] | None:
        if self.name is None:
            return None
        path = self.root / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise IntegrityError(f"{self.rel(path)} is missing, so the files of build {self.name} cannot be "
                                 f"checked; run `{REBUILD_COMMAND}`.", file=self.rel(path)) from None
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"{self.rel(path)} is unreadable ({type(exc).__name__}); run "
                                 f"`{REBUILD_COMMAND}`.", file=self.rel(path)) from exc

    def verify(self, relative: str) -> None:
        """Check one file (path relative to the version) against the manifest: size, then hash."""
        manifest = self.manifest()
        if manifest is None:
            return
        path = self.root / relative
        shown = self.rel(path)
        expected = (manifest.get("files") or {}).get(relative)
        if expected is None:
            if path.exists():
                raise IntegrityError(f"{shown} is not part of build {self.name} (it is not in its manifest); "
                                     f"remove it or run `{REBUILD_COMMAND}`.", file=shown)
            return
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise IntegrityError(f"{shown} is missing from build {self.name}; run `{REBUILD_COMMAND}`.",
                                 file=shown) from None
        if size != expected["size"]:
            what = "truncated" if size < expected["size"] else "longer than written"
            raise IntegrityError(f"{shown} is {what} ({size:,} bytes, the build wrote {expected['size']:,}); "
                                 f"run `{REBUILD_COMMAND}`.", file=shown)
        if sha256_file(path) != expected["sha256"]:
            raise IntegrityError(f"{shown} was changed after build {self.name} wrote it (its sha256 differs from "
                                 f"the manifest); run `{REBUILD_COMMAND}`.", file=shown)

    def verify_all(self, intact: set[str] | None = None) -> list[IntegrityError]:
        """Every file of the manifest checked; the problems found (empty when all is well). The files
        that passed are added to `intact` when given (so a reader need not hash them again)."""
        try:
            manifest = self.manifest()
        except IntegrityError as exc:
            return [exc]
        problems = []
        for relative in (manifest or {}).get("files", {}):
            try:
                self.verify(relative)
            except IntegrityError as exc:
                problems.append(exc)
            else:
                if intact is not None:
                    intact.add(relative)
        return problems

    # -- the index attached to this version
    def index_record(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / INDEX_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def health_record(self) -> dict[str, Any] | None:
        """The last health report attached to this version (None when none was computed)."""
        try:
            return json.loads((self.root / HEALTH_FILE).read_text())
        except (OSError, ValueError):
            return None

    def attach_health(self, report: dict[str, Any]) -> None:
        write_text_atomic(self.root / HEALTH_FILE, json.dumps(report, indent=2, default=str))

    def attach_index(self, collection: str, summary: str) -> None:
        record = {"collection": collection, "summary": summary,
                  "indexed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_text_atomic(self.root / INDEX_FILE, json.dumps(record, indent=2))


def current_name(data_dir: Path | str) -> str | None:
    """The version `current` points at (one readlink: cheap enough to check per request)."""
    try:
        return Path(os.readlink(Path(data_dir) / CURRENT)).name
    except OSError:
        return None


def current_version(data_dir: Path | str) -> BuildVersion:
    """The serving version, resolved once; a flat data directory when no build has switched one in."""
    data_dir = Path(data_dir)
    name = current_name(data_dir)
    if name is not None and (data_dir / BUILDS_DIR / name).is_dir():
        return BuildVersion(data_dir=data_dir, root=data_dir / BUILDS_DIR / name, name=name)
    return BuildVersion(data_dir=data_dir, root=data_dir, name=None)


def list_versions(data_dir: Path | str) -> list[str]:
    builds = Path(data_dir) / BUILDS_DIR
    if not builds.is_dir():
        return []
    return sorted(p.name for p in builds.iterdir() if p.is_dir() and not p.name.startswith("."))


def new_version_name() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


class StagedBuild:
    """A version folder being written: hidden until `publish` renames it and moves `current`."""

    def __init__(self, data_dir: Path | str):
        self.data_dir = Path(data_dir)
        self.name = new_version_name()
        builds = self.data_dir / BUILDS_DIR
        builds.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root = Path(tempfile.mkdtemp(dir=builds, prefix=f"{STAGING_PREFIX}{self.name}."))  # 0700
        self.version = BuildVersion(data_dir=self.data_dir, root=self.root, name=None)

    def link_from(self, source: BuildVersion, relative: str) -> bool:
        """Reuse an unchanged file or folder of an earlier version: hard links, no copy (versions never
        change after publishing). False when the source lacks it."""
        src, dst = source.root / relative, self.root / relative
        if not src.exists():
            return False
        if src.is_dir():
            shutil.copytree(src, dst, copy_function=os.link, symlinks=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
        return True

    def write_manifest(self) -> dict[str, Any]:
        files = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.is_symlink() and path.name not in (MANIFEST, INDEX_FILE, HEALTH_FILE):
                relative = str(path.relative_to(self.root))
                files[relative] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        manifest = {"version": self.name, "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "files": files}
        write_text_atomic(self.root / MANIFEST, json.dumps(manifest, indent=2))
        return manifest

    def publish(self) -> BuildVersion:
        """Manifest, rename into builds/<name>, then the one switch: `current` moves to it."""
        self.write_manifest()
        final = self.data_dir / BUILDS_DIR / self.name
        _fsync_tree(self.root)
        os.replace(self.root, final)
        replace_symlink(self.data_dir / CURRENT, Path(BUILDS_DIR) / self.name)
        fsync_dir(self.data_dir)
        self.published = BuildVersion(data_dir=self.data_dir, root=final, name=self.name)
        return self.published

    published: BuildVersion | None = None

    def abort(self) -> None:
        """Remove the staging folder of a build that did not publish (no-op after `publish`)."""
        if self.published is None:
            shutil.rmtree(self.root, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(root)


def clean_debris(data_dir: Path | str, *, build_lock_held: bool = False) -> list[str]:
    """Remove what killed or failed builds left: staging folders, temp files and pointer links,
    and the flat files an older layout left beside a serving version. Returns what was removed.
    Skipped while a build runs (it holds `.build.lock`), unless the caller is that build, and in a
    data dir this process cannot write (API replicas serving a build read-only leave it to the builder)."""
    data_dir = Path(data_dir)
    if not os.access(data_dir, os.W_OK):
        return []
    if not build_lock_held and (data_dir / BUILD_LOCK).exists():
        import fcntl

        with open(data_dir / BUILD_LOCK, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return []  # a build is running: its staging folder is not debris
            return _clean(data_dir)
    return _clean(data_dir)


def _clean(data_dir: Path) -> list[str]:
    removed: list[str] = []
    builds = data_dir / BUILDS_DIR
    if builds.is_dir():
        for path in builds.iterdir():
            if path.name.startswith(STAGING_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path.relative_to(data_dir)))
    for path in data_dir.iterdir():
        if path.is_dir() and path.name.startswith(ENGINE_TEMP_PREFIXES):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    serving = current_version(data_dir)
    for folder in {data_dir, serving.root}:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            temp_file = path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file()
            temp_link = path.is_symlink() and path.name.startswith(f".{CURRENT}.")
            if temp_file or temp_link:
                path.unlink(missing_ok=True)
                removed.append(serving.rel(path))
    if current_name(data_dir) is not None:
        for name in FLAT_FILES:
            if (data_dir / name).is_file():
                (data_dir / name).unlink()
                removed.append(name)
        if (data_dir / MODELS).is_dir():
            shutil.rmtree(data_dir / MODELS, ignore_errors=True)
            removed.append(MODELS)
    if removed:
        log.info("removed debris of earlier builds: %s", ", ".join(removed))
    return removed


@dataclass(frozen=True)
class RemovedVersion:
    name: str
    collection: str | None


def prune_versions(data_dir: Path | str, keep: int) -> list[RemovedVersion]:
    """Delete all but the newest `keep` versions (never the serving one); returns what was removed
    (their index collections are the caller's to drop)."""
    data_dir = Path(data_dir)
    serving = current_name(data_dir)
    names = list_versions(data_dir)
    keep_names = set(names[-max(1, keep):]) | ({serving} if serving else set())
    removed = []
    for name in names:
        if name in keep_names:
            continue
        version = BuildVersion(data_dir=data_dir, root=data_dir / BUILDS_DIR / name, name=name)
        collection = version.index_record().get("collection")
        shutil.rmtree(version.root, ignore_errors=True)
        removed.append(RemovedVersion(name=name, collection=collection))
    return removed


def collections_in_use(data_dir: Path | str) -> set[str]:
    """Profile collections some kept version still reads."""
    data_dir = Path(data_dir)
    used = set()
    for name in list_versions(data_dir):
        record = BuildVersion(data_dir=data_dir, root=data_dir / BUILDS_DIR / name, name=name).index_record()
        if record.get("collection"):
            used.add(record["collection"])
    return used
