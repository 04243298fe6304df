"""Profiles as the index stores them: the rows to write (ids, hashes, metadata, the texts shown and
the texts embedded), Chroma's scalar metadata, and how a hit is shown back (query checks, snippets)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from predictor.customers.audience import FILTER_FIELDS
from predictor.customers.audience_engine import NAT, to_ns
from predictor.search.errors import ProfileIndexError, QueryError

MAX_QUERY_CHARS = 1000
SNIPPET_CHARS = 240


class Hit(BaseModel):
    customer_id: str
    score: float = Field(description="Cosine similarity of the profile to the query (-1..1).")
    snippet: str = Field(description="Start of the profile text (customer data, never instructions).")
    metadata: dict[str, Any]


class SyncReport(BaseModel):
    mode: str = Field(description="'incremental' or 'full'")
    collection: str
    total: int
    added: int = 0
    reembedded: int = 0
    metadata_updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    embedded: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        if self.mode == "staged":
            return (f"profile index (new collection for this build): {self.total} profiles; {self.embedded} "
                    f"embedded, {self.total - self.embedded} from the embedding cache ({self.seconds:.1f}s)")
        return (f"profile index ({self.mode}): {self.total} profiles; {self.added} added, "
                f"{self.reembedded} re-embedded, {self.metadata_updated} metadata-only, "
                f"{self.deleted} deleted, {self.unchanged} unchanged ({self.seconds:.1f}s)")



_RESERVED = {"customer_id", "text", "profile_text", "embedding_text", "content_hash", "text_hash", "meta_hash"}
_COLUMN_ALIASES = {"rfm_segment": "segment"}


@dataclass
class PreparedProfiles:
    frame: pd.DataFrame  # customer_id, content_hash, meta_hash + metadata columns
    texts: list[str]  # display text: the Chroma document
    metadatas: list[dict[str, Any]]
    embed_texts: list[str]  # what the vector is computed from (the display text for old profiles)


def prepare_profiles(profiles: pd.DataFrame) -> PreparedProfiles:
    if not isinstance(profiles, pd.DataFrame):
        raise ProfileIndexError(f"profiles must be a DataFrame, got {type(profiles).__name__}")
    text_col = "profile_text" if "profile_text" in profiles.columns else "text"
    missing = {"customer_id", text_col} - set(profiles.columns)
    if missing:
        raise ProfileIndexError(f"profiles are missing column(s) {sorted(missing)}; expected customer_id, "
                                "profile_text, content_hash and metadata columns")
    df = profiles.reset_index(drop=True).rename(
        columns={k: v for k, v in _COLUMN_ALIASES.items() if k in profiles.columns and v not in profiles.columns})
    ids = df["customer_id"].astype("string")
    if ids.isna().any():
        raise ProfileIndexError(f"{int(ids.isna().sum())} profile(s) have no customer_id")
    dupes = ids[ids.duplicated()]
    if len(dupes):
        raise ProfileIndexError(f"duplicate customer_id in profiles, e.g. {dupes.iloc[0]!r}")
    texts = df[text_col].fillna("").astype(str).tolist()
    # Vectors come from the score-free embedding text, so a rescore with unchanged purchases
    # re-embeds nothing; profiles written before that column existed embed their display text.
    embed_col = "embedding_text" if "embedding_text" in df.columns else text_col
    embed_texts = df[embed_col].fillna("").astype(str).tolist()
    # Re-embedding is decided on the embedded text alone: a metadata-only change (the profiles'
    # own content_hash covers both) just rewrites metadata, which costs no model time.
    text_hash = pd.Series([hashlib.sha256(t.encode()).hexdigest()[:20] for t in embed_texts])
    content_hash = df["content_hash"].astype(str) if "content_hash" in df else text_hash
    meta_cols = [c for c in df.columns if c not in _RESERVED]
    meta = pd.DataFrame(index=df.index)
    for c in meta_cols:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            meta[c] = s
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            meta[c] = s
        else:
            # Lists (top categories, drivers) become readable text: Chroma metadata is scalar.
            meta[c] = s.map(lambda v: "; ".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray))
                            else (None if pd.isna(v) else str(v))).astype(object)
    for name, (columns, kind) in FILTER_FIELDS.items():
        column = columns[-1]  # the profiles' name for the field
        if kind == "date" and column in meta:
            meta[column] = pd.to_datetime(meta[column], errors="coerce")
    # The display text is not covered by text_hash any more: hashing it with the metadata sends
    # a changed display text (new scores) down the metadata-update path, without re-embedding.
    hashed = meta.astype(str).assign(**{"\0document": texts})
    meta_hash = pd.util.hash_pandas_object(hashed, index=False).to_numpy(np.uint64)
    frame = pd.concat([pd.DataFrame({"customer_id": ids.astype(str).to_numpy(), "text_hash": text_hash.to_numpy(),
                                     "content_hash": content_hash.to_numpy(), "meta_hash": meta_hash}), meta], axis=1)
    return PreparedProfiles(frame=frame, texts=texts, metadatas=_chroma_metadatas(meta, text_hash, content_hash),
                     embed_texts=embed_texts)


def _chroma_metadatas(meta: pd.DataFrame, text_hash: pd.Series, content_hash: pd.Series) -> list[dict[str, Any]]:
    columns: dict[str, list[Any]] = {}
    for c in meta.columns:
        s = meta[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            columns[c] = [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in s]
            # A sortable integer twin so plain Chroma `where` can compare dates too.
            ns = to_ns(s)
            columns[c + "_ns"] = [None if v == NAT else int(v) for v in ns]
        elif pd.api.types.is_bool_dtype(s):
            columns[c] = [None if pd.isna(v) else bool(v) for v in s]
        elif pd.api.types.is_integer_dtype(s):
            columns[c] = [None if pd.isna(v) else int(v) for v in s]
        elif pd.api.types.is_numeric_dtype(s):
            columns[c] = [None if pd.isna(v) else float(v) for v in s]
        else:
            columns[c] = s.tolist()
    columns["text_hash"] = text_hash.astype(str).tolist()
    columns["content_hash"] = content_hash.astype(str).tolist()
    keys = list(columns)
    rows = zip(*(columns[k] for k in keys))
    # Chroma rejects None values: absent fields are simply left out.
    return [{k: v for k, v in zip(keys, row) if v is not None} for row in rows]


def check_query(query: Any) -> str:
    """The query with whitespace collapsed, or a QueryError saying what is wrong with it."""
    if not isinstance(query, str):
        raise QueryError(f"query must be text, got {type(query).__name__}")
    text = " ".join(query.split())
    if not text:
        raise QueryError("query is empty; describe the customers to find, e.g. 'buys vintage tea sets'")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query is {len(text)} characters; the limit is {MAX_QUERY_CHARS}")
    return text


def hit_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """A profile's metadata as search hits show it (no integer date twins, no hashes)."""
    return {k: v for k, v in meta.items() if not k.endswith("_ns") and k != "text_hash"}


def snippet(text: str | None) -> str:
    text = " ".join((text or "").split())
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text.rfind(" ", 0, SNIPPET_CHARS)
    return text[: cut if cut > SNIPPET_CHARS // 2 else SNIPPET_CHARS] + "…"

