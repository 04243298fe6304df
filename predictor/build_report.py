"""What a build reports: its errors, its step timings, the changes since the previous build and the
summary `valuedesk build` prints."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from predictor.customers.tiers import TIER_ORDER
from predictor.customers.transitions import tier_transitions
from predictor.errors import ValueDeskError

LIFECYCLE_ORDER = ["new", "active", "at risk", "lapsing", "lapsed"]


class BuildError(ValueDeskError):
    """A build step failed; the previous build's files are left as they were."""


class ChangeSummary(BaseModel):
    new: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    tier_moves: int = 0
    tier_up: int = 0
    tier_down: int = 0
    examples: dict[str, list[str]] = Field(default_factory=dict)  # a few ids per kind

    @property
    def any(self) -> bool:
        return bool(self.new or self.changed or self.removed or self.tier_moves)


class BuildReport(BaseModel):
    source: str
    schema_name: str
    fingerprint: str
    transactions: int
    customers: int
    as_of: str | None = None
    scores_reused: bool
    transactions_reused: bool
    model_version: str | None = None
    tier_counts: dict[str, int]
    lifecycle_counts: dict[str, int]
    segment_counts: dict[str, int]
    category_coverage: float | None = None  # share of product revenue with a named category
    categories: int = 0
    kmeans_k: int | None = None
    kmeans_silhouette: float | None = None
    changes: ChangeSummary
    no_changes: bool
    index: str  # what happened to the search index
    timings: dict[str, float]
    files: list[str]
    data_check: dict | None = None  # `valuedesk check-data` on this log: status and problems
    products: dict | None = None  # the products file joined at load: products, lines, unmatched lines and ids

    def summary(self) -> str:
        lines = [f"Built {self.customers:,} customers from {self.transactions:,} lines of {self.source}"
                 f" (as of {self.as_of}; scores {'reused' if self.scores_reused else 'computed'})."]
        lines.append("Tiers: " + ", ".join(f"{t} {n:,}" for t, n in self.tier_counts.items()))
        lines.append("Lifecycle: " + ", ".join(f"{t} {n:,}" for t, n in self.lifecycle_counts.items()))
        if self.category_coverage is not None:
            lines.append(f"Categories: {self.categories} named categories cover "
                         f"{self.category_coverage:.1%} of product revenue.")
        if self.kmeans_k is not None:
            lines.append(f"K-Means: k={self.kmeans_k} chosen by silhouette {self.kmeans_silhouette:.3f}.")
        c = self.changes
        if self.no_changes:
            lines.append("no changes")
        else:
            lines.append(f"Changes: {c.new:,} new, {c.changed:,} changed, {c.removed:,} removed customers; "
                         f"{c.tier_moves:,} tier moves ({c.tier_up:,} up, {c.tier_down:,} down).")
        lines.append(f"Index: {self.index}")
        if self.products:
            p = self.products
            lines.append(f"Products: {p['products']:,} in the products file; {p['unmatched_lines']:,} of {p['lines']:,} "
                         f"lines ({p['unmatched_ids']:,} product ids) are not in it.")
        if self.data_check and self.data_check.get("problems"):
            lines.append(f"Data check ({self.data_check['status']}): " + "; ".join(
                p["reason"] + (f" (weak: {', '.join(p['weak'])})" if p.get("weak") else "")
                for p in self.data_check["problems"]) + ".")
        lines.append("Time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()))
        return "\n".join(lines)


# --------------------------------------------------------------------------- step timings and errors

class StepTimer:
    """Times each step (and moves the progress bar); turns a step's failure into a BuildError."""

    def __init__(self, bar: Any):
        self.timings: dict[str, float] = {}
        self.bar = bar

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.bar is not None:
            self.bar.set_description(f"build: {name}")
        start = time.perf_counter()
        try:
            yield
        except BuildError:
            raise
        except ValueDeskError as exc:
            if name not in ("index", "write"):
                raise  # bad input or settings: the error says what to fix
            raise BuildError(f"build step '{name}' failed: {exc}; the previous build still serves") from exc
        except Exception as exc:  # a bug or an environment fault: say which step, keep the old build
            raise BuildError(f"build step '{name}' failed ({type(exc).__name__}: {exc}); "
                             "the previous build still serves") from exc
        finally:
            self.timings[name] = round(time.perf_counter() - start, 2)
            if self.bar is not None:
                self.bar.update(1)


@contextmanager
def step_errors(name: str) -> Iterator[None]:
    """An untimed step's unexpected failure as a BuildError naming the step."""
    try:
        yield
    except ValueDeskError:
        raise
    except Exception as exc:
        raise BuildError(f"build step '{name}' failed ({type(exc).__name__}: {exc}); "
                         "the previous build still serves") from exc


# --------------------------------------------------------------------------- changes and counts

def profile_changes(old: pd.DataFrame | None, new: pd.DataFrame) -> ChangeSummary:
    """New, changed (by profile content hash), removed and unchanged customers."""
    if old is None or old.empty:
        ids = new["customer_id"].astype(str)
        return ChangeSummary(new=len(new), examples={"new": ids.head(5).tolist()})
    a = old.set_index(old["customer_id"].astype(str))["content_hash"]
    b = new.set_index(new["customer_id"].astype(str))["content_hash"]
    added = b.index.difference(a.index)
    removed = a.index.difference(b.index)
    common = b.index.intersection(a.index)
    changed = common[(a.loc[common] != b.loc[common]).to_numpy()]
    return ChangeSummary(new=len(added), removed=len(removed), changed=len(changed),
                         unchanged=len(common) - len(changed),
                         examples={k: sorted(v)[:5] for k, v in
                                   (("new", added), ("changed", changed), ("removed", removed)) if len(v)})


def build_changes(old_profiles: pd.DataFrame | None, old_customers: pd.DataFrame | None,
                  profiles: pd.DataFrame, customers: pd.DataFrame) -> tuple[ChangeSummary, pd.DataFrame | None]:
    """The changes since the previous build, and its customers' tier moves (None for a first build)."""
    changes = profile_changes(old_profiles, profiles)
    moves = tier_transitions(old_customers, customers) if old_customers is not None else None
    if moves is not None:
        existing = moves[moves["direction"].isin(["up", "down"])]
        changes.tier_moves = len(existing)
        changes.tier_up = int((existing["direction"] == "up").sum())
        changes.tier_down = int((existing["direction"] == "down").sum())
    return changes, moves


def value_counts(series: pd.Series, order: list[str] | None = None) -> dict[str, int]:
    """Counts per value: the values of `order` first in that order, then the rest alphabetically."""
    counts = series.astype(str).value_counts()
    keys = [k for k in (order or []) if k in counts] + sorted(k for k in counts.index if k not in (order or []))
    return {k: int(counts[k]) for k in keys}


def customer_counts(customers: pd.DataFrame) -> dict[str, dict[str, int]]:
    """The report's tier, lifecycle and segment counts."""
    return {"tier_counts": value_counts(customers["tier"], TIER_ORDER),
            "lifecycle_counts": value_counts(customers["lifecycle"], LIFECYCLE_ORDER),
            "segment_counts": value_counts(customers["rfm_segment"])}
