"""What the planner needs to know about the data, behind one small interface.

The planner's stages read countries, the as-of date, customer ids and the vocabulary of tiers,
lifecycle stages and RFM segments from a `PlannerFacts`, never from the tools' internals: a test can
hand it fixed facts (`StaticFacts`), and the tool registry's build is read in one place
(`RegistryFacts`), so a change to how the tools hold their tables touches this module only.
"""

from __future__ import annotations

import logging
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

    def countries(self) -> list[str]:
        return sorted(self.country_names)

    def as_of(self) -> datetime | None:
        return self.as_of_date

    def is_customer_id(self, token: str) -> bool:
        return token in self.customer_ids


class RegistryFacts:
    """The facts of the tool registry's customers table. The country list is read once; the as-of
    date once it is known; ids are looked up in the registry's current build every time."""

    def __init__(self, registry: Any, currency_symbol: str):
        self._registry = registry
        self.currency_symbol = currency_symbol
        self.max_budget = MAX_BUDGET
        self.tiers = tuple(TIERS)
        self.lifecycle_stages = tuple(LIFECYCLE_STAGES)
        self.segments = tuple(RFM_SEGMENTS)
        self._countries: list[str] | None = None
        self._countries_of: Any = None  # the customers table they were read from
        self._as_of: datetime | None = None

    def _customers(self) -> Any:
        return self._registry.deps.customers

    def countries(self) -> list[str]:
        """The serving table's countries: the names its audience engine compiled (no pass over the rows),
        read again when a build switch brings a new table."""
        try:
            store = self._customers()
        except Exception as exc:  # noqa: BLE001 - no table: country slots fall back to aliases only
            log.info("no country list: %s", exc)
            return []
        if self._countries is None or self._countries_of is not store:
            self._countries = sorted(store.audience.values("country"))
            self._countries_of = store
        return self._countries

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


def latest_date(series) -> datetime | None:
    import pandas as pd

    value = pd.to_datetime(series, errors="coerce").max()
    return None if pd.isna(value) else value.to_pydatetime()
