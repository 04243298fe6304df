"""Profile embedding and Chroma-server ingest throughput on the Dask engine with 1 and 2 workers, and the
projected wall time for 10M profiles on N workers.

Profiles are real Online Retail customers' (tests/chroma_server.py's real_profiles); embedding uses the
real MiniLM model, one thread per worker; ingest upserts precomputed vectors into a real `chroma run`
server started here. Each worker count gets a fresh LocalCluster and a fresh cache / collection, so
nothing is reused between them. The 10M figures are projections from the measured throughput (linear
in profiles, which holds for embedding; Chroma's HNSW insert cost grows slowly with the collection,
so the ingest projection is a lower bound).

    .venv/bin/python bench/bench_index_dask.py --profiles 800 --ingest 20000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def load_average() -> str:
    return "load average {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(), os.cpu_count())


def embed_rate(texts: list[str], workers: int, tmp: Path) -> float:
    from predictor.engine.dask_engine import ClusterConfig, dask_client
    from predictor.engine.dask_index import embed_profiles
    from predictor.settings import Settings

    settings = Settings(data_dir=tmp / f"embed-{workers}", embedding_model="minilm", threads=1)
    from predictor.search.embeddings import configured_embedder

    configured_embedder(settings).embed(["warm-up"])  # the one-time ONNX export, outside the timing
    with dask_client(ClusterConfig(workers=workers)) as client:
        client.run(_load_model, str(settings.data_dir / "embeddings"))  # each worker loads the model once
        started = time.perf_counter()
        report = embed_profiles(texts, settings, client, partition_texts=max(1, len(texts) // (4 * workers)))
        seconds = time.perf_counter() - started
    return report.embedded / seconds


def _load_model(export_dir: str) -> None:
    from predictor.search.embeddings import get_embedder

    get_embedder("minilm", export_dir, threads=1).embed(["warm-up"])


def ingest_rate(profiles: pd.DataFrame, workers: int, url: str, work_dir: Path) -> float:
    from predictor.engine.dask_engine import ClusterConfig, dask_client
    from predictor.engine.dask_index import ingest_profiles

    vectors = np.random.default_rng(workers).normal(size=(len(profiles), 384)).astype(np.float32)
    with dask_client(ClusterConfig(workers=workers)) as client:
        started = time.perf_counter()
        written = ingest_profiles(profiles, vectors, url, f"bench-{workers}", client, work_dir, partition_rows=2_000)
        seconds = time.perf_counter() - started
    return written / seconds


def bootstrap_profiles(real: pd.DataFrame, n: int, seed: int = 7) -> pd.DataFrame:
    """n profile rows drawn from the real ones, each with a new customer id."""
    rows = real.iloc[np.random.default_rng(seed).integers(0, len(real), n)].reset_index(drop=True)
    rows["customer_id"] = [f"P{i}" for i in range(n)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=800, help="real profiles to embed per worker count")
    parser.add_argument("--ingest", type=int, default=20_000, help="profile rows to upsert per worker count")
    parser.add_argument("--target", type=int, default=10_000_000)
    args = parser.parse_args()
    from chroma_server import ChromaServer, real_profiles

    from predictor.search.prepare import prepare_profiles

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}; {load_average()}")
    real = real_profiles()
    texts = prepare_profiles(real.head(args.profiles)).embed_texts
    rows = bootstrap_profiles(real, args.ingest)
    with tempfile.TemporaryDirectory() as tmp, ChromaServer(Path(tmp) / "db") as server:
        rates = {}
        for workers in (1, 2):
            rates[workers] = (embed_rate(texts, workers, Path(tmp)), ingest_rate(rows, workers, server.url, Path(tmp)))
            embed, ingest = rates[workers]
            print(f"{workers} worker(s): embedding {embed:,.0f} profiles/s ({len(texts):,} real profiles, MiniLM); "
                  f"Chroma-server ingest {ingest:,.0f} profiles/s ({len(rows):,} rows); {load_average()}", flush=True)
    for workers in (1, 2):
        embed, ingest = rates[workers]
        print(f"{workers} worker(s) vs 1: embedding {embed / rates[1][0]:.2f}x, ingest {ingest / rates[1][1]:.2f}x")
    per_worker = rates[2][0] / 2
    for n in (2, 16, 64):
        hours = args.target / (per_worker * n) / 3600
        print(f"projected: {args.target:,} profiles embedded on {n} single-core workers in {hours:.1f} h "
              f"(measured per-worker rate {per_worker:,.0f}/s, linear)")
    print(f"projected: {args.target:,} profiles upserted at the 2-worker rate in "
          f"{args.target / rates[2][1] / 60:.0f} min (one Chroma server; a lower bound, HNSW inserts slow as it grows)")


if __name__ == "__main__":
    main()
