"""Profile index benchmark: embedding throughput, ingest time and filtered query latency.

    .venv/bin/python bench/bench_index.py --n 100000 --n-large 1000000

* Embedding throughput: real profile texts, ONNX and sentence-transformers in the same run.
* Ingest: `--n` profiles bootstrapped (seeded) from real Online Retail customers (all 4,339, or
  `--base` of them where embedding all is too slow for the machine). Their vectors
  are the source customer's MiniLM vector plus small seeded noise (so duplicates are not identical),
  so ingest time is Chroma + column store only; embedding time for n is reported from the measured
  throughput.
* Queries: p50/p95 of `search_vector` (index only) and `search` (with query embedding), without
  a filter and with filters of different selectivity, against plain Chroma `where` on the same
  collection in the same run.
* `--n-large`: the filter + exact plan at that size, on the column store alone (no Chroma build),
  since building a 1M-profile HNSW graph does not fit a shared 2-core machine; pass
  `--n 1000000` where it does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from chroma_server import bootstrap_profiles, real_profiles  # noqa: E402
from predictor.embeddings import get_embedder  # noqa: E402
from predictor.index import ProfileIndex, _Columns, _prepare, parse_filters, to_chroma_where  # noqa: E402

QUERIES = ["buys vintage tea sets and cake stands", "christmas decorations and fairy lights",
           "lunch bags and picnic gear", "customers from Germany who order often",
           "big wholesale orders of party supplies", "candles and home fragrance",
           "lapsed customer who used to buy children's toys", "gift wrap and greeting cards"]
FILTERS = {
    "tier in {Gold,Silver} & churn_risk>0.5": {"tier": ["Gold", "Silver"], "churn_risk": {">": 0.5}},
    "lifecycle in {at risk,lapsing}": {"lifecycle": ["at risk", "lapsing"]},
    "segment=Champions & country=UK": {"segment": "Champions", "country": "United Kingdom"},
    "tier=Platinum & country=Germany": {"tier": "Platinum", "country": "Germany"},
}


def pct(times_ms: list[float]) -> dict:
    return {"p50_ms": round(float(np.percentile(times_ms, 50)), 2),
            "p95_ms": round(float(np.percentile(times_ms, 95)), 2)}


def timed(fn, items, repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        item = items[i % len(items)]
        t = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t) * 1000)
    return out


def embed_throughput(n: int, cache: Path) -> dict:
    texts = real_profiles(n, seed=1)["profile_text"].tolist() if n <= 4339 else \
        bootstrap_profiles(n, seed=1)["profile_text"].tolist()
    res = {}
    for name in ("minilm-onnx", "minilm-st"):
        emb = get_embedder(name, cache)
        emb.embed(texts[:32])  # warm-up
        t = time.perf_counter()
        emb.embed(texts)
        res[name] = round(n / (time.perf_counter() - t), 1)
    return res


def base_vectors(cache: Path, n_base: int | None):
    base = real_profiles(n_base, seed=0)
    emb = get_embedder("minilm", cache)
    return base, emb, emb.embed(base["profile_text"].tolist())


def bootstrapped(n: int, base, base_vecs, seed: int, noise: float):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(base), n)
    profiles = base.iloc[rows].reset_index(drop=True)
    profiles["customer_id"] = [f"B{i:07d}" for i in range(n)]
    vecs = base_vecs[rows] + rng.normal(0, noise, (n, base_vecs.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return profiles, vecs


def bench_full(n: int, base, emb, base_vecs, queries: int, noise: float, throughput: dict) -> dict:
    profiles, vecs = bootstrapped(n, base, base_vecs, seed=n, noise=noise)
    work = Path(tempfile.mkdtemp(prefix="vd-bench-index-"))
    idx = ProfileIndex(work, None, emb, timeout_s=30)
    t = time.perf_counter()
    idx.rebuild(profiles, embeddings=vecs)
    ingest_s = time.perf_counter() - t
    qv = emb.embed(QUERIES)
    out = {"n": n, "ingest_s_precomputed_vectors": round(ingest_s, 1),
           "ingest_profiles_per_s": round(n / ingest_s, 1),
           "embedding_s_estimated": {k: round(n / v, 1) for k, v in throughput.items()}}
    cols = idx._active.columns
    coll = idx._active.collection
    out["no_filter"] = {"index": pct(timed(lambda v: idx.search_vector(v, None, 10), qv, queries)),
                        "with_query_embedding": pct(timed(lambda q: idx.search(q, None, 10), QUERIES, queries)),
                        "plain_chroma": pct(timed(lambda v: coll.query(query_embeddings=[v], n_results=10,
                                                                       include=["documents", "metadatas", "distances"]),
                                                  qv, queries))}
    for label, f in FILTERS.items():
        conds = parse_filters(f)
        share = float(cols.mask(conds).mean())
        ours = timed(lambda v: idx.search_vector(v, f, 10), qv, queries)
        plan = idx.last_plan

        def cold(v):
            cols._mask_cache.clear()  # as if this filter had not been asked recently
            idx.search_vector(v, f, 10)

        ours_cold = timed(cold, qv, queries)
        e2e = timed(lambda q: idx.search(q, f, 10), QUERIES, queries)
        where = to_chroma_where(conds)
        plain = timed(lambda v: coll.query(query_embeddings=[v], n_results=10, where=where,
                                           include=["documents", "metadatas", "distances"]),
                      qv, max(10, queries // 3))
        # Same answers? Plain Chroma's filtered HNSW is approximate, so report the overlap.
        overlap = []
        for v in qv:
            a = {h.customer_id for h in idx.search_vector(v, f, 10)}
            b = set(coll.query(query_embeddings=[v], n_results=10, where=where, include=[])["ids"][0])
            overlap.append(len(a & b) / max(1, len(b)))
        out[label] = {"selectivity": round(share, 4), "plan": plan, "index": pct(ours),
                      "index_cold_mask": pct(ours_cold), "with_query_embedding": pct(e2e),
                      "plain_chroma_where": pct(plain), "speedup_p95": round(pct(plain)["p95_ms"] / pct(ours)["p95_ms"], 1),
                      "top10_overlap_with_plain": round(float(np.mean(overlap)), 3)}
    # Incremental: rescore 1% of customers (new text), count what gets re-embedded.
    changed = profiles.copy()
    k = max(1, n // 100)
    rows = np.random.default_rng(0).choice(n, size=k, replace=False)
    changed.loc[rows, "profile_text"] = changed.loc[rows, "profile_text"] + " Rescored."
    t = time.perf_counter()
    rep = idx.sync(changed)
    out["incremental_1pct"] = {"changed": k, "reembedded": rep.embedded, "share": round(rep.embedded / n, 4),
                               "seconds": round(time.perf_counter() - t, 1)}
    idx.close()
    return out


def bench_large(n: int, base, emb, base_vecs, queries: int, noise: float) -> dict:
    """Mask + exact plan at n on the column store (the plan selective filters take)."""
    # Prepare the real customers once and resample their rows: same columns as a full prepare of
    # n bootstrapped profiles, without holding n profile texts in memory.
    frame = _prepare(base).frame
    rng = np.random.default_rng(n)
    rows = rng.integers(0, len(frame), n)
    frame = frame.iloc[rows].reset_index(drop=True)
    frame["customer_id"] = [f"B{i:07d}" for i in range(n)]
    vecs = base_vecs[rows] + rng.normal(0, noise, (n, base_vecs.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    cols = _Columns(frame, vecs, 1)
    path = Path(tempfile.mkdtemp(prefix="vd-bench-cols-"))
    cols.save(path, "bench", emb.name, emb.dim)  # serve from the memory map, as the index does
    qv = emb.embed(QUERIES)
    out = {"n": n}
    for label, f in FILTERS.items():
        conds = parse_filters(f)
        mask_ms = timed(lambda _: cols._compute_mask(conds), [0], queries)
        cand = np.flatnonzero(cols.mask(conds))

        def exact(v, cold=False):
            if cold:
                cols._mask_cache.clear()
            c = np.flatnonzero(cols.mask(conds))
            ProfileIndex._exact_scores(cols, v, c, 10)

        row = {"selectivity": round(len(cand) / n, 4), "candidates": int(len(cand)), "mask_cold": pct(mask_ms)}
        if len(cand) <= 40_000:
            row["mask+exact"] = pct(timed(exact, qv, queries))
            row["cold_mask+exact"] = pct(timed(lambda v: exact(v, True), qv, queries))
        else:
            row["note"] = "over exact_max: served by HNSW over-fetch + post-filter (needs the Chroma build)"
        out[label] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="profiles for ingest + query (0 to skip)")
    ap.add_argument("--n-large", type=int, default=1_000_000, help="profiles for the column-store plan (0 to skip)")
    ap.add_argument("--embed-n", type=int, default=512, help="profiles for embedding throughput (0 to skip)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--base", type=int, default=0,
                    help="real customers to bootstrap from (0 = all 4,339; fewer embeds faster)")
    ap.add_argument("--noise", type=float, default=0.02, help="per-dimension noise on bootstrapped vectors")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    cache = Path(tempfile.gettempdir()) / "vd-bench-embeddings"
    results: dict = {}
    throughput = embed_throughput(args.embed_n, cache) if args.embed_n else {}
    results["embedding_profiles_per_s"] = throughput
    print(json.dumps(results), flush=True)
    base, emb, base_vecs = base_vectors(cache, args.base or None)
    results["bootstrap_base_customers"] = len(base)
    if args.n:
        results["full"] = bench_full(args.n, base, emb, base_vecs, args.queries, args.noise, throughput)
        print(json.dumps(results["full"], indent=1), flush=True)
    if args.n_large:
        results["large"] = bench_large(args.n_large, base, emb, base_vecs, args.queries, args.noise)
        print(json.dumps(results["large"], indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
