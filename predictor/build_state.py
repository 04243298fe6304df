"""What a build knows about the builds around it: the serving build's record (build.json) and files,
and the lock that keeps one build per data directory."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from predictor.build_report import BuildError
from predictor.layout import BUILD_JSON, BUILD_LOCK, PROFILES, BuildVersion, sha256_file
from predictor.settings import Settings


def profiles_path(settings: Settings) -> Path:
    """profiles.parquet of the serving build."""
    return settings.build_root / PROFILES


def read_build_info(version: BuildVersion) -> dict[str, Any]:
    """The build.json a build wrote into `version` ({} when missing or unreadable)."""
    path = version.path(BUILD_JSON)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # an unreadable record only costs a full rebuild


def file_sha(path: Path) -> str | None:
    return sha256_file(path) if path.exists() else None


def model_version(version: BuildVersion) -> str | None:
    """The model version `version`'s models/current points at."""
    current = version.model_dir / "current"
    try:
        return current.resolve().name if current.exists() else None
    except OSError:
        return None


def read_parquet_or_none(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(path) if path.exists() else None
    except (OSError, ValueError):
        return None


@contextmanager
def build_lock(data_dir: Path) -> Iterator[None]:
    """One build per data directory at a time (a second would prune what the first is staging)."""
    with os.fdopen(os.open(data_dir / BUILD_LOCK, os.O_RDWR | os.O_CREAT, 0o600), "r+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BuildError(f"another build is running in {data_dir.name}/ (it holds .build.lock); "
                             "wait for it to finish") from None
        yield
