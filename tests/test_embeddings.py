"""Embedders: the ONNX export must reproduce sentence-transformers on real profile texts."""

from __future__ import annotations

import numpy as np
import pytest

from chroma_server import real_profiles
from predictor.search.embeddings import (MINILM_NAME, EmbeddingError, HashingEmbedder, chroma_embedding_function,
                                  get_embedder)


@pytest.fixture(scope="module")
def texts():
    # Both texts a profile has: the display text (once embedded, ~230 tokens, truncated at 256 when
    # longer) and the embedding text the index embeds now (~75 tokens).
    real = real_profiles(48, seed=5)
    p = real["profile_text"].tolist() + real["embedding_text"].tolist()
    # Very different lengths in one batch, so padding (and the attention mask) matters.
    return p + ["tea", "Customer from Germany.", "lunch bags " * 120]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def onnx(cache_dir):
    return get_embedder("minilm-onnx", cache_dir, threads=2)


@pytest.fixture(scope="module")
def st(cache_dir):
    return get_embedder("minilm-st", cache_dir, threads=2)


def test_onnx_matches_sentence_transformers_on_real_profiles(onnx, st, texts):
    a, b = onnx.embed(texts), st.embed(texts)
    assert a.shape == b.shape == (len(texts), 384)
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.99, cos.min()
    # Same model, so an index built with one runtime is served by the other.
    assert onnx.name == st.name == MINILM_NAME and onnx.dim == st.dim == 384


def test_padding_does_not_change_a_vector(onnx, texts):
    alone = onnx.embed(["tea"])[0]
    in_batch = onnx.embed(texts)[texts.index("tea")]  # padded to the longest text in its batch
    assert float(alone @ in_batch) > 0.9999


def test_vectors_are_normalised_float32(onnx, st, texts):
    for emb in (onnx, st, HashingEmbedder(64)):
        v = emb.embed(texts[:5])
        assert v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert onnx.embed([]).shape == (0, 384)


def test_semantics_survive_the_export(onnx, texts):
    q = onnx.embed(["buys tea sets", "buys teacups and tea pots", "industrial welding supplies"])
    assert q[0] @ q[1] > q[0] @ q[2] + 0.2


def test_export_is_cached_and_reused(onnx, cache_dir):
    path = onnx.path
    mtime = path.stat().st_mtime_ns
    from predictor.search.embeddings import OnnxMiniLMEmbedder

    again = OnnxMiniLMEmbedder(cache_dir, allow_export=False)
    assert again.path == path and path.stat().st_mtime_ns == mtime


def test_minilm_prefers_onnx(cache_dir, onnx):
    assert get_embedder("minilm", cache_dir).backend == "onnx"


def test_unknown_model_and_bad_input(cache_dir):
    with pytest.raises(EmbeddingError, match="unknown embedding model 'word2vec'.*minilm"):
        get_embedder("word2vec", cache_dir)
    with pytest.raises(EmbeddingError, match="list of texts"):
        HashingEmbedder().embed("one string")
    with pytest.raises(EmbeddingError, match="expected str"):
        HashingEmbedder().embed(["ok", 3])


def test_chroma_adapter_embeds_with_our_model(onnx):
    fn = chroma_embedding_function(onnx)
    out = fn(["gift wrap", "tea"])
    assert len(out) == 2 and len(out[0]) == 384
    np.testing.assert_allclose(np.asarray(out[1]), onnx.embed(["tea"])[0], atol=1e-6)
    assert fn.get_config() == {"model": MINILM_NAME, "dim": 384}
