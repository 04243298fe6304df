"""First run: the UI serves before the profiles are indexed, profile search says so, and indexing resumes.

Data: the tools tests' real build (one in four Online Retail customers, `_tools_data.tools_data_dir`),
copied per test without its index. The model-free hashing embedder keeps every test to seconds; the
embedders here wrap it to count, fail after some chunks, or wait for a signal.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("chromadb")

import ui  # noqa: E402
from agent.display import index_markdown  # noqa: E402
from agent.settings import AgentSettings  # noqa: E402
from _tools_data import tools_data_dir  # noqa: E402
from predictor.search import jobs as index_jobs  # noqa: E402
from predictor.build_index import sync_index  # noqa: E402
from predictor.search.embedding_cache import EmbeddingCache, cache_dir, text_key  # noqa: E402
from predictor.search.embeddings import HashingEmbedder  # noqa: E402
from predictor.search.prepare import prepare_profiles  # noqa: E402
from predictor.search.jobs import IndexJob, IndexState, read_index_state, write_index_state  # noqa: E402
from predictor.layout import current_version  # noqa: E402
from predictor.settings import Settings  # noqa: E402
from tools.deps import ToolDeps  # noqa: E402
from tools.registry import ToolRegistry  # noqa: E402
from valuedesk import bootstrap  # noqa: E402



class Counting:
    """The hashing embedder, counting the texts it embeds; `fail_after` chunks, it raises (a crash mid-run)."""

    def __init__(self, fail_after: int | None = None, gate: threading.Event | None = None):
        self.inner = HashingEmbedder(384)
        self.name, self.dim, self.backend = self.inner.name, self.inner.dim, "test"
        self.calls = self.texts = 0
        self.fail_after, self.gate = fail_after, gate

    def embed(self, texts):
        if self.gate is not None and not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("killed mid-run")
        self.calls += 1
        self.texts += len(texts)
        return self.inner.embed(texts)


@pytest.fixture
def settings(tmp_path) -> Settings:
    """A built data directory (customer tables and profiles) with no index, as `build --no-index` leaves it."""
    source = current_version(tools_data_dir())
    target = tmp_path / "builds" / source.name
    shutil.copytree(source.root, target, symlinks=True, ignore=shutil.ignore_patterns("index.json"))
    (tmp_path / "current").symlink_to(Path("builds") / source.name)
    return Settings(data_dir=tmp_path, embedding_model="hashing-384", threads=1)


def _texts(settings: Settings) -> list[str]:
    """What the index embeds for each profile."""
    return index_jobs.embedded_texts(prepare_profiles(pd.read_parquet(settings.build_root / "profiles.parquet")))


def _search(settings: Settings, **args) -> dict:
    res = ToolRegistry(ToolDeps(settings)).call("search_profiles", {"query": "Christmas decorations", **args})
    assert res.ok, res.error
    return res.result


# --------------------------------------------------------------------------- (a) search while indexing


def test_search_while_indexing_says_so_with_counts_and_searches_what_is_embedded(settings):
    total = len(_texts(settings))
    job = IndexJob(settings, embedder=Counting(fail_after=3), chunk=50)
    with pytest.raises(RuntimeError, match="killed mid-run"):
        job.run()
    # As a running job leaves it: 150 vectors on disk, the job alive (this process).
    write_index_state(settings.data_dir, IndexState(state="embedding", total=total, done=150, embedded=150,
                                                    pid=os.getpid(), host=socket.gethostname()))
    result = _search(settings, limit=5)
    assert result["index_state"] == "embedding" and result["profiles_total"] == total
    assert result["profiles_searched"] == 150 and result["returned"] == 5
    assert f"still being built: 150 of {total:,} profiles embedded" in result["note"]
    assert "150 profiles embedded so far" in result["note"]
    # The most valuable customers are embedded first, so they are the ones searched.
    customers = pd.read_parquet(settings.customers_path)
    top = set(customers.nlargest(150, "customer_value")["customer_id"].astype(str))
    assert {h["customer_id"] for h in result["hits"]} <= top
    # Filters apply to the partial set too; a bad filter is still the caller's mistake.
    gold = _search(settings, tiers=["Gold"], limit=3)
    assert gold["hits"] and all(h["tier"] == "Gold" for h in gold["hits"])
    bad = ToolRegistry(ToolDeps(settings)).call("search_profiles", {"query": " "})
    assert not bad.ok and bad.error.code == "invalid_arguments"

    from agent.planner.templates import search_profiles as render

    text = render(result, {"query": "Christmas decorations"}, settings)
    assert text.startswith("Profile search is still being built") and "Customer " in text


def test_search_before_anything_is_embedded_or_after_a_crash_is_a_plain_answer(settings):
    total = len(_texts(settings))
    write_index_state(settings.data_dir, IndexState(state="embedding", total=total, pid=os.getpid(),
                                                    host=socket.gethostname()))
    result = _search(settings)
    assert result["hits"] == [] and result["profiles_searched"] == 0
    assert result["note"].startswith(f"Profile search is still being built: 0 of {total:,} profiles")
    assert "Every other question answers now" in result["note"]
    # The indexing process died (no such pid): the state reads as interrupted, and says how to resume.
    write_index_state(settings.data_dir, IndexState(state="embedding", total=total, pid=2**22 + 12345,
                                                    host=socket.gethostname()))
    assert read_index_state(settings.data_dir).state == "interrupted"
    assert "stopped at 0 of" in _search(settings)["note"]
    assert "restart the UI to resume" in index_markdown(read_index_state(settings.data_dir))


# --------------------------------------------------------------------------- (b) resume after a crash


def test_interrupted_indexing_resumes_and_embeds_only_the_rest(settings):
    texts = _texts(settings)
    distinct = len(set(texts))
    crashed = Counting(fail_after=4)
    with pytest.raises(RuntimeError):
        IndexJob(settings, embedder=crashed, chunk=40).run()
    state = read_index_state(settings.data_dir)
    assert state.state == "failed" and state.done == 160 and "killed mid-run" in state.message
    assert bootstrap.missing_artifacts(settings) == ["chroma/"]  # the next start indexes again

    resumed = Counting()
    summary = IndexJob(settings, embedder=resumed, chunk=40).run()
    assert resumed.texts == distinct - 160  # the 160 vectors of the first run are not recomputed
    state = read_index_state(settings.data_dir)
    assert state.ready and state.done == state.total == len(texts) and state.embedded == distinct - 160
    assert f"{len(texts)} profiles" in summary and current_version(settings.data_dir).index_record()["summary"] == summary
    assert bootstrap.missing_artifacts(settings) == []
    result = _search(settings, limit=3)
    assert result["note"] is None and result["returned"] == 3

    # The cache holds exactly the embedder's vectors; a third run embeds nothing at all.
    cache = EmbeddingCache(cache_dir(settings.data_dir, resumed.name, resumed.dim), resumed.dim)
    assert len(cache) == distinct
    vectors, found = cache.get([text_key(resumed.name, t) for t in texts[:5]])
    assert found.all() and np.allclose(vectors, HashingEmbedder(384).embed(texts[:5]))
    again = Counting()
    rebuilt = sync_index(pd.read_parquet(settings.build_root / "profiles.parquet"), settings, embedder=again)
    assert f"{len(texts)} profiles; 0 embedded" in rebuilt and again.texts == 0


def test_foreground_build_index_resumes_from_the_cache_too(settings):
    """`valuedesk build` (sync_index) killed half-way: the next run embeds only what the first did not store."""
    profiles = pd.read_parquet(settings.build_root / "profiles.parquet")
    distinct = len(set(_texts(settings)))
    first = Counting(fail_after=2)
    with pytest.raises(Exception, match="killed mid-run"):
        sync_index(profiles, settings, embedder=first)
    stored = first.texts  # whole chunks, on disk
    assert 0 < stored < distinct
    second = Counting()
    assert f"{len(profiles)} profiles" in sync_index(profiles, settings, embedder=second)
    assert second.texts == distinct - stored


# --------------------------------------------------------------------------- (c) the UI serves first


def test_first_run_serves_before_indexing_finishes(settings, monkeypatch):
    gate = threading.Event()
    monkeypatch.setattr(index_jobs, "_embedder", lambda s: Counting(gate=gate))
    # Tables missing too: the first-run build must leave the index to the background job.
    (settings.data_dir / "current").rename(settings.data_dir / "current.held")  # no build switched in yet
    calls = []

    def fake_build(s, with_index=True, progress=True, **kw):
        calls.append(with_index)
        (s.data_dir / "current.held").rename(s.data_dir / "current")
        return type("Report", (), {"summary": lambda self: "built"})()

    import predictor.build

    monkeypatch.setattr(predictor.build, "build", fake_build)
    bootstrap.ensure_built(settings, progress=False)
    try:
        assert calls == [False] and settings.customers_path.exists()
        state = read_index_state(settings.data_dir)
        assert state.running and index_markdown(state).startswith("**Profile search:** preparing")
        deadline = time.monotonic() + 30
        while not state.total and time.monotonic() < deadline:  # the job counts the profiles first
            time.sleep(0.05)
            state = read_index_state(settings.data_dir)
        assert state.running and state.done == 0 < state.total  # held at the gate: nothing embedded yet
        assert index_markdown(state).startswith(f"**Profile search:** indexing 0 of {state.total:,} profiles (0%)")
        registry = ToolRegistry(ToolDeps(settings))
        assert registry.call("find_customers", {"tiers": ["Gold"], "limit": 3}).ok  # answers now
        building = registry.call("search_profiles", {"query": "tea sets"})
        assert building.ok and building.result["index_state"] == "embedding" and building.result["note"]
        # A second start in the same process does not start a second job.
        assert index_jobs.start_index_job(settings) is index_jobs._JOBS[str(settings.data_dir.resolve())]
    finally:
        gate.set()
    job = index_jobs._JOBS[str(settings.data_dir.resolve())]
    assert job.wait(60) and job.error is None
    state = read_index_state(settings.data_dir)
    assert state.ready and "ready (" in index_markdown(state)
    # The same registry (its index object opened while indexing ran) now searches the full index.
    done = registry.call("search_profiles", {"query": "tea sets", "limit": 4})
    assert done.ok and done.result["note"] is None and done.result["returned"] == 4
    assert bootstrap.missing_artifacts(settings) == []


def test_no_index_starts_no_job(settings, monkeypatch):
    monkeypatch.setattr(index_jobs, "start_index_job", lambda *a, **k: pytest.fail("indexing started"))
    assert bootstrap.ensure_built(settings, with_index=False) is None
    assert read_index_state(settings.data_dir) is None


def test_status_line_follows_the_state():
    assert index_markdown(None) == ""
    line = index_markdown({"state": "embedding", "done": 1200, "total": 4333})
    assert line == "**Profile search:** indexing 1,200 of 4,333 profiles (27%); every other question answers now."
    assert "writing 4,333" in index_markdown({"state": "writing", "done": 4333, "total": 4333})
    assert "failed" in index_markdown({"state": "failed", "done": 1, "total": 2, "message": "disk full"})


def test_side_panel_shows_indexing_progress_and_stops_refreshing_when_ready(tmp_path):
    """The app's status line adapts the state it is given; its timer ticks only while indexing runs."""
    class Service:
        def backend_info(self):
            return {"backend": "offline"}

    states = [{"state": "embedding", "done": 1200, "total": 4333}, {"state": "ready", "done": 4333, "total": 4333}]
    demo = ui.build_app(service=Service(), settings=AgentSettings(data_dir=tmp_path), index_status=lambda: states[0])
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    tick = next(f.fn for f in fns if getattr(f.fn, "__name__", "") == "index_line")
    line, timer = tick()
    assert line.startswith("**Profile search:** indexing 1,200 of 4,333 profiles (27%)") and timer.active
    states.pop(0)
    line, timer = tick()
    assert line == "**Profile search:** ready (4,333 profiles)." and not timer.active
