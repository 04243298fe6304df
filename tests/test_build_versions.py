"""One switch per build: a build killed (SIGKILL) at any step, or failing on a full disk, leaves one
consistent version serving; integrity checks name the damaged file; old versions are pruned.

Builds run as real subprocesses on the small real fixture (238 Online Retail customers) with the
model-free hashing embedder; the kill comes from predictor.build's `_checkpoint` seam (or, for the
moments inside a step, from the function that runs there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("chromadb")

from predictor.layout import BUILDS_DIR, current_name, current_version, list_versions  # noqa: E402
from predictor.settings import REPO_ROOT, Settings  # noqa: E402
from tools.deps import ToolDeps  # noqa: E402
from tools.registry import ToolRegistry  # noqa: E402

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "online_retail_sample.csv.gz"
WIDER_TIERS = "Platinum=0.02,Gold=0.08,Silver=0.25"

RUNNER = textwrap.dedent("""
    import errno, os, pathlib, signal, sys
    import pandas as pd
    import predictor.build as b
    from predictor.build_report import BuildError
    import predictor.search.columns as columns
    from predictor.model.estimators import TrainingConfig
    from predictor.settings import Settings

    data_dir, fault, rescore, tiers = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
    kind, _, where = fault.partition(":")

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if kind == "kill":
        b._checkpoint = lambda step: die() if step == where else None
        if where == "index-columns":  # inside the index step: collection written, not yet ready
            columns.ColumnStore.save = lambda *a, **k: die()
        if where == "before-switch":  # the version folder renamed into place, `current` not yet moved
            real = pathlib.Path.symlink_to
            pathlib.Path.symlink_to = lambda self, *a, **k: die() if self.name.startswith(".current.") \\
                else real(self, *a, **k)
    elif kind == "enospc":
        real_parquet = pd.DataFrame.to_parquet
        def full(self, path, *a, **k):
            if where in str(path):
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real_parquet(self, path, *a, **k)
        pd.DataFrame.to_parquet = full
        if where == "index":
            def full_columns(*a, **k):
                raise OSError(errno.ENOSPC, "No space left on device")
            columns.ColumnStore.save = full_columns
    s = Settings(data_dir=data_dir, embedding_model="hashing-384", threads=1, tier_thresholds=tiers)
    try:
        b.build(s, data_path=sys.argv[5], schema="online_retail", rescore=rescore, progress=False,
                training_config=TrainingConfig.fast(s.horizon_days))
    except BuildError as exc:
        print("BUILD ERROR:", exc)
        sys.exit(3)
""")


def _run_build(data_dir: Path, fault: str = "none:", rescore: bool = False, tiers: str = WIDER_TIERS):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", RUNNER, str(data_dir), fault, "1" if rescore else "0", tiers,
                           str(FIXTURE)], capture_output=True, text=True, env=env, timeout=300)


def _settings(data_dir: Path, **kw) -> Settings:
    return Settings(data_dir=data_dir, embedding_model="hashing-384", threads=1, **kw)


@pytest.fixture(scope="module")
def first_build(tmp_path_factory) -> Path:
    """A data directory with one complete build (default tiers)."""
    data_dir = tmp_path_factory.mktemp("versions") / "data"
    done = _run_build(data_dir, tiers=Settings().tier_thresholds)
    assert done.returncode == 0, done.stdout + done.stderr
    return data_dir


@pytest.fixture
def data_dir(first_build, tmp_path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(first_build, target, symlinks=True)
    return target


def assert_one_consistent_version(data_dir: Path) -> str:
    """Every file of the serving version matches its manifest, and every tool answers from it."""
    version = current_version(data_dir)
    assert version.name is not None
    assert version.verify_all() == []
    info = json.loads(version.path("build.json").read_text())
    model_version = info["score_key"]["model_version"]
    assert (version.model_dir / "current").resolve().name == model_version
    scores = pd.read_parquet(version.path("scores.parquet"))
    assert set(scores["model_version"].astype(str)) == {model_version}
    registry = ToolRegistry(ToolDeps(_settings(data_dir)))
    report = registry.call("model_report", {})
    assert report.ok and report.result["version"] == model_version
    assert report.result["horizon_days"] == Settings().horizon_days  # read from the bundle (it was always null)
    customers = pd.read_parquet(version.path("customers.parquet"))
    assert len(customers) == info["report"]["customers"]
    top = registry.call("find_customers", {"limit": 3})
    assert top.ok and top.result["total_matching"] == len(customers)
    search = registry.call("search_profiles", {"query": "christmas decorations", "limit": 3})
    assert search.ok and search.result["returned"] == 3
    assert registry.deps.index.collection_name == version.index_record()["collection"]
    return version.name


def assert_next_build_cleans_up(data_dir: Path) -> None:
    done = _run_build(data_dir, tiers="Platinum=0.03,Gold=0.1,Silver=0.3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert_one_consistent_version(data_dir)
    builds = data_dir / BUILDS_DIR
    assert not [p.name for p in builds.iterdir() if p.name.startswith(".")]
    assert not [p.name for p in data_dir.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".current.")]
    # Exactly the collections of the kept versions remain (killed builds' collections are dropped).
    kept = {current_version(data_dir).__class__(data_dir=data_dir, root=builds / n, name=n).index_record().get(
        "collection") for n in list_versions(data_dir)}
    columns = {p.name for p in (data_dir / "chroma_columns").iterdir()}
    assert columns == kept


BEFORE_SWITCH = ["load", "categories", "tiers", "profiles", "write", "index-columns", "index", "before-switch"]
AFTER_SWITCH = ["publish", "activate"]


@pytest.mark.parametrize("step", BEFORE_SWITCH + AFTER_SWITCH)
def test_build_killed_at_each_step_leaves_one_version_serving(data_dir, step):
    before = current_name(data_dir)
    killed = _run_build(data_dir, f"kill:{step}")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    serving = assert_one_consistent_version(data_dir)
    assert (serving == before) == (step in BEFORE_SWITCH)
    assert_next_build_cleans_up(data_dir)


@pytest.mark.parametrize("step", ["score", "write", "publish"])
def test_rescore_killed_leaves_one_version_serving(data_dir, step):
    before = current_name(data_dir)
    killed = _run_build(data_dir, f"kill:{step}", rescore=True)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    serving = assert_one_consistent_version(data_dir)
    assert (serving == before) == (step != "publish")
    assert_next_build_cleans_up(data_dir)


@pytest.mark.parametrize("where", ["customers.parquet", "index"])
def test_full_disk_fails_cleanly_and_keeps_serving(data_dir, where):
    before = current_name(data_dir)
    failed = _run_build(data_dir, f"enospc:{where}")
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "No space left" in failed.stdout and "previous build still serves" in failed.stdout
    assert current_name(data_dir) == before
    assert_one_consistent_version(data_dir)
    assert not [p.name for p in (data_dir / BUILDS_DIR).iterdir() if p.name.startswith(".")]


def test_old_versions_are_pruned(data_dir):
    for tiers in ("Platinum=0.02,Gold=0.06,Silver=0.2", "Platinum=0.03,Gold=0.1,Silver=0.3",
                  "Platinum=0.02,Gold=0.08,Silver=0.25", "Platinum=0.01,Gold=0.07,Silver=0.22"):
        assert _run_build(data_dir, tiers=tiers).returncode == 0
    assert len(list_versions(data_dir)) == Settings().builds_to_keep
    assert current_name(data_dir) == list_versions(data_dir)[-1]
    assert_one_consistent_version(data_dir)


# --------------------------------------------------------------------------- integrity on load

def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"\x00not a parquet file" * 10)
    elif how == "edited":  # a valid table that no longer matches the build: one customer dropped
        frame = pd.read_parquet(path)
        path.unlink()  # versions hard-link unchanged files: never write through a shared inode
        frame.iloc[1:].to_parquet(path, index=False)


@pytest.mark.parametrize("how", ["truncate", "empty", "garbage", "edited"])
def test_damaged_customers_table_is_named_with_the_fix(data_dir, how):
    version = current_version(data_dir)
    _damage(version.path("customers.parquet"), how)
    registry = ToolRegistry(ToolDeps(_settings(data_dir)))
    res = registry.call("find_customers", {"limit": 3})
    assert not res.ok and res.error.code == "not_built"
    message = res.error.message
    assert f"builds/{version.name}/customers.parquet" in message and "valuedesk build --rescore" in message
    assert str(data_dir) not in message  # relative to the data directory, never the server's absolute path
    # The model still answers: a damaged table costs only the tools that read it.
    assert registry.call("model_report", {}).ok


@pytest.mark.parametrize("name", ["metadata.json", "value.ubj"])
def test_damaged_model_file_is_named(data_dir, name):
    version = current_version(data_dir)
    path = (version.model_dir / "current" / name).resolve()
    path.unlink()
    path.write_bytes(b"{garbage")
    res = ToolRegistry(ToolDeps(_settings(data_dir))).call("model_report", {})
    assert not res.ok and res.error.code == "not_built"
    assert name in res.error.message and "valuedesk build --rescore" in res.error.message


def test_api_starts_on_a_damaged_build_and_answers_what_it_can(data_dir):
    from fastapi.testclient import TestClient

    from tools.api import create_app
    from tools.settings import ServingSettings

    _damage(current_version(data_dir).path("customers.parquet"), "truncate")
    app = create_app(ServingSettings(data_dir=data_dir, embedding_model="hashing-384", threads=1))
    with TestClient(app) as client:  # runs the lifespan (warm) like `valuedesk api`
        bad = client.post("/v1/tools/find_customers", json={"limit": 3})
        assert bad.status_code == 503 and "customers.parquet is truncated" in bad.json()["error"]["message"]
        assert client.post("/v1/tools/model_report", json={}).status_code == 200


def test_a_running_server_follows_the_switch(data_dir):
    """Deps pinned to a version keep answering from it; after a build's switch the next call uses the new one."""
    registry = ToolRegistry(ToolDeps(_settings(data_dir)))
    first = registry.call("model_report", {}).result["version"]
    assert _run_build(data_dir, rescore=True).returncode == 0
    second = registry.call("model_report", {}).result["version"]
    assert second != first
    assert second == json.loads(current_version(data_dir).path("build.json").read_text())["score_key"]["model_version"]
