"""What the product recommender learns about items from the whole population, as sums over customers.

Every item-level figure the recommender uses is a sum over customers (buyers, repeat buyers, customers
who bought both items of a pair), a maximum (the last purchase) or the latest line (the item's name
and category as the shop sells it now), so the `ItemStats` of disjoint groups of customers combine into the population's exactly
(`combine_item_stats`). One process computes them from all its lines; the Dask build computes them per
customer bucket and combines them (predictor/engine/dask_customers.py), then each bucket scores its own
customers against the same item model (predictor.campaigns.products.ProductRecommender).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

NAME_LINE_COLUMNS = ["timestamp", "order_id", "product_name", "category"]


@dataclass
class CustomerItems:
    """Per (customer, item): orders that bought it and the last purchase; rows and columns index into
    `customers` and `items` (both sorted)."""

    customers: pd.Index
    items: pd.Index
    pairs: pd.DataFrame  # c, i, n, last

    def binary(self) -> sp.csr_matrix:
        """customer x item: 1 where the customer bought the item."""
        return sp.csr_matrix((np.ones(len(self.pairs), np.float32), (self.pairs["c"], self.pairs["i"])),
                             shape=(len(self.customers), len(self.items)))


def customer_items(lines: pd.DataFrame, items: pd.Index | None = None) -> CustomerItems:
    """The (customer, item) pairs of purchase `lines`; `items` fixes the item index (default: theirs)."""
    customers = pd.Index(lines["customer_id"].astype(str).unique(), name="customer_id").sort_values()
    items = items if items is not None else pd.Index(lines["product_id"].astype(str).unique(),
                                                     name="product_id").sort_values()
    c_idx = customers.get_indexer(lines["customer_id"].astype(str))
    i_idx = items.get_indexer(lines["product_id"].astype(str))
    # Orders per (customer, item): a line repeated inside one order is still one purchase decision.
    order_codes = pd.factorize(lines["order_id"].astype(str))[0]
    pairs = pd.DataFrame({"c": c_idx, "i": i_idx, "o": order_codes, "t": lines["timestamp"].to_numpy()})
    per_order = pairs.drop_duplicates(["c", "i", "o"])
    grouped = per_order.groupby(["c", "i"], sort=False).agg(n=("o", "size"), last=("t", "max"))
    ci = grouped.index.to_frame(index=False)
    return CustomerItems(customers, items, pd.DataFrame({"c": ci["c"].to_numpy(), "i": ci["i"].to_numpy(),
                                                         "n": grouped["n"].to_numpy(float),
                                                         "last": grouped["last"].to_numpy()}))


@dataclass
class ItemStats:
    items: pd.Index  # product ids, sorted
    name_lines: pd.DataFrame  # per item (index = items): its latest line's NAME_LINE_COLUMNS
    buyers: np.ndarray  # customers who bought the item
    rebuyers: np.ndarray  # customers who bought it in two or more orders
    co_bought: sp.csr_matrix  # item x item: customers who bought both
    last_purchase: pd.Timestamp


def item_stats(lines: pd.DataFrame, bought: CustomerItems | None = None) -> ItemStats:
    """The item figures of these purchase lines' customers."""
    bought = bought or customer_items(lines)
    binary = bought.binary()
    n = bought.pairs["n"].to_numpy()
    columns = [c for c in NAME_LINE_COLUMNS if c in lines]
    # The latest line of each item (timestamp, then order id; within an order, its first line), so names
    # and categories are the ones in use now, whichever customers a group of lines holds.
    latest = (lines.assign(_item=lines["product_id"].astype(str), _order=lines["order_id"].astype(str))
             .sort_values(["timestamp", "_order"], ascending=False, kind="stable").drop_duplicates("_item")
             .set_index("_item")[columns].reindex(bought.items))
    return ItemStats(items=bought.items, name_lines=latest,
                     buyers=np.bincount(bought.pairs["i"], minlength=len(bought.items)).astype(np.int64),
                     rebuyers=np.bincount(bought.pairs["i"][n >= 2], minlength=len(bought.items)).astype(np.int64),
                     co_bought=(binary.T @ binary).tocsr(), last_purchase=pd.Timestamp(lines["timestamp"].max()))


def combine_item_stats(parts: list[ItemStats]) -> ItemStats:
    """The item figures of the union of disjoint customer groups."""
    items = pd.Index(sorted(set().union(*(p.items for p in parts))), name="product_id")
    n = len(items)
    buyers, rebuyers = np.zeros(n, np.int64), np.zeros(n, np.int64)
    co_bought = sp.csr_matrix((n, n), dtype=np.float32)
    candidates = []
    for part in parts:
        at = items.get_indexer(part.items)
        buyers[at] += part.buyers
        rebuyers[at] += part.rebuyers
        coo = part.co_bought.tocoo()
        co_bought = co_bought + sp.csr_matrix((coo.data, (at[coo.row], at[coo.col])), shape=(n, n))
        candidates.append(part.name_lines.assign(_order=part.name_lines["order_id"].astype(str)))
    latest = (pd.concat(candidates).rename_axis("_item").reset_index()
             .sort_values(["timestamp", "_order"], ascending=False, kind="stable").drop_duplicates("_item")
             .set_index("_item").drop(columns="_order").reindex(items))
    return ItemStats(items=items, name_lines=latest, buyers=buyers, rebuyers=rebuyers, co_bought=co_bought.tocsr(),
                     last_purchase=max(p.last_purchase for p in parts))
