"""Product-text features: what each customer buys, as a few numbers the value and churn models can use.

Every distinct product name is embedded once with the project's MiniLM model (the index's embedder,
ONNX runtime by default), each customer becomes the spend-weighted mean of the names they bought, and
a PCA fitted on those customer vectors at the training end reduces them to `dims` columns.

Spend weights, not quantities: Online Retail's wholesale buyers order cheap items by the gross (144
pencils, 480 paper cups), so quantity weights would describe a customer by their cheapest lines;
spend says where their money goes, which is what the value model predicts.

Point in time like every other feature: the PCA sees only lines before the training end, and
`transform(history, cutoff)` reads only lines before the end of the cutoff day (the same edge as
predictor.model.features.compute_features; labels start the day after). The PCA projection is
linear, so projecting each name once and averaging the projections gives exactly the projection of
the mean vector; every cutoff then costs one sparse product.

An ablation option (TrainingConfig.text_feature_dims); bench/bench_text_features.py measures it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.decomposition import PCA

from predictor.errors import ValueDeskError
from predictor.model.features import CustomerHistory, day_start

NAME_COLUMN = "product_name"
# Where the MiniLM ONNX export is cached when no embedder is passed: CLVModel builds this class from its
# config alone (no settings), and a shared temp folder keeps the one-off export out of any data dir.
DEFAULT_EMBEDDING_CACHE = Path(tempfile.gettempdir()) / "valuedesk-text-features" / "embeddings"
# Name vectors by (model, name), shared by every fit in the process: a rolling evaluation fits one
# model per split and would otherwise embed the same ~4,000 names again each time.
_NAME_VECTORS: dict[tuple[str, str], np.ndarray] = {}


class NoProductNamesError(ValueDeskError):
    """The history carries no product names, so product-text features cannot be built."""


def default_embedder():
    """The index's default model (MiniLM, ONNX runtime when it can be exported, else sentence-transformers)."""
    from predictor.search.embeddings import DEFAULT_THREADS, get_embedder

    return get_embedder("minilm", DEFAULT_EMBEDDING_CACHE, threads=DEFAULT_THREADS)


def attach_product_names(history: CustomerHistory, transactions: pd.DataFrame) -> CustomerHistory:
    """`history` with `product_name` carried into its lines, aligned on the transactions' row index.

    predictor.model.scoring.history_from_transactions rebuilds the lines of logs with a country column
    and keeps product ids but not names; this puts the names back without touching that module."""
    if history.lines is None or NAME_COLUMN not in transactions or NAME_COLUMN in history.lines:
        return history
    names = transactions[NAME_COLUMN].reindex(history.lines.index)
    return CustomerHistory(orders=history.orders, lines=history.lines.assign(**{NAME_COLUMN: names}),
                           data_start=history.data_start)


def named_purchases(history: CustomerHistory, cutoff) -> pd.DataFrame:
    """Purchase lines (positive amount, a product name) known at the end of the `cutoff` day."""
    lines = history.lines
    if lines is None or NAME_COLUMN not in lines or not lines[NAME_COLUMN].notna().any():
        raise NoProductNamesError(
            "The data has no product names (its lines carry no 'product_name' column, as in CDNOW's log of "
            "customer, date, number of CDs and dollars), so product-text features cannot be built; expected a "
            "log that names its products (e.g. Online Retail's Description, with attach_product_names) or "
            "text_feature_dims=0.")
    edge = day_start(cutoff) + pd.Timedelta(days=1)
    keep = (lines["timestamp"] < edge) & (lines["amount"] > 0) & lines[NAME_COLUMN].notna()
    return lines.loc[keep, ["customer_id", "amount", NAME_COLUMN]]


class ProductTextFeatures:
    """fit(history, end) once; transform(history, cutoff) at every cutoff; columns text_0..text_{dims-1}."""

    def __init__(self, dims: int, random_seed: int = 42, embedder=None):
        if dims < 1:
            raise ValueError(f"dims must be at least 1, got {dims}")
        self.dims, self.random_seed = int(dims), random_seed
        self._embedder = embedder
        self.names: list[str] = []  # every name embedded so far, in row order of the matrices below
        self._name_row: dict[str, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)  # names x embedding dim
        self._projected = np.zeros((0, self.dims))  # names x dims, after the PCA is fitted
        self.pca: PCA | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"text_{i}" for i in range(self.dims))

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    def fit(self, history: CustomerHistory, end) -> "ProductTextFeatures":
        """Embed the names bought before the end of the `end` day and fit the PCA on customer vectors."""
        lines = named_purchases(history, end)
        weights, customers = self._weights(lines)
        vectors = np.asarray(weights @ self._vectors, dtype=np.float64)
        if min(vectors.shape) < self.dims:
            raise ValueDeskError(f"{len(customers)} customers and {self._vectors.shape[1]} embedding dimensions "
                                 f"cannot give {self.dims} text features; expected fewer dims or more data.")
        self.pca = PCA(n_components=self.dims, random_state=self.random_seed).fit(vectors)
        self._projected = self.pca.transform(self._vectors.astype(np.float64))
        return self

    def transform(self, history: CustomerHistory, cutoff) -> pd.DataFrame:
        """Each customer's spend-weighted mean name vector, projected; only customers with a named purchase."""
        if self.pca is None:
            raise ValueDeskError("ProductTextFeatures.transform needs fit() first.")
        lines = named_purchases(history, cutoff)
        weights, customers = self._weights(lines)
        values = np.asarray(weights @ self._projected) if len(customers) else np.zeros((0, self.dims))
        return pd.DataFrame(values, index=pd.Index(customers, name="customer_id", dtype="string"),
                            columns=list(self.columns))

    def _weights(self, lines: pd.DataFrame) -> tuple[sparse.csr_matrix, pd.Index]:
        """Customers x names matrix of spend shares (rows sum to 1), embedding any name not seen yet."""
        customer_codes, customers = pd.factorize(lines["customer_id"], sort=True)
        names = lines[NAME_COLUMN].astype("string")
        self._embed_new(names.unique())
        name_codes = names.map(self._name_row).to_numpy(np.int64)
        spend = sparse.csr_matrix((lines["amount"].to_numpy(float), (customer_codes, name_codes)),
                                  shape=(len(customers), len(self.names)))
        totals = np.asarray(spend.sum(axis=1)).ravel()
        shares = sparse.diags(1.0 / np.maximum(totals, 1e-12)) @ spend
        return shares.tocsr(), customers

    def _embed_new(self, names) -> None:
        """Add vectors (and, once fitted, projections) of names not embedded yet, reusing the process cache."""
        new = [str(n) for n in names if str(n) not in self._name_row]
        if not new:
            return
        model = self.embedder.name
        todo = [n for n in new if (model, n) not in _NAME_VECTORS]
        if todo:
            for name, vector in zip(todo, self.embedder.embed(todo)):
                _NAME_VECTORS[(model, name)] = vector
        added = np.stack([_NAME_VECTORS[(model, n)] for n in new])
        self._vectors = added if not len(self.names) else np.vstack([self._vectors, added])
        for name in new:
            self._name_row[name] = len(self.names)
            self.names.append(name)
        if self.pca is not None:
            self._projected = np.vstack([self._projected, self.pca.transform(added.astype(np.float64))])
