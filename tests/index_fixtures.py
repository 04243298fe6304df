"""Fixtures of the profile-index tests (tests/test_index*.py), registered once in conftest.py so the MiniLM
export and the real `chroma run` server are made once per session: real Online Retail profiles, a
counting embedder over the project's MiniLM, and `make_index` for embedded Chroma and the server alike."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from predictor.search.embeddings import get_embedder
from predictor.search.index import ProfileIndex
from chroma_server import ChromaServer, real_profiles

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
