"""The profile index at scale on Dask: profiles embedded per partition on the workers, and written to a
`chroma run` server through HttpClient in parallel batches; both resumable after a worker dies.

1. Embedding (`embed_profiles`): the texts the index would embed and the embedding cache does not hold
   yet (predictor/search/embedding_cache.py) are cut into partitions; each task embeds one with the
   configured model on its worker (loaded once per worker process, one thread) and writes one cache
   chunk named after the partition's keys. A rerun of a task, after its worker died, finds its chunk and
   skips it; a rerun of the whole step embeds only what no chunk holds. The build's own index step then
   reads every vector from the cache: nothing is embedded twice, nothing is embedded in the build's process.
2. Ingest (`ingest_profiles`): each task upserts one partition's ids, vectors, documents and metadata into
   a collection of the Chroma server in batches. Upserts are idempotent, so a rerun writes the same rows.

The build (`--engine dask`) runs step 1 before its index step; with a Chroma server its index step writes
the new collection through step 2 (predictor.engine.collection_writer). The column store the exact search
plans read is still written by the build's process (README, Scale).
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.atomic import atomic_path
from predictor.engine.dask_engine import DASK_PARTS_PREFIX
from predictor.search.embedding_cache import (CHUNK_PREFIX, EmbeddingCache, cache_dir, packed_keys, text_key,
                                              write_chunk)

PARTITION_TEXTS = 2_000  # ~1-2 minutes of MiniLM on one core: little is lost when a worker dies
INGEST_BATCH = 500


@dataclass(frozen=True)
class EmbedReport:
    texts: int  # distinct texts asked for
    cached: int  # already in the cache
    embedded: int  # embedded by the workers in this run
    partitions: int


# --------------------------------------------------------------------------- tasks (run on the workers)

def embed_partition(part: Path, model: str, export_dir: Path, directory: Path) -> int:
    """Embed one partition (its texts staged at `part`) into one cache chunk and return how many texts it
    holds. A rerun finds the chunk and embeds nothing, but still returns that count: the driver only stages
    texts the cache lacked when the run began, so the chunk was written in this run. Dask reruns a task
    whose worker died after it finished but before its result was fetched, and a 0 from that rerun would
    under-count the run's work."""
    from predictor.search.embeddings import get_embedder

    texts = _read_part(part)
    embedder = get_embedder(model, export_dir, threads=1)
    keys = [text_key(embedder.name, text) for text in texts]
    chunk = Path(directory) / f"{CHUNK_PREFIX}part-{hashlib.sha256(b''.join(keys)).hexdigest()[:24]}.npz"
    if chunk.exists():
        return len(texts)
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    write_chunk(chunk, packed_keys(keys), vectors)
    return len(texts)


def ingest_partition(part: Path, url: str, collection: str, timeout_s: float, batch: int = INGEST_BATCH) -> int:
    """Upsert one partition's rows (staged at `part`) into `collection` on the Chroma server at `url`,
    `batch` at a time."""
    from predictor.search.chroma import ChromaConnection

    rows = _read_part(part)
    connection = ChromaConnection(Path("."), url, timeout_s)
    try:
        target = connection.call("opening the profile collection", lambda: connection.client.get_collection(collection))
        with connection.bulk():
            for start in range(0, len(rows["ids"]), batch):
                part = slice(start, start + batch)
                connection.call("writing profiles", lambda: target.upsert(
                    ids=rows["ids"][part], embeddings=rows["vectors"][part], documents=rows["documents"][part],
                    metadatas=rows["metadatas"][part]))
    finally:
        connection.close()
    return len(rows["ids"])


def _read_part(path: Path):
    return pickle.loads(Path(path).read_bytes())  # written by _stage_parts in this run: trusted


# --------------------------------------------------------------------------- the drivers

def _run_partitions(client, task: Callable[..., int], parts: list, work_parent: Path,
                    on_partition_done: Callable[[int], None] | None, **kwargs) -> int:
    """Stage `parts` as files under `work_parent`, run `task(part_file, **kwargs)` for each on the workers and
    return the sum of what they return; the staged files go when the run ends, however it ends."""
    from distributed import as_completed

    work = Path(tempfile.mkdtemp(dir=work_parent, prefix=DASK_PARTS_PREFIX))
    total = 0
    try:
        futures = client.map(task, _stage_parts(parts, work), pure=False, **kwargs)
        for done, future in enumerate(as_completed(futures), start=1):
            total += future.result()
            if on_partition_done is not None:
                on_partition_done(done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return total


def _stage_parts(parts: list, folder: Path) -> list[Path]:
    """Each partition's input as a file the tasks read. Not scattered: scattered data dies with its worker,
    and a task rerun after that could not find its input; a file can be read again."""
    paths = []
    for number, part in enumerate(parts):
        path = folder / f"part-{number:05d}.pkl"
        with atomic_path(path) as tmp:
            tmp.write_bytes(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
        paths.append(path)
    return paths


def embed_profiles(texts: list[str], settings, client, partition_texts: int = PARTITION_TEXTS,
                   on_partition_done: Callable[[int], None] | None = None) -> EmbedReport:
    """Fill the embedding cache under `settings.data_dir` with every text in `texts`, on the workers."""
    from predictor.search.embeddings import configured_embedder

    embedder = configured_embedder(settings)  # here first: a one-time ONNX export happens once, not per worker
    directory = cache_dir(settings.data_dir, embedder.name, embedder.dim)
    cache = EmbeddingCache(directory, embedder.dim, merge_over=None)
    distinct = list(dict.fromkeys(texts))
    found = cache.has([text_key(embedder.name, text) for text in distinct])
    missing = [text for text, hit in zip(distinct, found) if not hit]
    parts = [missing[i:i + partition_texts] for i in range(0, len(missing), partition_texts)]
    embedded = _run_partitions(client, embed_partition, parts, Path(settings.data_dir), on_partition_done,
                               model=settings.embedding_model, export_dir=Path(settings.data_dir) / "embeddings",
                               directory=directory)
    return EmbedReport(texts=len(distinct), cached=int(found.sum()), embedded=embedded, partitions=len(parts))


def ingest_profiles(profiles: pd.DataFrame, vectors: np.ndarray, url: str, collection: str, client, work_dir: Path,
                    timeout_s: float = 60.0, partition_rows: int = PARTITION_TEXTS,
                    on_partition_done: Callable[[int], None] | None = None) -> int:
    """Write `profiles` (rows as the index stores them) with `vectors` into `collection` on the Chroma
    server at `url` (created with cosine space when missing), one task per partition; the partitions are
    staged under `work_dir` (a folder every worker sees) for the run."""
    from predictor.search.chroma import ChromaConnection
    from predictor.search.prepare import prepare_profiles

    prepared = prepare_profiles(profiles)
    connection = ChromaConnection(Path("."), url, timeout_s)
    try:
        connection.call("creating the profile collection", lambda: connection.client.get_or_create_collection(
            collection, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None))
    finally:
        connection.close()
    ids = prepared.frame["customer_id"].astype(str).tolist()
    parts = [{"ids": ids[i:i + partition_rows], "vectors": np.asarray(vectors[i:i + partition_rows], np.float32),
              "documents": prepared.texts[i:i + partition_rows], "metadatas": prepared.metadatas[i:i + partition_rows]}
             for i in range(0, len(ids), partition_rows)]
    return _run_partitions(client, ingest_partition, parts, Path(work_dir), on_partition_done, url=url,
                           collection=collection, timeout_s=timeout_s)
