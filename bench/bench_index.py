"""Profile index benchmark: embedding throughput, ingest time, filtered query latency at 100k and 1M.

    flock /tmp/cpu.lock .venv/bin/python bench/bench_index.py --n 100000 --n-large 0
    flock /tmp/cpu.lock .venv/bin/python bench/bench_index.py --embed-n 0 --n 0 --n-large 1000000

* Embedding throughput: real profile texts, ONNX and sentence-transformers in the same run.
* Profiles are bootstrapped (seeded) from every real Online Retail customer (4,338); a copy's vector
  is its source customer's MiniLM vector plus small seeded noise (so copies are not identical), so
  ingest time is Chroma + column store only (the embedding time for n is estimated from the
  measured throughput). The real customers and their vectors are cached under
  /tmp/bench_index_cache.
* `--n`: a real `ProfileIndex.rebuild` of n profiles (ingest seconds), then queries.
* `--n-large`: the same index at that size, built once into /tmp/bench_index_cache in resumable
  chunks of `--build-minutes` (a 1M Chroma build takes longer than one locked run on a shared 2-core
  machine; run the command again until it reports the queries), then queries.
* Queries: p50/p95 of `search_vector` (index + fetching the hits from Chroma) and `search` (with query
  embedding), with no filter and with filters of different selectivity. Baselines measured in the
  same run: plain Chroma `where` on the same collection (the issue's baseline), and exact
  brute force (numpy float32 over the filtered rows, the previous exact plan, given its mask for
  free, plus fetching the hits). Top-10 overlap is against that exact ranking.
  `index` reuses the cached selection of a repeated filter, `index_cold_mask` recomputes it every
  query; `hnsw_first_scan_max_0` is the same query with scan_max=0, i.e. through Chroma's HNSW
  first as above scan_max profiles (the latency/recall trade).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from chroma_server import real_profiles  # noqa: E402
from predictor.search.embeddings import get_embedder  # noqa: E402
from predictor.customers.audience import parse_conditions, to_chroma_where  # noqa: E402
from predictor.search.columns import ColumnStore  # noqa: E402
from predictor.search.index import ProfileIndex  # noqa: E402
from predictor.search.prepare import prepare_profiles  # noqa: E402

CACHE = Path(os.environ.get("BENCH_INDEX_CACHE", "/tmp/bench_index_cache"))
QUERIES = ["buys vintage tea sets and cake stands", "christmas decorations and fairy lights",
           "lunch bags and picnic gear", "customers from Germany who order often",
           "big wholesale orders of party supplies", "candles and home fragrance",
           "lapsed customer who used to buy children's toys", "gift wrap and greeting cards",
           "ceramic mugs and kitchen storage", "garden ornaments and bird houses",
           "retro spot bunting and paper plates", "hot water bottles and warm throws"]
# label -> (filter, the same selection in pandas: the brute-force baseline never uses the index's masks)
FILTERS = {
    "tier in {Gold,Platinum} & churn_risk>0.5 & country=Germany": (
        {"tier": ["Gold", "Platinum"], "churn_risk": {">": 0.5}, "country": "Germany"},
        lambda p: p["tier"].isin(["Gold", "Platinum"]) & (p["churn_risk"] > 0.5) & (p["country"] == "Germany")),
    "tier in {Gold,Silver} & churn_risk>0.5": (
        {"tier": ["Gold", "Silver"], "churn_risk": {">": 0.5}},
        lambda p: p["tier"].isin(["Gold", "Silver"]) & (p["churn_risk"] > 0.5)),
    "country != UK": (
        {"country": {"not in": ["United Kingdom"]}},
        lambda p: p["country"].notna() & (p["country"] != "United Kingdom")),
    "segment=Champions & country=UK": (
        {"segment": "Champions", "country": "United Kingdom"},
        lambda p: (p["segment"] == "Champions") & (p["country"] == "United Kingdom")),
    "lifecycle in {at risk,lapsing}": (
        {"lifecycle": ["at risk", "lapsing"]},
        lambda p: p["lifecycle"].isin(["at risk", "lapsing"])),
}
INCLUDE = ["documents", "metadatas", "distances"]


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


def ratio(baseline: dict, ours: dict) -> float:
    return round(baseline["p95_ms"] / max(ours["p95_ms"], 1e-3), 1)


# --- data ---------------------------------------------------------------------------------------

def embed_throughput(n: int, cache: Path) -> dict:
    texts = real_profiles(n, seed=1)["profile_text"].tolist()
    res = {}
    for name in ("minilm-onnx", "minilm-st"):
        emb = get_embedder(name, cache)
        emb.embed(texts[:32])  # warm-up
        t = time.perf_counter()
        emb.embed(texts)
        res[name] = round(n / (time.perf_counter() - t), 1)
    return res


def base_set(emb) -> tuple[pd.DataFrame, np.ndarray]:
    """Every real customer's profile and vector, embedded once and cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    slug = emb.name.replace("/", "_")
    prof_path, vec_path = CACHE / f"base-{slug}.pkl", CACHE / f"base-{slug}.npy"
    if prof_path.exists() and vec_path.exists():
        return pd.read_pickle(prof_path), np.load(vec_path)
    base = real_profiles(None, seed=0)
    vecs = emb.embed(base["profile_text"].tolist()).astype(np.float32)
    base.to_pickle(prof_path.with_suffix(".tmp"))
    np.save(vec_path.with_suffix(".tmp.npy"), vecs)
    os.replace(prof_path.with_suffix(".tmp"), prof_path)
    os.replace(vec_path.with_suffix(".tmp.npy"), vec_path)
    return base, vecs


def bootstrap_rows(n: int, n_base: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_base, n)


def bootstrap_vectors(base_vecs: np.ndarray, rows: np.ndarray, seed: int, noise: float) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    out = np.empty((len(rows), base_vecs.shape[1]), dtype=np.float32)
    for start in range(0, len(rows), 100_000):  # chunks: float64 noise for 1M rows would be 3 GB
        stop = min(len(rows), start + 100_000)
        v = base_vecs[rows[start:stop]] + rng.normal(0, noise, (stop - start, base_vecs.shape[1])).astype(np.float32)
        out[start:stop] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def bootstrap_profiles(base: pd.DataFrame, rows: np.ndarray, start: int = 0) -> pd.DataFrame:
    out = base.iloc[rows].reset_index(drop=True)
    out["customer_id"] = [f"B{i:07d}" for i in range(start, start + len(rows))]
    return out


# --- queries ------------------------------------------------------------------------------------

def exact_top(vecs: np.ndarray, candidates: np.ndarray, v: np.ndarray, k: int) -> np.ndarray:
    """Brute force: float32 cosine over the filtered rows (the previous exact plan, without its mask)."""
    if len(candidates) == len(vecs):
        scores = np.asarray(vecs) @ v
        cand = None
    else:
        scores = np.take(vecs, candidates, axis=0) @ v
        cand = candidates
    k = min(k, len(scores))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return top if cand is None else cand[top]


def query_bench(idx: ProfileIndex, truth_frame: pd.DataFrame, vecs: np.ndarray, qv: np.ndarray, queries: int,
                plain_queries: int) -> dict:
    """Ours against plain Chroma `where` and exact brute force, on the same collection, in the same run."""
    cols = idx._active.columns
    coll = idx._active.collection
    ids = truth_frame["customer_id"].to_numpy()
    out: dict = {}
    cases = {"no filter": (None, lambda p: pd.Series(True, index=p.index)), **FILTERS}
    for label, (flt, pandas_mask) in cases.items():
        keep = pandas_mask(truth_frame).to_numpy(dtype=bool)
        candidates = np.flatnonzero(keep)
        conds = parse_conditions(flt)
        where = to_chroma_where(conds)
        exact = {i: set(ids[exact_top(vecs, candidates, v, 10)]) for i, v in enumerate(qv)}

        def ours_cold(v):
            cols.clear_cache()  # as if this filter had not been asked recently
            idx.search_vector(v, flt, 10)

        ours = pct(timed(lambda v: idx.search_vector(v, flt, 10), qv, queries))
        plan = idx.last_plan
        cold = pct(timed(ours_cold, qv, queries))
        e2e = pct(timed(lambda q: idx.search(q, flt, 10), QUERIES, queries))
        # The previous exact plan, given its mask for free: gather + float32 mat-vec + fetch the hits.
        brute = pct(timed(lambda v: coll.get(ids=ids[exact_top(vecs, candidates, v, 10)].tolist(),
                                             include=["documents", "metadatas"]), qv, queries))
        overlap = [len({h.customer_id for h in idx.search_vector(v, flt, 10)} & exact[i]) / max(1, len(exact[i]))
                   for i, v in enumerate(qv)]
        row = {"selectivity": round(float(keep.mean()), 4), "candidates": int(keep.sum()), "plan": plan,
               "index": ours, "index_cold_mask": cold, "with_query_embedding": e2e,
               "top10_overlap_with_exact": round(float(np.mean(overlap)), 3),
               "exact_bruteforce_numpy": brute, "speedup_p95_vs_bruteforce": ratio(brute, ours)}
        if plan.startswith("exact") and idx.thresholds.scan_max >= len(cols):
            # The same query through HNSW first, as above scan_max profiles (the latency/recall trade).
            thresholds, idx.thresholds = idx.thresholds, dataclasses.replace(idx.thresholds, scan_max=0)
            try:
                hnsw = pct(timed(lambda v: idx.search_vector(v, flt, 10), qv, queries))
                hnsw_plan = idx.last_plan
                hnsw_overlap = [len({h.customer_id for h in idx.search_vector(v, flt, 10)} & exact[i]) /
                                max(1, len(exact[i])) for i, v in enumerate(qv)]
            finally:
                idx.thresholds = thresholds
            row["hnsw_first_scan_max_0"] = {**hnsw, "plan": hnsw_plan,
                                            "top10_overlap_with_exact": round(float(np.mean(hnsw_overlap)), 3)}
        if plain_queries:
            plain = pct(timed(lambda v: coll.query(query_embeddings=[v], n_results=10, where=where, include=INCLUDE),
                              qv, plain_queries))
            plain_overlap = []
            for i, v in enumerate(qv[:plain_queries]):
                got = set(coll.query(query_embeddings=[v], n_results=10, where=where, include=[])["ids"][0])
                plain_overlap.append(len(got & exact[i]) / max(1, len(exact[i])))
            row.update({"plain_chroma_where": plain, "speedup_p95_vs_plain": ratio(plain, cold),
                        "plain_top10_overlap_with_exact": round(float(np.mean(plain_overlap)), 3)})
        out[label] = row
        print(json.dumps({label: row}), flush=True)
    return out


# --- sizes --------------------------------------------------------------------------------------

def bench_full(n: int, base, emb, base_vecs, queries: int, plain_queries: int, noise: float,
               throughput: dict) -> dict:
    rows = bootstrap_rows(n, len(base), seed=n)
    profiles = bootstrap_profiles(base, rows)
    vecs = bootstrap_vectors(base_vecs, rows, seed=n, noise=noise)
    work = Path(tempfile.mkdtemp(prefix="vd-bench-index-"))
    try:
        idx = ProfileIndex(work, None, emb, timeout_s=30)
        t = time.perf_counter()
        idx.rebuild(profiles, embeddings=vecs)
        ingest_s = time.perf_counter() - t
        out = {"n": n, "ingest_s_precomputed_vectors": round(ingest_s, 1),
               "ingest_profiles_per_s": round(n / ingest_s, 1),
               "embedding_s_estimated": {k: round(n / v, 1) for k, v in throughput.items()}}
        print(json.dumps(out), flush=True)
        out["queries"] = query_bench(idx, profiles, vecs, emb.embed(QUERIES), queries, plain_queries)
        # Incremental: rescore 1% of customers (new text), count what gets re-embedded.
        changed = profiles.copy()
        k = max(1, n // 100)
        picked = np.random.default_rng(0).choice(n, size=k, replace=False)
        changed.loc[picked, "profile_text"] = changed.loc[picked, "profile_text"] + " Rescored."
        t = time.perf_counter()
        rep = idx.sync(changed)
        out["incremental_1pct"] = {"changed": k, "reembedded": rep.embedded, "share": round(rep.embedded / n, 4),
                                   "seconds": round(time.perf_counter() - t, 1)}
        idx.close()
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def large_index(n: int, base, emb, base_vecs, noise: float, minutes: float) -> tuple[ProfileIndex | None, dict]:
    """The n-profile index under CACHE, built (or continued) for at most `minutes`; None until complete."""
    root = CACHE / f"large-{n}-noise{noise:g}"
    root.mkdir(parents=True, exist_ok=True)
    rows = bootstrap_rows(n, len(base), seed=n)
    vec_path = root / "vectors.npy"
    if not vec_path.exists():
        np.save(root / "vectors.tmp.npy", bootstrap_vectors(base_vecs, rows, seed=n, noise=noise))
        os.replace(root / "vectors.tmp.npy", vec_path)
    vecs = np.load(vec_path, mmap_mode="r")
    state_path = root / "build.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"add_seconds": 0.0}
    idx = ProfileIndex(root / "data", None, emb, timeout_s=120, namespace="bench")
    if idx.count() == n:
        return idx, state
    # Written as ProfileIndex.rebuild does (same collection settings, metadata and column store),
    # but resumable: each run adds batches until its time is up.
    name = f"{idx.prefix}large-{n}"
    collection = idx.client.get_or_create_collection(
        name, metadata=idx.collection_meta(1, "building", {"rows": n}),
        configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    done = collection.count()
    deadline = time.monotonic() + minutes * 60
    batch = idx.write_batch
    while done < n and time.monotonic() < deadline:
        stop = min(n, done + batch)
        prepared = prepare_profiles(bootstrap_profiles(base, rows[done:stop], start=done))
        t = time.perf_counter()
        collection.add(ids=prepared.frame["customer_id"].tolist(), embeddings=np.asarray(vecs[done:stop]),
                       documents=prepared.texts, metadatas=prepared.metadatas)
        state["add_seconds"] += time.perf_counter() - t
        done = stop
        state["added"] = done
        state_path.write_text(json.dumps(state))
    print(f"large index: {done}/{n} profiles in Chroma ({state['add_seconds']:.0f}s of adds so far)", flush=True)
    if done < n:
        return None, state
    t = time.perf_counter()
    frame = prepare_profiles(base).frame.iloc[rows].reset_index(drop=True)
    frame["customer_id"] = [f"B{i:07d}" for i in range(n)]
    ColumnStore(frame, np.asarray(vecs), 1).save(idx.columns_root / name, name, emb.name, emb.dim)
    collection.modify(metadata=idx.collection_meta(1, "ready", {"rows": n}))
    idx._alias().modify(metadata={"active": name, "model": emb.name, "dim": int(emb.dim)})
    state["column_store_seconds"] = round(time.perf_counter() - t, 1)
    state_path.write_text(json.dumps(state))
    idx.close()
    return ProfileIndex(root / "data", None, emb, timeout_s=120, namespace="bench"), state


def bench_large(n: int, base, emb, base_vecs, queries: int, plain_queries: int, noise: float,
                minutes: float) -> dict | None:
    idx, state = large_index(n, base, emb, base_vecs, noise, minutes)
    if idx is None:
        print("the large index is not complete yet: run the same command again to continue", flush=True)
        return None
    idx.close()
    t = time.perf_counter()
    idx = ProfileIndex(idx.data_dir, None, emb, timeout_s=120, namespace="bench")  # a fresh open, timed
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    idx.search("warm-up", None, 10)  # the first read after opening pays for Chroma loading its segments
    first_query_s = time.perf_counter() - t
    rows = bootstrap_rows(n, len(base), seed=n)
    truth = bootstrap_profiles(base.drop(columns=["profile_text"]), rows)
    vecs = np.load(CACHE / f"large-{n}-noise{noise:g}" / "vectors.npy", mmap_mode="r")
    out = {"n": n, "chroma_add_seconds_total": round(state["add_seconds"], 1),
           "column_store_seconds": state.get("column_store_seconds"), "open_seconds": round(open_s, 1),
           "first_query_seconds": round(first_query_s, 1)}
    print(json.dumps(out), flush=True)
    if queries:
        out["queries"] = query_bench(idx, truth, vecs, emb.embed(QUERIES), queries, plain_queries)
    idx.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="profiles for a timed ingest + queries (0 to skip)")
    ap.add_argument("--n-large", type=int, default=1_000_000, help="profiles for the cached large index (0 to skip)")
    ap.add_argument("--embed-n", type=int, default=64, help="profiles for embedding throughput (0 to skip)")
    ap.add_argument("--queries", type=int, default=48, help="timed queries per filter and variant")
    ap.add_argument("--plain-queries", type=int, default=12, help="plain Chroma `where` queries at --n")
    ap.add_argument("--plain-queries-large", type=int, default=4, help="plain Chroma `where` queries at --n-large")
    ap.add_argument("--build-minutes", type=float, default=8.0, help="time for building the large index per run")
    ap.add_argument("--noise", type=float, default=0.02, help="per-dimension noise on bootstrapped vectors")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    cache = Path(tempfile.gettempdir()) / "vd-bench-embeddings"
    results: dict = {"load_average": os.getloadavg()}
    if args.embed_n:
        results["embedding_profiles_per_s"] = embed_throughput(args.embed_n, cache)
        print(json.dumps(results), flush=True)
    emb = get_embedder("minilm", cache)
    base, base_vecs = base_set(emb)
    results["bootstrap_base_customers"] = len(base)
    if args.n:
        results["full"] = bench_full(args.n, base, emb, base_vecs, args.queries, args.plain_queries, args.noise,
                                     results.get("embedding_profiles_per_s", {}))
    if args.n_large:
        results["large"] = bench_large(args.n_large, base, emb, base_vecs, args.queries, args.plain_queries_large,
                                       args.noise, args.build_minutes)
    results["load_average_end"] = os.getloadavg()
    print(json.dumps({k: results[k] for k in ("load_average", "load_average_end")}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
