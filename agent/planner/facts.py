"""What the planner needs to know about the data, behind one small interface.

The planner's stages read countries, the as-of date, customer ids, the tiers, lifecycle stages and RFM
segments the data has, its product categories and the words of its product names from a
`PlannerFacts`, never from the tools' internals: a test can hand it fixed facts (`StaticFacts`), and
the tool registry's build is read in one place (`RegistryFacts`), so a change to how the tools hold
their tables touches this module only. Entity values in a question are resolved against these values
(agent.planner.entities), so a shop with other countries or categories needs no planner change.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from predictor.campaigns.allocation import MAX_BUDGET
from predictor.customers.audience import LIFECYCLE_STAGES, RFM_SEGMENTS, TIERS

log = logging.getLogger(__name__)


class PlannerFacts(Protocol):
    """The data facts the planner's stages read."""

    currency_symbol: str
    max_budget: float  # the largest campaign budget the campaign planner accepts
    tiers: tuple[str, ...]  # best first ("Platinum", "Gold", ...)
    lifecycle_stages: tuple[str, ...]
    segments: tuple[str, ...]  # RFM segment names

    def countries(self) -> list[str]:
        """The countries of the customers table, sorted; empty when there is no table."""

    def as_of(self) -> datetime | None:
        """The date the scores are as of (the latest order when the table has no as-of column)."""

    def is_customer_id(self, token: str) -> bool:
        """Whether the token is the id of a customer in the table."""

    def categories(self) -> list[str]:
        """The product categories customers buy from (their top categories), sorted; may be empty."""

    def product_terms(self) -> frozenset[str]:
        """The words of the data's product names and categories (lower case, singular and plural)."""


@dataclass
class StaticFacts:
    """Fixed facts, for tests and tools that plan without a build."""

    country_names: tuple[str, ...] = ()
    as_of_date: datetime | None = None
    customer_ids: frozenset[str] = frozenset()
    currency_symbol: str = "£"
    max_budget: float = MAX_BUDGET
    tiers: tuple[str, ...] = tuple(TIERS)
    lifecycle_stages: tuple[str, ...] = tuple(LIFECYCLE_STAGES)
    segments: tuple[str, ...] = tuple(RFM_SEGMENTS)
    category_names: tuple[str, ...] = ()
    product_names: tuple[str, ...] = ()

    def countries(self) -> list[str]:
        return sorted(self.country_names)

    def categories(self) -> list[str]:
        return sorted(self.category_names)

    def product_terms(self) -> frozenset[str]:
        return product_words([*self.product_names, *self.category_names])

    def as_of(self) -> datetime | None:
        return self.as_of_date

    def is_customer_id(self, token: str) -> bool:
        return token in self.customer_ids


class RegistryFacts:
    """The facts of the tool registry's build. Names (countries, tiers, stages, segments, categories,
    product words) are read once per customers or transactions table, so a build switch brings its own;
    the as-of date once it is known; ids are looked up in the registry's current build every time."""

    def __init__(self, registry: Any, currency_symbol: str):
        self._registry = registry
        self.currency_symbol = currency_symbol
        self.max_budget = MAX_BUDGET
        self._read: dict[str, tuple[Any, Any]] = {}  # name -> (the table it was read from, value)
        self._as_of: datetime | None = None

    def _customers(self) -> Any:
        return self._registry.deps.customers

    def _per_table(self, name: str, table: Any, read: Any) -> Any:
        """`read(table)`, cached until the table changes."""
        cached = self._read.get(name)
        if cached is None or cached[0] is not table:
            cached = self._read[name] = (table, read(table))
        return cached[1]

    def _names(self, field: str, known: tuple[str, ...]) -> tuple[str, ...]:
        """The names of a category field present in the data, in the filter language's order (best tier
        first); all of them when there is no table."""
        try:
            store = self._customers()
        except Exception:  # noqa: BLE001 - no table: the filter language's names
            return known
        present = self._per_table(field, store, lambda s: set(s.audience.values(field)))
        return tuple(n for n in known if n in present) or known

    @property
    def tiers(self) -> tuple[str, ...]:
        return self._names("tier", tuple(TIERS))

    @property
    def lifecycle_stages(self) -> tuple[str, ...]:
        return self._names("lifecycle", tuple(LIFECYCLE_STAGES))

    @property
    def segments(self) -> tuple[str, ...]:
        return self._names("segment", tuple(RFM_SEGMENTS))

    def countries(self) -> list[str]:
        """The serving table's countries: the names its audience engine compiled (no pass over the rows)."""
        try:
            store = self._customers()
        except Exception as exc:  # noqa: BLE001 - no table: country slots fall back to aliases only
            log.info("no country list: %s", exc)
            return []
        return self._per_table("country", store, lambda s: sorted(s.audience.values("country")))

    def categories(self) -> list[str]:
        """The categories in the customers' top categories (one pass over that column per table)."""
        try:
            store = self._customers()
        except Exception:  # noqa: BLE001 - no table: no categories
            return []
        return self._per_table("categories", store, _top_categories)

    def product_terms(self) -> frozenset[str]:
        """The words of the product names in the transactions store and of the categories."""
        try:
            lines = self._registry.deps.transactions
        except Exception:  # noqa: BLE001 - no transactions: the categories' words only
            lines = None
        names = self._per_table("products", lines, lambda t: [] if t is None else _product_names(t))
        categories = self.categories()
        cached = self._read.get("terms")
        if cached is None or cached[0][0] is not names or cached[0][1] is not categories:
            cached = self._read["terms"] = ((names, categories), product_words([*names, *categories]))
        return cached[1]

    def as_of(self) -> datetime | None:
        if self._as_of is None:
            try:
                frame = self._customers().frame
                column = "as_of" if "as_of" in frame else "last_order"
                self._as_of = latest_date(frame[column])
            except Exception:  # noqa: BLE001 - no table yet: asked again next time
                self._as_of = None
        return self._as_of

    def is_customer_id(self, token: str) -> bool:
        try:
            store = self._customers()
        except Exception:  # noqa: BLE001 - no table: no token is an id
            return False
        return store.position(token) is not None


def _top_categories(store: Any) -> list[str]:
    frame = store.frame
    if "top_categories" not in frame:
        return []
    lists = (v for v in frame["top_categories"].to_numpy(dtype=object) if v is not None and len(v))
    return sorted({str(c) for c in itertools.chain.from_iterable(lists)})


def _product_names(lines: Any) -> list[str]:
    import pandas as pd

    # Missing names are NA (the store keeps names Arrow-backed), whose truth value is undefined.
    return [str(n) for n in pd.unique(lines.product_name) if isinstance(n, str) and n]


def product_words(names: Iterable[str]) -> frozenset[str]:
    """Lower-case words of three letters or more, each with its plural or singular ("candle", "candles")."""
    words: set[str] = set()
    for name in names:
        for w in re.findall(r"[a-z]{3,}", str(name).lower()):
            words.update((w, w[:-1]) if w.endswith("s") else (w, w + "s"))
    return frozenset(words)


def latest_date(series) -> datetime | None:
    import pandas as pd

    value = pd.to_datetime(series, errors="coerce").max()
    return None if pd.isna(value) else value.to_pydatetime()
