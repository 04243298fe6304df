"""predictor.atomic: the one implementation of atomic file writes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from predictor.atomic import atomic_path, replace_symlink, write_bytes_atomic, write_json_atomic, write_text_atomic


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_writes_replace_the_file_whole_and_private(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_text_atomic(target, "old")
    write_json_atomic(target, {"when": tmp_path})  # non-JSON values as str()
    assert json.loads(target.read_text()) == {"when": str(tmp_path)}
    write_bytes_atomic(target, b"\x00\x01", mode=0o640)
    assert target.read_bytes() == b"\x00\x01"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    write_text_atomic(target, "x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _leftovers(target.parent) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "scores.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".scores.parquet.") and tmp.suffix == ".tmp"
        tmp.write_text("half")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_replace_symlink_switches_in_one_rename(tmp_path):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    link = tmp_path / "current"
    replace_symlink(link, "v1")
    replace_symlink(link, "v2")
    assert os.readlink(link) == "v2"
    assert _leftovers(tmp_path) == []
