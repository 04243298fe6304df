"""Profile embedding benchmark: throughput, agreement with sentence-transformers, search precision.

    export VALUEDESK_DATA_DIR=/tmp/vd-embed   # a built data dir (`valuedesk build`)
    flock /tmp/cpu.lock .venv/bin/python bench/bench_embed.py [--n 4333] [--json OUT]

Reads the real built profiles (`<data_dir>/profiles.parquet`) and, for their top categories,
`<data_dir>/customers.parquet`. Prints, in one run:

* ONNX (the default runtime, as `get_embedder("minilm-onnx")` configures it) and
  sentence-transformers profiles/s on the embedding text (`embedding_text`), their ratio, and the
  min/mean cosine between the two runtimes' vectors on the same texts;
* search precision for the display text (`profile_text`, what was embedded before) and the
  embedding text: for each named category, the query "customers who mostly buy <category>" is
  ranked by exact cosine over every profile (brute force, as the index ranks up to 1M profiles),
  and precision@10 is the share of hits having that category among their top two categories.
  The base rate is the share of all customers having it in their top two.

Precision vectors are cached (keyed by the texts and model) under `<data_dir>/embeddings/bench`, so
a rerun only re-measures throughput; throughput is always measured fresh.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from predictor.data.categories import FEES, OTHER  # noqa: E402
from predictor.search.embeddings import get_embedder  # noqa: E402
from predictor.layout import current_version  # noqa: E402

K = 10
QUERY = "customers who mostly buy {}"


def load_profiles(data_dir: Path) -> pd.DataFrame:
    root = current_version(data_dir).root  # the serving build's folder
    profiles = pd.read_parquet(root / "profiles.parquet")
    if "embedding_text" not in profiles:
        sys.exit(f"{data_dir}/profiles.parquet has no embedding_text column; rebuild it with `valuedesk build`")
    cats = pd.read_parquet(root / "customers.parquet", columns=["customer_id", "top_categories"])
    cats["customer_id"] = cats["customer_id"].astype(str)
    profiles["customer_id"] = profiles["customer_id"].astype(str)
    out = profiles.merge(cats, on="customer_id", how="left")
    out["top2"] = out["top_categories"].map(lambda v: set(list(v)[:2]) if v is not None else set())
    return out


def timed_embed(embedder, texts: list[str]) -> tuple[np.ndarray, float]:
    embedder.embed(texts[:8])  # warm-up: first-call allocations are not throughput
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    return vectors, len(texts) / (time.perf_counter() - started)


def cached_vectors(embedder, texts: list[str], cache: Path) -> np.ndarray:
    key = hashlib.sha256("\x00".join([embedder.name, *texts]).encode()).hexdigest()[:24]
    path = cache / f"{key}.npy"
    if path.exists():
        return np.load(path)
    vectors = embedder.embed(texts)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def categories(profiles: pd.DataFrame) -> list[str]:
    named = {c for v in profiles["top_categories"].dropna() for c in v} - {FEES, OTHER}
    return sorted(named)


def precision(profiles: pd.DataFrame, vectors: np.ndarray, queries: np.ndarray, cats: list[str]) -> dict[str, float]:
    scores = vectors @ queries.T  # unit vectors: cosine
    out = {}
    for j, cat in enumerate(cats):
        top = np.argsort(-scores[:, j], kind="stable")[:K]
        out[cat] = float(np.mean([cat in profiles["top2"].iat[i] for i in top]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("VALUEDESK_DATA_DIR", ".valuedesk")))
    ap.add_argument("--n", type=int, default=0, help="profiles for throughput and cosine (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    profiles = load_profiles(args.data_dir)
    cache = args.data_dir / "embeddings"
    onnx = get_embedder("minilm-onnx", cache, threads=args.threads)
    st = get_embedder("minilm-st", cache, threads=args.threads)
    texts = profiles["embedding_text"].astype(str).tolist()
    sample = texts if not args.n else profiles["embedding_text"].astype(str).sample(
        n=min(args.n, len(texts)), random_state=0).tolist()
    a, onnx_rate = timed_embed(onnx, sample)
    b, st_rate = timed_embed(st, sample)
    cos = (a * b).sum(axis=1)
    report = {"profiles": len(sample), "onnx_per_s": round(onnx_rate, 1), "st_per_s": round(st_rate, 1),
              "ratio": round(onnx_rate / st_rate, 2), "cosine_min": round(float(cos.min()), 4),
              "cosine_mean": round(float(cos.mean()), 4), "load_average": os.getloadavg()}
    print(f"{len(sample)} profiles, embedding text {np.mean([len(t) for t in sample]):.0f} chars on average")
    print(f"ONNX {onnx_rate:.1f} profiles/s, sentence-transformers {st_rate:.1f} profiles/s, ratio {report['ratio']}x")
    print(f"cosine ONNX vs ST: min {cos.min():.4f}, mean {cos.mean():.4f}")

    cats = categories(profiles)
    queries = onnx.embed([QUERY.format(c) for c in cats])
    base = {c: float(profiles["top2"].map(lambda s, c=c: c in s).mean()) for c in cats}
    old = precision(profiles, cached_vectors(onnx, profiles["profile_text"].astype(str).tolist(), cache / "bench"),
                    queries, cats)
    new = precision(profiles, a if len(sample) == len(texts) else cached_vectors(onnx, texts, cache / "bench"),
                    queries, cats)
    print(f"\nprecision@{K} of '{QUERY.format('<category>')}' (hit has it among its top two categories)")
    print(f"{'category':<26}{'display text':>14}{'embedding text':>16}{'base rate':>11}")
    for c in cats:
        print(f"{c:<26}{old[c]:>14.2f}{new[c]:>16.2f}{base[c]:>11.2f}")
    avg = {k: float(np.mean(list(v.values()))) for k, v in (("old", old), ("new", new), ("base", base))}
    print(f"{'average (' + str(len(cats)) + ' categories)':<26}{avg['old']:>14.2f}{avg['new']:>16.2f}{avg['base']:>11.2f}")
    report["precision"] = {"display_text": old, "embedding_text": new, "base_rate": base, "average": avg}
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
