"""The Chroma profile index, run against embedded Chroma and a real `chroma run` server alike.

Profiles are real Online Retail customers (see tests/chroma_server.py); vectors come from the
project's MiniLM embedder. Every expected result is computed independently here (brute-force
cosine over the embedder's vectors with pandas filtering, or Chroma's own `where`), never typed in.
"""

from __future__ import annotations

import errno
import math
import socket
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest

import chromadb.api.models.Collection as chroma_collection
from predictor.search import columns as columns_mod
from predictor.search import prepare as prepare_mod
from predictor.search.embeddings import HashingEmbedder, get_embedder
from predictor.customers.audience import CustomerFilter
from predictor.customers.audience import FilterError, parse_conditions, to_chroma_where
from predictor.search.errors import IndexMismatchError, ProfileIndexError, QueryError
from predictor.search.index import ProfileIndex
from chroma_server import ChromaServer, free_port, real_profiles

N_PROFILES = 240


class CountingEmbedder:
    """Wraps the real embedder: counts texts embedded, memoises vectors to keep the suite quick."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.backend = inner, inner.name, inner.dim, inner.backend
        self.calls = 0
        self._memo: dict[str, np.ndarray] = {}

    def embed(self, texts):
        texts = list(texts)
        self.calls += len(texts)
        todo = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if todo:
            for t, v in zip(todo, self.inner.embed(todo)):
                self._memo[t] = v
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


@pytest.fixture(scope="session")
def minilm(tmp_path_factory):
    return get_embedder("minilm", tmp_path_factory.mktemp("embeddings"), threads=2)


@pytest.fixture
def embedder(minilm):
    return CountingEmbedder(minilm)


@pytest.fixture(scope="session")
def profiles():
    return real_profiles(N_PROFILES, seed=7)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server") / "db").start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "server"])
def make_index(request, tmp_path, embedder):
    """Builds ProfileIndex objects for one mode; all share this test's data dir and namespace."""
    url = request.getfixturevalue("chroma_server").url if request.param == "server" else None
    namespace = "t" + uuid.uuid4().hex[:10]
    opened = []

    def make(emb=None, data_dir=None, **kw):
        idx = ProfileIndex(data_dir or tmp_path, url, emb or embedder, timeout_s=10, namespace=namespace, **kw)
        opened.append(idx)
        return idx

    make.mode = request.param
    yield make
    for idx in opened:
        idx.close()


def embedded_text(profiles: pd.DataFrame) -> pd.Series:
    """What the index embeds: the score-free embedding text, the display text for old profiles."""
    return profiles["embedding_text"] if "embedding_text" in profiles else profiles["profile_text"]


def brute_force(embedder, profiles: pd.DataFrame, query: str, keep: pd.Series, k: int) -> list[str]:
    sub = profiles[keep.to_numpy()]
    vecs = embedder.embed(embedded_text(sub).tolist())
    q = embedder.embed([query])[0]
    scores = vecs @ q
    order = np.argsort(-scores, kind="stable")[:k]
    return sub["customer_id"].astype(str).to_numpy()[order].tolist()


FILTER_CASES = [
    ({"tier": ["Gold", "Platinum", "Silver"]}, lambda p: p["tier"].isin(["Gold", "Platinum", "Silver"])),
    ({"tier": ["Silver", "Bronze"], "churn_risk": {">": 0.5}},
     lambda p: p["tier"].isin(["Silver", "Bronze"]) & (p["churn_risk"] > 0.5)),
    ({"country": "Germany"}, lambda p: p["country"] == "Germany"),
    ({"lifecycle": "active", "orders": {">=": 5}, "recency_days": {"<": 60}},
     lambda p: (p["lifecycle"] == "active") & (p["orders"] >= 5) & (p["recency_days"] < 60)),
    ({"min_value": 200, "value_at_risk": {"between": [10, 5000]}},
     lambda p: (p["predicted_value"] >= 200) & (p["value_at_risk"] >= 10) & (p["value_at_risk"] <= 5000)),
    ({"segment": {"not in": ["Lost", "At Risk"]}, "last_order_date": {">=": "2011-11-01"}},
     lambda p: ~p["segment"].isin(["Lost", "At Risk"]) & (pd.to_datetime(p["last_order_date"]) >= "2011-11-01")),
]
QUERIES = ["buys vintage tea sets and cake stands", "christmas decorations and lights", "lunch bags"]


@pytest.mark.parametrize("exact_max", [100_000, 0], ids=["exact-plan", "ann-plan"])
def test_filtered_search_matches_brute_force_and_chroma_where(make_index, embedder, profiles, exact_max):
    idx = make_index(exact_max=exact_max, scan_max=0)  # scan_max=0: the size alone never forces exact
    idx.rebuild(profiles)
    recalls: list[float] = []
    for filters, expected_mask in FILTER_CASES:
        keep = expected_mask(profiles)
        assert keep.sum() > 0, filters  # a case that selects nobody would test nothing
        for query in QUERIES[:2]:
            hits = idx.search(query, filters, limit=5)
            want = brute_force(embedder, profiles, query, keep, 5)
            got = [h.customer_id for h in hits]
            assert all(keep[profiles["customer_id"] == h.customer_id].all() for h in hits)
            assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
            assert len(got) == min(5, int(keep.sum()))
            plain = idx._active.collection.query(query_embeddings=embedder.embed([query]), n_results=5,
                                                 where=to_chroma_where(parse_conditions(filters)))
            if idx.last_plan == "exact":
                assert got == want, (filters, query)
                # Plain Chroma with the equivalent `where` finds the same set (it searches exhaustively
                # at this size; its order is its own).
                assert set(plain["ids"][0]) == set(got), filters
            else:
                # HNSW is approximate: the over-fetch plan must still find nearly all true top hits.
                recalls.append(len(set(got) & set(want)) / len(want))
        if exact_max == 0 and keep.sum() > 5:
            assert idx.last_plan.startswith(("ann", "exact-fallback")), idx.last_plan
    assert (len(recalls) > 0) == (exact_max == 0)
    if recalls:
        assert np.mean(recalls) >= 0.9, recalls


@pytest.mark.parametrize("shard_rows", [10_000, 64, None], ids=["one-shard", "row-shards", "without-faiss"])
def test_code_scan_plan_matches_brute_force(make_index, embedder, profiles, monkeypatch, shard_rows):
    """Large candidate sets are ranked by scanning 8-bit codes, then re-scoring a pool in float32:
    the same ids, order and scores as brute force, split into row shards or not; without faiss
    by gathering float32 vectors."""
    if shard_rows is None:
        monkeypatch.setattr(columns_mod, "_faiss", lambda: None)
    else:
        pytest.importorskip("faiss")
        monkeypatch.setattr(columns_mod, "_SHARD_MIN_ROWS", shard_rows)
    monkeypatch.setattr(columns_mod, "_GATHER_MAX", 0)  # as if every candidate set were large
    idx = make_index(exact_max=100_000)
    idx.rebuild(profiles)
    codes = idx._active.columns.vector_codes()
    assert (codes is None) == (shard_rows is None)
    assert codes is None or (len(codes.shards) > 1) == (shard_rows == 64)
    countries = profiles["country"].value_counts().index[:5].tolist()  # 5 names: the lookup-table path
    cases = FILTER_CASES + [
        (None, lambda p: pd.Series(True, index=p.index)),  # no filter: a full scan at this size
        ({"country": countries}, lambda p: p["country"].isin(countries)),
        ({"country": {"not in": countries}}, lambda p: p["country"].notna() & ~p["country"].isin(countries)),
    ]
    plans = set()
    for filters, expected_mask in cases:
        keep = expected_mask(profiles)
        assert keep.sum() > 0, filters
        for query in QUERIES:
            hits = idx.search(query, filters, limit=5)
            plans.add(idx.last_plan)
            assert [h.customer_id for h in hits] == brute_force(embedder, profiles, query, keep, 5), (filters, query)
            texts = embedded_text(profiles.set_index("customer_id"))
            vecs = embedder.embed([texts.loc[h.customer_id] for h in hits])
            want = vecs @ embedder.embed([query])[0]
            assert [h.score for h in hits] == pytest.approx(want.tolist(), abs=1e-5)
    # Without codes a full scan is not cheap at (what looks like) a large size: no filter goes to HNSW.
    assert plans == ({"ann", "exact"} if shard_rows is None else {"exact", "exact-sq8"}), plans


def test_hits_carry_snippet_and_metadata(make_index, profiles):
    idx = make_index()
    idx.rebuild(profiles)
    hits = idx.search("customers from Germany", {"tier": ["Bronze", "Silver"]}, limit=3)
    assert len(hits) == 3
    by_id = profiles.set_index("customer_id")
    for h in hits:
        row = by_id.loc[h.customer_id]
        assert row["profile_text"].startswith(h.snippet.rstrip("…"))
        assert len(h.snippet) <= prepare_mod.SNIPPET_CHARS + 1
        assert h.metadata["tier"] == row["tier"] and h.metadata["country"] == row["country"]
        assert h.metadata["churn_risk"] == pytest.approx(row["churn_risk"])
        assert -1.0 <= h.score <= 1.0


def test_customer_filter_model_equals_dict(make_index, profiles):
    idx = make_index()
    idx.rebuild(profiles)
    model = CustomerFilter(tiers=["silver", "bronze"], min_churn_risk=0.3, countries=["United Kingdom"])
    plain = {"tier": ["Silver", "Bronze"], "churn_risk": {">=": 0.3}, "country": "United Kingdom"}
    a = [h.customer_id for h in idx.search("gift bags", model, limit=8)]
    b = [h.customer_id for h in idx.search("gift bags", plain, limit=8)]
    assert a == b and len(a) == 8
    # Names match whatever their case, as a marketer types them.
    assert [h.customer_id for h in idx.search("gift bags", {"country": "germany", "tier": "BRONZE"}, 5)] == \
        [h.customer_id for h in idx.search("gift bags", {"country": "Germany", "tier": "Bronze"}, 5)]


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


def test_model_mismatch_is_refused_with_rebuild_command(make_index, profiles):
    idx = make_index()
    idx.rebuild(profiles)
    other = HashingEmbedder(256)
    with pytest.raises(IndexMismatchError, match="valuedesk build --rebuild-index"):
        make_index(emb=other, verify=True)
    lazy = make_index(emb=other)
    with pytest.raises(IndexMismatchError, match="all-MiniLM-L6-v2"):
        lazy.search("tea", None, 3)
    with pytest.raises(IndexMismatchError):
        lazy.sync(profiles)
    # The rebuild the message asks for works and the index then serves the new model.
    lazy.rebuild(profiles)
    assert len(make_index(emb=other, verify=True).search("tea", None, 3)) == 3
    with pytest.raises(IndexMismatchError):
        idx.search("tea", None, 3)


def test_unknown_filter_field_and_operator(make_index, profiles):
    idx = make_index()
    idx.rebuild(profiles)
    with pytest.raises(FilterError, match=r"Unknown filter field 'favourite_colour'.*tier.*churn_risk.*orders"):
        idx.search("tea", {"favourite_colour": "red"})
    with pytest.raises(FilterError, match=r"Unknown operator '~=' for filter 'churn_risk'.*>="):
        idx.search("tea", {"churn_risk": {"~=": 0.5}})
    with pytest.raises(FilterError, match=r"operator '>' for filter 'tier'"):
        idx.search("tea", {"tier": {">": "Gold"}})
    with pytest.raises(FilterError, match="Did you mean 'Gold'"):
        idx.search("tea", {"tier": "Goldd"})
    with pytest.raises(FilterError, match="Did you mean 'Germany'"):
        idx.search("tea", {"country": "Germny"})
    with pytest.raises(FilterError, match="needs a number"):
        idx.search("tea", {"churn_risk": {">": "high"}})
    with pytest.raises(FilterError, match="date"):
        idx.search("tea", {"last_order_date": {">": "last spring"}})
    with pytest.raises(FilterError, match="min/max only apply to numeric"):
        idx.search("tea", {"min_tier": "Gold"})
    assert idx.search("tea", {"tier": "Platinum", "churn_risk": {">": 2.0}}) == []


@pytest.mark.parametrize("query, limit, message", [
    ("", 5, "empty"), ("   \n ", 5, "empty"), ("tea " * 400, 5, "limit is 1000"), (None, 5, "must be text"),
    ("tea", 0, "limit must be"), ("tea", 10_000, "limit must be"),
])
def test_malformed_query_is_refused(make_index, profiles, query, limit, message):
    idx = make_index()
    idx.rebuild(profiles)
    with pytest.raises(QueryError, match=message):
        idx.search(query, None, limit)


def test_search_before_build_says_how_to_build(make_index):
    with pytest.raises(ProfileIndexError, match="valuedesk build"):
        make_index().search("tea")


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


@pytest.mark.parametrize("threads", [1, 3])
def test_column_store_scans_with_the_threads_it_was_given(tmp_path, profiles, threads):
    """The index passes its settings' thread count to the column store (it used to read the process-wide
    settings instead), on a fresh build and on reopening."""
    from predictor.search.embeddings import HashingEmbedder
    from predictor.settings import Settings

    settings = Settings(data_dir=tmp_path, threads=threads)
    built = ProfileIndex(settings, embedder=HashingEmbedder(384))
    try:
        built.rebuild(profiles.head(200))
        assert built._active.columns.threads == threads
    finally:
        built.close()
    reopened = ProfileIndex(settings, embedder=HashingEmbedder(384))
    try:
        assert reopened._active.columns.threads == threads
    finally:
        reopened.close()


def test_scan_pools_are_never_replaced_under_a_running_scan():
    """A scan asking for more shards used to swap the shared pool out from under a scan submitting to it."""
    small = columns_mod._pool(1)
    large = columns_mod._pool(3)
    assert columns_mod._pool(1) is small and columns_mod._pool(3) is large and small is not large
    assert small.submit(lambda: 41 + 1).result(timeout=5) == 42  # still accepting work
