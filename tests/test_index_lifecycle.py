"""The Chroma profile index over its life, embedded and against a real `chroma run` server: incremental
sync and rescoring (what is re-embedded), rebuilds that fail or run out of disk (the old index keeps
serving), stale column stores, server faults and searches during a sync. Fixtures: tests/index_fixtures.py.
"""

from __future__ import annotations

import errno
import math
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest

import chromadb.api.models.Collection as chroma_collection
from predictor.search import columns as columns_mod
from predictor.search.embeddings import HashingEmbedder
from predictor.search.errors import ProfileIndexError
from predictor.search.index import ProfileIndex
from chroma_server import ChromaServer, free_port, real_profiles
from index_fixtures import N_PROFILES  # noqa: F401


def test_incremental_sync_reembeds_only_changed(make_index, embedder, profiles):
    idx = make_index()
    idx.rebuild(profiles)
    assert embedder.calls == len(profiles)
    n_change = math.ceil(0.01 * len(profiles))  # 1% of customers rescored with a new text
    rng = np.random.default_rng(3)
    rows = rng.choice(len(profiles), size=n_change + 4 + 2, replace=False)
    text_rows, meta_rows, drop_rows = rows[:n_change], rows[n_change:n_change + 4], rows[n_change + 4:]
    new = profiles.copy()
    # A new purchase changes what is embedded (and the display text with it).
    for col in ("embedding_text", "profile_text"):
        new.loc[text_rows, col] = new.loc[text_rows, col] + " Recently bought paper lanterns."
    new.loc[meta_rows, "recency_days"] = new.loc[meta_rows, "recency_days"] + 1.0  # text unchanged
    dropped = new.loc[drop_rows, "customer_id"].tolist()
    new = new.drop(index=drop_rows)
    extra = real_profiles(N_PROFILES + 20, seed=8)
    extra = extra[~extra["customer_id"].isin(profiles["customer_id"])].head(2)
    new = pd.concat([new, extra], ignore_index=True)

    before = embedder.calls
    report = idx.sync(new)
    assert embedder.calls - before == n_change + 2
    assert (report.reembedded, report.added, report.deleted, report.metadata_updated) == (n_change, 2, 2, 4)
    assert report.unchanged == len(new) - n_change - 2 - 4
    assert idx.count() == len(new)

    changed_id = profiles.loc[text_rows[0], "customer_id"]
    hits = idx.search("paper lanterns", {"tier": [profiles.loc[text_rows[0], "tier"]]}, limit=50)
    assert changed_id in [h.customer_id for h in hits]
    hit = next(h for h in hits if h.customer_id == changed_id)
    meta_id = profiles.loc[meta_rows[0], "customer_id"]
    got = idx._active.collection.get(ids=[meta_id, *dropped], include=["metadatas"])
    assert got["ids"] == [meta_id]  # removed customers are gone from Chroma
    assert got["metadatas"][0]["recency_days"] == pytest.approx(profiles.loc[meta_rows[0], "recency_days"] + 1.0)
    assert hit.score > 0
    for d in dropped:
        assert d not in [h.customer_id for h in idx.search("customer", None, limit=len(new))]

    # A fresh process sees the synced state, and a repeat sync has nothing to do.
    again = make_index()
    assert again.count() == len(new) and again.generation() == idx.generation()
    calls = embedder.calls
    noop = again.sync(new)
    assert embedder.calls == calls and noop.unchanged == len(new) and noop.embedded == 0


def test_one_percent_rescore_reembeds_about_one_percent(make_index, embedder):
    base = real_profiles(600, seed=11)
    idx = make_index()
    idx.rebuild(base)
    rescored = base.copy()
    rows = np.random.default_rng(0).choice(len(base), size=6, replace=False)
    # 1% of customers bought again: new scores and a new favourite product (the text embedded).
    rescored.loc[rows, "churn_risk"] = (rescored.loc[rows, "churn_risk"] + 0.1).clip(upper=1.0)
    rescored.loc[rows, "profile_text"] = rescored.loc[rows, "profile_text"].str.replace("Churn risk", "Churn risk now")
    rescored.loc[rows, "embedding_text"] = rescored.loc[rows, "embedding_text"] + ' Favourite products: "PAPER LANTERN".'
    before = embedder.calls
    report = idx.sync(rescored)
    assert embedder.calls - before == 6 and report.embedded == 6
    assert report.embedded / len(base) == pytest.approx(0.01)




def _collections(idx) -> set[str]:
    return {c.name for c in idx.client.list_collections()}


def test_failed_rebuild_keeps_old_index_serving(make_index, profiles, monkeypatch):
    idx = make_index(write_batch=60)
    idx.rebuild(profiles)
    before = [h.customer_id for h in idx.search("party decorations", {"tier": ["Bronze"]}, 5)]
    old_name, old_collections = idx.collection_name, _collections(idx)

    real_add, calls = chroma_collection.Collection.add, {"n": 0}

    def failing_add(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("interrupted half-way")
        return real_add(self, *a, **kw)

    monkeypatch.setattr(chroma_collection.Collection, "add", failing_add)
    changed = profiles.assign(profile_text=profiles["profile_text"] + " Changed.")
    with pytest.raises(ProfileIndexError, match=f"previous index \\({old_name}\\) still serves"):
        idx.rebuild(changed)
    monkeypatch.undo()
    assert calls["n"] == 2
    assert idx.collection_name == old_name and _collections(idx) == old_collections
    assert [h.customer_id for h in idx.search("party decorations", {"tier": ["Bronze"]}, 5)] == before
    reopened = make_index()
    assert reopened.collection_name == old_name
    assert [h.customer_id for h in reopened.search("party decorations", {"tier": ["Bronze"]}, 5)] == before


def test_disk_full_during_rebuild_keeps_old_index(make_index, profiles, monkeypatch):
    idx = make_index()
    idx.rebuild(profiles)
    before = [h.customer_id for h in idx.search("tea", {"country": "United Kingdom"}, 5)]
    old_name, old_collections = idx.collection_name, _collections(idx)

    def no_space(path, array):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(columns_mod, "_save_array", no_space)
    with pytest.raises(ProfileIndexError, match="disk full"):
        idx.rebuild(profiles)
    monkeypatch.undo()
    assert idx.collection_name == old_name and _collections(idx) == old_collections
    assert not any(p.name.endswith(".tmp") for p in (idx.columns_root / old_name).iterdir())
    assert [h.customer_id for h in make_index().search("tea", {"country": "United Kingdom"}, 5)] == before


def test_successful_rebuild_switches_and_drops_old(make_index, profiles):
    idx = make_index()
    idx.rebuild(profiles)
    old = idx.collection_name
    # What a rebuild killed with SIGKILL leaves behind: a half-written collection nobody serves.
    orphan = idx.prefix + "killed-rebuild"
    idx.client.create_collection(orphan, embedding_function=None)
    assert make_index().collection_name == old
    idx.rebuild(profiles.head(100))
    assert idx.collection_name != old and old not in _collections(idx) and orphan not in _collections(idx)
    assert not (idx.columns_root / old).exists()
    assert make_index().count() == 100


def test_stale_column_store_is_reloaded_from_chroma(make_index, profiles, tmp_path_factory):
    idx = make_index()
    idx.rebuild(profiles)
    filters = {"tier": ["Silver", "Gold"], "churn_risk": {"<": 0.6}}
    before = [h.customer_id for h in idx.search("ceramic mugs", filters, 6)]
    # Another machine (fresh data dir), or a crash after Chroma was written: columns rebuilt from Chroma.
    other = make_index(data_dir=tmp_path_factory.mktemp("other")) if make_index.mode == "server" else None
    if other is None:
        import shutil
        shutil.rmtree(idx.columns_root / idx.collection_name)
        other = make_index()
    assert other.count() == len(profiles)
    assert [h.customer_id for h in other.search("ceramic mugs", filters, 6)] == before


# --- server faults ------------------------------------------------------------------------------

def test_server_down_fails_fast(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ProfileIndexError, match="not reachable"):
        ProfileIndex(tmp_path, url, HashingEmbedder(), timeout_s=1.0)
    assert time.monotonic() - start < 5


def test_hung_server_times_out(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # accepts connections, never answers
    try:
        start = time.monotonic()
        with pytest.raises(ProfileIndexError, match="not reachable within 1s"):
            ProfileIndex(tmp_path, f"http://127.0.0.1:{sock.getsockname()[1]}", HashingEmbedder(), timeout_s=1.0)
        assert time.monotonic() - start < 5
    finally:
        sock.close()


def test_server_stopping_mid_session_gives_clear_error(tmp_path, profiles):
    server = ChromaServer(tmp_path / "db").start()
    try:
        idx = ProfileIndex(tmp_path / "data", server.url, HashingEmbedder(), timeout_s=1.0)
        idx.rebuild(profiles.head(50))
        assert len(idx.search("tea", None, 3)) == 3
    finally:
        server.stop()
    start = time.monotonic()
    with pytest.raises(ProfileIndexError, match="unreachable|did not answer"):
        idx.search("tea", None, 3)
    assert time.monotonic() - start < 5


def test_bad_chroma_url_is_refused(tmp_path):
    with pytest.raises(ProfileIndexError, match="not an http"):
        ProfileIndex(tmp_path, "ftp://example", HashingEmbedder(), timeout_s=1.0)


def test_concurrent_searches_during_sync(make_index, profiles):
    idx = make_index()
    idx.rebuild(profiles)
    errors: list[BaseException] = []

    def reader():
        try:
            for _ in range(10):
                assert idx.search("tea", {"tier": ["Bronze", "Silver"]}, 5)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    idx.sync(profiles.assign(profile_text=profiles["profile_text"].str.replace("Customer", "Client")))
    for t in threads:
        t.join()
    assert not errors
    assert idx.search("client", None, 1)[0].snippet.startswith("Client")


def _rescored(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The profiles fixture's customers, and the same customers rescored a month later with no new
    purchase: every score, tier, segment, lifecycle and recency moves, the purchases do not."""
    from chroma_server import _customers
    from predictor.customers.profiles import build_profiles

    customers = _customers().sample(n=n, random_state=seed).sort_values("customer_id")
    later = customers.copy()
    later["churn_risk"] = (1 - later["churn_risk"]).round(4)
    later["predicted_value"] = (later["predicted_value"] * 0.5 + 7).round(2)
    later["value_at_risk"] = (later["value_at_risk"] + 11).round(2)
    later["tier"] = later["tier"].map({"Bronze": "Silver", "Silver": "Gold", "Gold": "Platinum", "Platinum": "Bronze"})
    later["lifecycle"] = "lapsing"
    later["rfm_segment"] = "Hibernating"
    later[["recency_days", "tenure_days"]] += 30.0
    return build_profiles(customers).reset_index(drop=True), build_profiles(later).reset_index(drop=True)


def test_rescore_with_unchanged_purchases_reembeds_nothing(make_index, embedder, profiles):
    base, later = _rescored(N_PROFILES, seed=7)
    assert base["customer_id"].tolist() == profiles["customer_id"].tolist()
    assert (later["profile_text"] != base["profile_text"]).all()
    assert later["embedding_text"].tolist() == base["embedding_text"].tolist()
    idx = make_index()
    idx.rebuild(base)
    before = embedder.calls
    report = idx.sync(later)
    assert embedder.calls == before and report.embedded == 0 and report.reembedded == 0
    assert report.metadata_updated == len(later) and report.unchanged == 0
    # Filters see the new scores at once.
    gold = later.loc[later["tier"] == "Gold", "customer_id"]
    assert sorted(h.customer_id for h in idx.search("tea", {"tier": "Gold"}, limit=len(later))) == sorted(gold)


def test_vector_is_the_embedding_text_and_document_the_display_text(make_index, embedder):
    base, later = _rescored(40, seed=3)
    idx = make_index()
    idx.rebuild(base)
    got = idx._active.collection.get(ids=base["customer_id"].tolist(), include=["documents", "embeddings"])
    by_id = base.set_index("customer_id")
    vectors = embedder.embed(by_id.loc[got["ids"], "embedding_text"].tolist())
    np.testing.assert_allclose(np.asarray(got["embeddings"]), vectors, atol=1e-5)
    assert got["documents"] == by_id.loc[got["ids"], "profile_text"].tolist()
    # A rescore rewrites the shown text (new churn risk, tier...) while keeping the vector.
    idx.sync(later)
    after = idx._active.collection.get(ids=got["ids"], include=["documents", "embeddings"])
    assert after["documents"] == later.set_index("customer_id").loc[got["ids"], "profile_text"].tolist()
    np.testing.assert_allclose(np.asarray(after["embeddings"]), vectors, atol=1e-5)
    # Profiles written before embedding_text existed still index, embedding their display text.
    legacy = base.drop(columns=["embedding_text"]).head(5)
    idx.rebuild(legacy)
    first = idx._active.collection.get(ids=[legacy["customer_id"].iloc[0]], include=["embeddings"])
    np.testing.assert_allclose(np.asarray(first["embeddings"])[0],
                               embedder.embed([legacy["profile_text"].iloc[0]])[0], atol=1e-5)
