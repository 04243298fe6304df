"""Atomic file writes: the one implementation every layer uses.

A file is written under a temporary name in its own folder (so the rename never crosses a file
system), flushed to disk, and renamed over the target in one `os.replace`: a reader sees the old
file or the new one, never half of one. A write that fails or is interrupted removes its temporary
file; a process killed mid-write leaves a hidden `.<name>.*.tmp` file, which
`predictor.layout.clean_debris` removes at the next start.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: Path | str, mode: int = 0o600) -> Iterator[Path]:
    """Yield a temporary path beside `path` for the caller (or a library) to write; on success it is
    fsynced, given `mode` and renamed to `path`, on failure removed.

    For writers that take a file name (pandas, numpy, torch.onnx); the file exists (empty) when the
    block starts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path | str, data: bytes, mode: int = 0o600) -> None:
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path | str, text: str, mode: int = 0o600) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), mode)


def write_json_atomic(path: Path | str, payload: Any, mode: int = 0o600) -> None:
    """`payload` as indented JSON; values JSON lacks (dates, paths) are written as their str()."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=str), mode)


def replace_symlink(link: Path, target: Path | str) -> None:
    """Point `link` at `target` in one rename (a reader never finds `link` missing)."""
    tmp = link.parent / f".{link.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
    tmp.symlink_to(target)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (best effort: some file systems refuse a folder fsync)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
