"""The Chroma profile index, run against embedded Chroma and a real `chroma run` server alike: search
results (filtered plans against brute force and Chroma's own `where`), hits, filters, refusals and the
column store's scans.

Profiles are real Online Retail customers (see tests/chroma_server.py); vectors come from the
project's MiniLM embedder (fixtures: tests/index_fixtures.py). Every expected result is computed
independently here (brute-force cosine over the embedder's vectors with pandas filtering, or Chroma's
own `where`), never typed in.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from predictor.search import columns as columns_mod
from predictor.search import prepare as prepare_mod
from predictor.search.embeddings import HashingEmbedder
from predictor.customers.audience import CustomerFilter
from predictor.customers.audience import FilterError, parse_conditions, to_chroma_where
from predictor.search.errors import IndexMismatchError, ProfileIndexError, QueryError
from predictor.search.index import ProfileIndex


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
    # The one "at risk" travels into the index's metadata as a flag.
    ({"at_risk": True, "tier": {"!=": "Platinum"}},
     lambda p: p["lifecycle"].isin(["at risk", "lapsing"]) & p["at_risk"].astype(bool) & (p["tier"] != "Platinum")),
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
