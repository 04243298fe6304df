"""The profile index at scale (predictor/engine/dask_index.py) on a real LocalCluster of two worker
processes: real Online Retail profiles embedded by the real MiniLM model on the workers (a worker killed
mid-run), the same vectors as in one process, resumable; written to a real `chroma run` server by
parallel upserts; and `valuedesk build --engine dask` indexing from what its workers embedded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _dask_support import killer_after, local_cluster
from chroma_server import ChromaServer, real_profiles
from predictor.engine.dask_index import embed_profiles, ingest_profiles
from predictor.search.embedding_cache import EmbeddingCache, cache_dir, text_key
from predictor.search.embeddings import configured_embedder
from predictor.search.prepare import prepare_profiles
from predictor.settings import Settings


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def profiles() -> pd.DataFrame:
    return real_profiles(80, seed=3)


def cached_vectors(settings: Settings, texts: list[str]) -> np.ndarray:
    embedder = configured_embedder(settings)
    cache = EmbeddingCache(cache_dir(settings.data_dir, embedder.name, embedder.dim), embedder.dim, merge_over=None)
    vectors, found = cache.get([text_key(embedder.name, t) for t in texts])
    assert found.all(), f"{int((~found).sum())} texts are not in the cache"
    return vectors


def test_workers_embed_the_profiles_like_one_process_and_a_rerun_embeds_nothing(profiles, cluster, tmp_path):
    settings = Settings(data_dir=tmp_path, embedding_model="minilm", threads=1)
    texts = prepare_profiles(profiles).embed_texts
    kill = killer_after(cluster[1], first_done=1)
    report = embed_profiles(texts, settings, cluster[1], partition_texts=10, on_partition_done=kill)
    assert kill.killed  # a worker died after the first partition; its partitions were rerun elsewhere
    assert report.partitions == 8 and report.cached == 0 and report.embedded == report.texts == len(set(texts))
    here = configured_embedder(settings).embed(texts)  # the same model in this process
    np.testing.assert_allclose(cached_vectors(settings, texts), here, atol=2e-5)
    again = embed_profiles(texts, settings, cluster[1], partition_texts=10)
    assert (again.embedded, again.cached, again.partitions) == (0, len(set(texts)), 0)


def test_a_rerun_partition_task_embeds_nothing_and_still_counts_its_texts(tmp_path, monkeypatch):
    """Dask reruns a finished task whose worker died before its result was fetched. The rerun finds the
    partition's chunk, embeds nothing, and reports the chunk's texts, so the run's count stays whole."""
    import pickle

    import predictor.search.embeddings as embeddings
    from predictor.engine.dask_index import embed_partition

    part = tmp_path / "part-00000.pkl"
    part.write_bytes(pickle.dumps(["a loyal customer", "a lapsed customer", "a new customer"]))
    directory = tmp_path / "cache"
    args = (part, "hashing", tmp_path / "export", directory)
    assert embed_partition(*args) == 3
    chunk, = directory.glob("chunk-part-*.npz")
    written = chunk.stat().st_mtime_ns
    name = embeddings.get_embedder("hashing", tmp_path / "export", threads=1).name

    class NoEmbedding:  # the same keys as the real model; embedding anything fails the test
        def __init__(self):
            self.name = name

        def embed(self, texts):
            raise AssertionError(f"the rerun embedded {len(texts)} texts")

    monkeypatch.setattr(embeddings, "get_embedder", lambda *args, **kwargs: NoEmbedding())
    assert embed_partition(*args) == 3
    assert [p.name for p in directory.glob("chunk-*.npz")] == [chunk.name] and chunk.stat().st_mtime_ns == written


def test_parallel_upserts_fill_a_chroma_server_and_a_rerun_changes_nothing(profiles, cluster, tmp_path):
    vectors = np.random.default_rng(0).normal(size=(len(profiles), 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with ChromaServer(tmp_path / "db") as server:
        kill = killer_after(cluster[1], first_done=1)
        written = ingest_profiles(profiles, vectors, server.url, "scale-test", cluster[1], tmp_path, partition_rows=10,
                                  on_partition_done=kill)
        assert kill.killed and written == len(profiles)
        ingest_profiles(profiles, vectors, server.url, "scale-test", cluster[1], tmp_path, partition_rows=30)  # again
        import chromadb

        client = chromadb.HttpClient(host="127.0.0.1", port=server.port)
        collection = client.get_collection("scale-test")
        assert collection.count() == len(profiles)
        hit = collection.query(query_embeddings=vectors[7:8], n_results=1, include=["documents", "metadatas"])
        assert hit["ids"][0][0] == str(profiles["customer_id"].iloc[7])
        assert hit["documents"][0][0] == prepare_profiles(profiles).texts[7]
        assert hit["metadatas"][0][0]["tier"] == profiles["tier"].iloc[7]


def test_a_dask_build_indexes_from_what_its_workers_embedded(cluster, tmp_path, monkeypatch):
    """`valuedesk build --engine dask` with the index on: the workers embed every profile (cache chunks
    named by partition), and the index step embeds nothing itself."""
    from _tiers_data import sample_csv

    from valuedesk.cli import main
    from valuedesk.config import load_settings

    monkeypatch.setenv("VALUEDESK_TRAINING_PROFILE", "fast")
    monkeypatch.setenv("VALUEDESK_EMBEDDING_MODEL", "hashing")
    monkeypatch.setenv("VALUEDESK_DATA_DIR", str(tmp_path))
    load_settings.cache_clear()
    assert main(["build", "--data", str(sample_csv()), "--quiet", "--engine", "dask", "--scheduler", cluster[0]]) == 0
    settings = Settings(data_dir=tmp_path, embedding_model="hashing")
    report = json.loads((settings.build_root / "build.json").read_text())["report"]
    n = report["customers"]
    assert n > 1000 and f"{n} profiles; 0 embedded, {n} from the embedding cache" in report["index"], report["index"]
    assert list(cache_dir(tmp_path, "hashing-384", 384).glob("chunk-part-*.npz")), "the workers wrote no cache chunk"
    profiles = pd.read_parquet(settings.build_root / "profiles.parquet")
    cached_vectors(settings, prepare_profiles(profiles).embed_texts)  # every profile's vector is in the cache


def test_a_dask_build_writes_its_collection_to_a_chroma_server_from_the_workers(cluster, tmp_path, monkeypatch):
    """`valuedesk build --engine dask` against a `chroma run` server: the collection is written by parallel
    upsert tasks on the workers, holds every profile, and serves searches."""
    from distributed import get_task_stream

    from _tiers_data import sample_csv
    from predictor.search.index import open_index
    from valuedesk.cli import main
    from valuedesk.config import load_settings

    with ChromaServer(tmp_path / "db") as server:
        for name, value in (("VALUEDESK_TRAINING_PROFILE", "fast"), ("VALUEDESK_EMBEDDING_MODEL", "hashing"),
                            ("VALUEDESK_DATA_DIR", str(tmp_path / "data")), ("VALUEDESK_CHROMA_URL", server.url)):
            monkeypatch.setenv(name, value)
        load_settings.cache_clear()
        with get_task_stream(client=cluster[1]) as stream:
            assert main(["build", "--data", str(sample_csv()), "--quiet", "--engine", "dask",
                         "--scheduler", cluster[0]]) == 0
        assert any(str(task["key"]).startswith("ingest_partition") for task in stream.data)
        settings = Settings(data_dir=tmp_path / "data", embedding_model="hashing", chroma_url=server.url)
        profiles = pd.read_parquet(settings.build_root / "profiles.parquet")
        index = open_index(settings)
        try:
            collection = index.client.get_collection(index.collection_name)
            assert collection.count() == len(profiles)
            stored = collection.get(ids=profiles["customer_id"].astype(str).tolist()[:25], include=["documents"])
            expected = dict(zip(profiles["customer_id"].astype(str), prepare_profiles(profiles).texts))
            assert {i: expected[i] for i in stored["ids"]} == dict(zip(stored["ids"], stored["documents"]))
            hits = index.search("wholesale customer buying often", limit=5)
            assert len(hits) == 5
        finally:
            index.close()
