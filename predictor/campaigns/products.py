"""Personalised product suggestions from real baskets, and their honest evaluation on a later period.

A customer's score for an item blends four signals, each scaled to [0, 1] per customer so the weights
mean the same thing for a one-order customer and for a wholesaler with 300 orders:

* co-purchase: item-to-item cosine similarity over the customer x item matrix (who bought what);
* own history: how often and how recently the customer bought the item themselves, for items the data
  shows people rebuy (a wholesale shop's best predictor of next month's basket is last month's);
* category affinity: the customer's share of purchases in each category times the item's popularity
  inside that category (the data's categories, else predictor.data.categories' keyword rules on names);
* popularity: a small prior so sparse histories still get sensible lists.

Items bought in the last ``recent_days`` are excluded unless they are repeat-purchase items, defined by
the data: at least ``repeat_share`` of the item's buyers bought it in two or more orders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, Field

from predictor.campaigns.item_stats import CustomerItems, ItemStats, customer_items, item_stats
from predictor.data.categories import categorize_name
from predictor.errors import EvaluationWindowError, ValueDeskError


class RecommendationError(ValueDeskError):
    """The recommender was used before fitting or given transactions it cannot use."""


def name_category(product_name: object) -> str:
    """The category a product name falls in (predictor.data.categories' keyword rules); kept for callers by name."""
    return categorize_name(product_name)


@dataclass(frozen=True)
class RecommenderWeights:
    co_purchase: float = 1.0
    own_history: float = 1.0
    category: float = 0.3
    popularity: float = 0.1


def purchase_lines(transactions: pd.DataFrame, cutoff: pd.Timestamp | None) -> pd.DataFrame:
    """The lines the recommender learns from: itemised purchases (no cancellations or outliers) up to `cutoff`."""
    missing = {"customer_id", "order_id", "timestamp", "product_id"} - set(transactions.columns)
    if missing:
        raise RecommendationError(
            f"Transactions lack the columns {sorted(missing)} needed for product suggestions; "
            "load them with predictor.data.load.load_transactions so product_id is present.")
    lines = transactions
    keep = lines["product_id"].notna()
    if "is_cancellation" in lines:
        keep &= ~lines["is_cancellation"].astype(bool)
    if "is_outlier" in lines:
        keep &= ~lines["is_outlier"].astype(bool)
    if "amount" in lines:
        keep &= lines["amount"] > 0
    if cutoff is not None:
        keep &= lines["timestamp"] <= cutoff
    cols = [c for c in ("customer_id", "order_id", "timestamp", "product_id", "product_name", "category")
            if c in lines]
    return lines.loc[keep, cols]


def _end_of_day(cutoff: str | pd.Timestamp) -> pd.Timestamp:
    """A date cutoff includes that whole day, as the predictor's evaluation does."""
    ts = pd.Timestamp(cutoff)
    if ts == ts.normalize():
        ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return ts


class ProductRecommender:
    """Fit on transactions up to a cutoff; suggest ``k`` products per customer in batch."""

    def __init__(self, *, recent_days: int = 30, repeat_share: float = 0.1, min_buyers: int = 3,
                 neighbours: int = 300, weights: RecommenderWeights | None = None, batch_size: int = 2048):
        if not 0 < repeat_share <= 1:
            raise RecommendationError(f"repeat_share must be in (0, 1], got {repeat_share}")
        self.recent_days = recent_days
        self.repeat_share = repeat_share
        self.min_buyers = min_buyers
        self.neighbours = neighbours
        self.weights = weights or RecommenderWeights()
        self.batch_size = batch_size
        self._fitted = False

    # ------------------------------------------------------------------ fitting
    def fit(self, transactions: pd.DataFrame, cutoff: str | pd.Timestamp | None = None) -> ProductRecommender:
        end = _end_of_day(cutoff) if cutoff is not None else None
        lines = purchase_lines(transactions, end)
        if lines.empty:
            raise RecommendationError("No purchase lines with a product_id on or before the cutoff; "
                                      "product suggestions need itemised orders.")
        bought = customer_items(lines)
        return self.fit_items(item_stats(lines, bought), end).fit_customers(lines, bought)

    def fit_items(self, stats: ItemStats, end: pd.Timestamp | None = None) -> ProductRecommender:
        """The population part: repeat items, item neighbours, categories, popularity (from `stats` of
        all customers: predictor.campaigns.item_stats). Suggesting still needs `fit_customers`."""
        self.as_of = stats.last_purchase if end is None else end
        items, buyers = stats.items, stats.buyers
        with np.errstate(invalid="ignore", divide="ignore"):
            repeat_rate = np.where(buyers >= self.min_buyers, stats.rebuyers / np.maximum(buyers, 1), 0.0)
        self.repeat_rate = pd.Series(repeat_rate, index=items)
        self._is_repeat = repeat_rate >= self.repeat_share
        # Cosine over binary "bought it" vectors (counts would let wholesalers dominate), keeping each
        # item's top `neighbours`: on Online Retail the full matrix is 60% dense, scoring with it is ~5x
        # slower, and pruning to 300 cost 0.003 hit rate on the validation cutoff (2011-06-09).
        self._sim = self._item_neighbours(stats.co_bought, buyers)
        self.items = items
        self.categories = self._fit_categories(stats.name_lines, items, buyers)
        self._fitted_items, self._fitted = True, False
        return self

    def fit_customers(self, lines: pd.DataFrame, bought: CustomerItems | None = None) -> ProductRecommender:
        """The customer part, for the customers of purchase `lines` (all of them, or one bucket's)."""
        if not getattr(self, "_fitted_items", False):
            raise RecommendationError("fit_customers needs the item model first (fit_items or fit).")
        bought = bought if bought is not None and bought.items.equals(self.items) else customer_items(lines, self.items)
        pairs, n_c, n_i = bought.pairs, len(bought.customers), len(self.items)
        days_since = ((self.as_of - pd.to_datetime(pairs["last"])).dt.total_seconds() / 86400.0).to_numpy()
        # Own history: orders of the item, decayed by how long ago the last one was (half-life 90 days).
        decay = np.power(0.5, days_since / 90.0)
        own = sp.csr_matrix((np.log1p(pairs["n"].to_numpy(float)) * decay, (pairs["c"], pairs["i"])), shape=(n_c, n_i))
        self._own = own.astype(np.float32)
        self._binary = bought.binary().tocsr()
        recent = days_since <= self.recent_days
        self._recent = sp.csr_matrix((np.ones(int(recent.sum()), dtype=bool),
                                      (pairs["c"].to_numpy()[recent], pairs["i"].to_numpy()[recent])), shape=(n_c, n_i))
        cust_cat = (self._binary @ self._item_cat).tocsr()
        row_sums = np.asarray(cust_cat.sum(axis=1)).ravel()
        row_sums[row_sums == 0] = 1.0
        self._cust_cat = (sp.diags(1.0 / row_sums) @ cust_cat).astype(np.float32).tocsr()
        self.customers = bought.customers
        self._fitted = True
        return self

    def _fit_categories(self, name_lines: pd.DataFrame, items: pd.Index, buyers: np.ndarray) -> pd.Index:
        """Each item's name and category (from its latest line), the within-category popularity; returns
        the categories."""
        n_i = len(items)
        # Categories: the data's own when present, otherwise a product type read from the name.
        names = name_lines["product_name"] if "product_name" in name_lines else pd.Series(pd.NA, index=items)
        self.product_names = names.astype(object).where(names.notna(), pd.Series(items, index=items))
        has_category = "category" in name_lines and name_lines["category"].notna().any()
        if has_category:
            category = name_lines["category"].astype(object).fillna("OTHER").astype(str)
            self.category_source = "data"
        else:
            category = pd.Series([categorize_name(n, p) for p, n in zip(items, names.astype(object))], index=items)
            self.category_source = "keyword rules on product names (predictor.data.categories)"
        self.item_category = category
        cats = pd.Index(category.unique()).sort_values()
        cat_of_item = cats.get_indexer(category.to_numpy())
        self._item_cat = sp.csr_matrix((np.ones(n_i, np.float32), (np.arange(n_i), cat_of_item)), shape=(n_i, len(cats)))
        # Within-category popularity, scaled so the best seller of each category scores 1.
        pop = buyers.astype(np.float32)
        cat_max = np.zeros(len(cats), np.float32)
        np.maximum.at(cat_max, cat_of_item, pop)
        within = pop / np.maximum(cat_max[cat_of_item], 1.0)
        self._cat_item = sp.csr_matrix((within, (cat_of_item, np.arange(n_i))), shape=(len(cats), n_i))
        self._popularity = (pop / max(pop.max(), 1.0)).astype(np.float32)
        self._popular_order = np.argsort(-pop, kind="stable")
        return cats

    def _item_neighbours(self, co_bought: sp.csr_matrix, buyers: np.ndarray) -> sp.csr_matrix:
        n_i = co_bought.shape[1]
        norms = np.sqrt(np.maximum(buyers, 1).astype(np.float32))
        keep = min(self.neighbours, n_i - 1)
        rows, cols, vals = [], [], []
        if keep > 0:
            step = max(1, 2_000_000 // max(n_i, 1))
            for start in range(0, n_i, step):
                stop = min(start + step, n_i)
                block = co_bought[start:stop].toarray().astype(np.float32)
                block /= norms[start:stop, None] * norms[None, :]
                block[np.arange(stop - start), np.arange(start, stop)] = 0.0
                top = np.argpartition(-block, keep - 1, axis=1)[:, :keep]
                v = np.take_along_axis(block, top, axis=1)
                ok = v > 0
                rows.append(np.repeat(np.arange(start, stop), keep)[ok.ravel()])
                cols.append(top[ok])
                vals.append(v[ok])
        cat = (lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt))
        return sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))),
                             shape=(n_i, n_i), dtype=np.float32)

    # ------------------------------------------------------------------ scoring
    def _check(self) -> None:
        if not self._fitted:
            raise RecommendationError("ProductRecommender.recommend called before fit(); fit it on transactions first.")

    @staticmethod
    def _row_scale(block: np.ndarray) -> np.ndarray:
        top = block.max(axis=1, keepdims=True)
        top[top <= 0] = 1.0
        return block / top

    def _score_block(self, rows: np.ndarray) -> np.ndarray:
        w = self.weights
        own = self._own[rows]
        scores = w.co_purchase * self._row_scale((self._binary[rows] @ self._sim).toarray())
        own_dense = own.toarray()
        own_dense[:, ~self._is_repeat] = 0.0
        scores += w.own_history * self._row_scale(own_dense)
        scores += w.category * self._row_scale((self._cust_cat[rows] @ self._cat_item).toarray())
        scores += w.popularity * self._popularity[None, :]
        # Recently bought one-off items are not suggested again.
        recent = self._recent[rows].toarray() & ~self._is_repeat[None, :]
        scores[recent] = -np.inf
        return scores

    def recommend(self, customer_ids: Iterable[object], k: int = 10, *, names: bool = False) -> dict[str, list[str]]:
        """Top-``k`` product ids (or names) per customer; unknown customers get the best sellers."""
        self._check()
        if k < 1:
            raise RecommendationError(f"k must be at least 1, got {k}")
        ids = [str(c) for c in customer_ids]
        rows = self.customers.get_indexer(ids)
        out: dict[str, list[str]] = {}
        label = self.product_names if names else pd.Series(self.items, index=self.items)
        labels = label.to_numpy()
        popular = [str(x) for x in labels[self._popular_order[:k]]]
        known = np.flatnonzero(rows >= 0)
        for cid in (ids[j] for j in np.flatnonzero(rows < 0)):
            out[cid] = list(popular)
        kk = min(k, len(self.items))
        for start in range(0, len(known), self.batch_size):
            sel = known[start:start + self.batch_size]
            scores = self._score_block(rows[sel])
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            order = np.take_along_axis(scores, top, axis=1)
            top = np.take_along_axis(top, np.argsort(-order, axis=1, kind="stable"), axis=1)
            finite = np.isfinite(np.take_along_axis(scores, top, axis=1))
            for j, row_top, row_ok in zip(sel, top, finite):
                out[ids[j]] = [str(x) for x in labels[row_top[row_ok]]]
        return out

    def popular(self, k: int = 10) -> list[str]:
        self._check()
        return [str(x) for x in self.items[self._popular_order[:k]]]


# ---------------------------------------------------------------------- evaluation
class RecommendationMetrics(BaseModel):
    hit_rate: float = Field(description="Share of customers with at least one top-k item bought in the horizon.")
    recall: float = Field(description="Mean share of each customer's horizon items found in their top-k.")
    precision: float = Field(description="Mean share of the top-k that was bought in the horizon.")


class RecommendationEvaluation(BaseModel):
    cutoff: str
    horizon_days: int
    k: int
    customers: int = Field(description="Customers with purchases both before the cutoff and in the horizon.")
    model: RecommendationMetrics
    popular: RecommendationMetrics
    repeat_items: int
    items: int
    category_source: str
    fit_seconds: float
    recommend_seconds: float


def _metrics(lists: Mapping[str, Sequence[str]], truth: Mapping[str, set[str]], k: int) -> RecommendationMetrics:
    hits, recalls, precisions = [], [], []
    for cid, bought in truth.items():
        got = set(lists.get(cid, [])[:k])
        n = len(got & bought)
        hits.append(n > 0)
        recalls.append(n / len(bought))
        precisions.append(n / k)
    return RecommendationMetrics(hit_rate=float(np.mean(hits)), recall=float(np.mean(recalls)),
                                 precision=float(np.mean(precisions)))


def evaluate_recommendations(transactions: pd.DataFrame, cutoff: str | pd.Timestamp, horizon_days: int,
                             k: int = 10, recommender: ProductRecommender | None = None) -> RecommendationEvaluation:
    """Hit rate and recall@k of next-period purchases, against the most-popular list, on the same customers.

    Fits only on lines on or before the cutoff; the population is every customer who bought something
    both before the cutoff and within ``horizon_days`` after it.
    """
    import time

    end = _end_of_day(cutoff)
    lines = purchase_lines(transactions, None)
    if lines.empty:
        raise RecommendationError("No itemised purchase lines to evaluate on.")
    first, last = lines["timestamp"].min(), lines["timestamp"].max()
    if not first < end < last:
        raise EvaluationWindowError(f"Cutoff {pd.Timestamp(cutoff).date()} is outside the data "
                                    f"({first.date()} .. {last.date()}); pick a date inside it.")
    horizon_end = end + pd.Timedelta(days=horizon_days)
    if horizon_end > last + pd.Timedelta(days=1):
        raise EvaluationWindowError(
            f"The {horizon_days}-day horizon after {pd.Timestamp(cutoff).date()} runs past the data's end "
            f"({last.date()}); use a horizon of at most {(last - end).days} days or an earlier cutoff.")
    rec = recommender or ProductRecommender()
    t0 = time.perf_counter()
    rec.fit(transactions, end)
    fit_s = time.perf_counter() - t0
    future = lines[(lines["timestamp"] > end) & (lines["timestamp"] <= horizon_end)]
    future = future[future["customer_id"].astype(str).isin(set(rec.customers))]
    truth = {str(c): set(g.astype(str)) for c, g in future.groupby("customer_id", observed=True)["product_id"]}
    t0 = time.perf_counter()
    lists = rec.recommend(list(truth), k=k)
    rec_s = time.perf_counter() - t0
    popular = rec.popular(k)
    return RecommendationEvaluation(
        cutoff=str(pd.Timestamp(cutoff).date()), horizon_days=horizon_days, k=k, customers=len(truth),
        model=_metrics(lists, truth, k), popular=_metrics({c: popular for c in truth}, truth, k),
        repeat_items=int(rec._is_repeat.sum()), items=len(rec.items), category_source=rec.category_source,
        fit_seconds=round(fit_s, 3), recommend_seconds=round(rec_s, 3))


def suggest_products(transactions: pd.DataFrame, customer_ids: Iterable[object] | None = None, k: int = 10,
                     *, names: bool = True, recommender: ProductRecommender | None = None) -> pd.DataFrame:
    """``customer_id, suggested_products`` for the customers table (names by default, as marketers read them)."""
    rec = recommender if recommender is not None and recommender._fitted else (recommender or ProductRecommender()).fit(transactions)
    ids = list(rec.customers) if customer_ids is None else [str(c) for c in customer_ids]
    lists = rec.recommend(ids, k=k, names=names)
    return pd.DataFrame({"customer_id": pd.array(ids, dtype="string"),
                         "suggested_products": [lists[c] for c in ids]})
