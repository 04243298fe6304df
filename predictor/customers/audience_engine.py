"""The one audience engine: a table compiled once (categories as small integer codes, numbers as
float arrays), evaluating `Condition`s from `predictor.customers.audience` as a few vectorised passes.

The tools' customers table, campaign eligibility, every customer's next best action and the profile
index's filtered search all select rows here. Marketers repeat a filter while rephrasing (and pages
re-ask it), so the selections of the last few filters are kept (a mask and, for the index's scanner,
a bitmap: 9 bits per row each).
"""

from __future__ import annotations

import difflib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import pandas as pd

from predictor.customers.audience import FILTER_FIELDS, Condition, CustomerFilter, FilterError

NAT = np.iinfo(np.int64).min
_CACHED_SELECTIONS = 16


class Selection:
    """The rows a filter keeps: a read-only boolean mask, how many, and (on first use) the same rows
    as a little-endian bitmap, which the index's 8-bit scanner takes as its selector."""

    def __init__(self, mask: np.ndarray):
        mask.flags.writeable = False
        self.mask = mask
        self.count = int(np.count_nonzero(mask))

    @cached_property
    def bits(self) -> np.ndarray:
        bits = np.packbits(self.mask, bitorder="little")
        bits.flags.writeable = False
        return bits


class AudienceTable:
    """One table's filterable fields, compiled for repeated selections.

    `strict_countries`: an unknown country is an error naming the closest one (the index, whose
    callers type free text); otherwise it simply matches nobody (tables that are a slice of the
    customers, where a real country may be absent).
    """

    def __init__(self, frame: pd.DataFrame, *, strict_countries: bool = False):
        self.frame = frame
        self.n = len(frame)
        self.strict_countries = strict_countries
        self._columns = {name: next((c for c in columns if c in frame.columns), None)
                         for name, (columns, _) in FILTER_FIELDS.items()}
        self._codes: dict[str, tuple[np.ndarray, list[str], dict[str, int]]] = {}
        self._numbers: dict[str, np.ndarray] = {}
        self._members: dict[tuple[str, int], np.ndarray] = {}
        self._selections: OrderedDict[tuple[Condition, ...], Selection] = OrderedDict()
        self._narrowings: OrderedDict[tuple[Condition, ...], list[tuple[str, int]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.n

    def has(self, field: str) -> bool:
        return self._columns.get(field) is not None

    def values(self, field: str) -> list[str]:
        """The names a category field takes in this table, as written in the data."""
        return self._category(field)[1] if self.has(field) else []

    def select(self, conditions: Sequence[Condition] | CustomerFilter) -> Selection:
        """All conditions AND-ed; the last few selections are cached (their masks are read-only)."""
        if isinstance(conditions, CustomerFilter):
            conditions = conditions.conditions()
        key = tuple(conditions)
        with self._lock:
            hit = self._selections.get(key)
            if hit is not None:
                self._selections.move_to_end(key)
                return hit
        found = Selection(self._compute(key))
        with self._lock:
            self._selections[key] = found
            while len(self._selections) > _CACHED_SELECTIONS:
                self._selections.popitem(last=False)
        return found

    def mask(self, conditions: Sequence[Condition] | CustomerFilter) -> np.ndarray:
        return self.select(conditions).mask

    def narrowing(self, conditions: Sequence[Condition] | CustomerFilter) -> list[tuple[str, int]]:
        """How many rows remain after each condition in turn, as (label, count): what explains an
        empty audience ("tier in Platinum: 43, at risk: 0") in the order a marketer reads the filter.
        Cached like selections: an empty audience is re-asked too, and at 10M rows its steps cost ~40 ms."""
        if isinstance(conditions, CustomerFilter):
            conditions = conditions.conditions()
        key = tuple(conditions)
        with self._lock:
            hit = self._narrowings.get(key)
            if hit is not None:
                self._narrowings.move_to_end(key)
                return list(hit)
        keep = np.ones(self.n, dtype=bool)
        steps = []
        for c in conditions:
            keep &= self.condition_mask(c)
            steps.append((c.label(), int(keep.sum())))
        with self._lock:
            self._narrowings[key] = steps
            while len(self._narrowings) > _CACHED_SELECTIONS:
                self._narrowings.popitem(last=False)
        return list(steps)

    def compile(self) -> None:
        """Compile every filterable field now (category codes, number arrays): at 10M rows the first
        filter on a field paid up to ~400 ms for it; a server calls this while loading."""
        for field, (_, kind) in FILTER_FIELDS.items():
            if self.has(field) and kind == "category":
                self._category(field)
            elif self.has(field):
                self._number(field)

    def clear(self) -> None:
        """Forget cached selections and category members (benches time a filter as if never asked)."""
        with self._lock:
            self._selections.clear()
            self._narrowings.clear()
            self._members.clear()

    def condition_mask(self, c: Condition) -> np.ndarray:
        """One condition's rows (a fresh array the caller may modify)."""
        kind = FILTER_FIELDS[c.field][1]
        if not self.has(c.field):
            raise FilterError(f"Filter '{c.field}' is not available: this table has no "
                              f"'{FILTER_FIELDS[c.field][0][0]}' field.")
        if kind == "category":
            return self._category_mask(c)
        values = self._number(c.field)
        with np.errstate(invalid="ignore"):
            keep = {"==": np.equal, "!=": np.not_equal, ">": np.greater, ">=": np.greater_equal,
                    "<": np.less, "<=": np.less_equal}[c.op](values, c.value)
        if kind == "date":
            keep &= values != NAT
        return keep

    def _compute(self, conditions: tuple[Condition, ...]) -> np.ndarray:
        if not conditions:
            return np.ones(self.n, dtype=bool)
        keep = self.condition_mask(conditions[0])  # a fresh array: AND-ing it into ones was one more pass
        for c in conditions[1:]:
            keep &= self.condition_mask(c)
        return keep

    def _category(self, field: str) -> tuple[np.ndarray, list[str], dict[str, int]]:
        hit = self._codes.get(field)
        if hit is None:
            column = self.frame[self._columns[field]]
            # A categorical column (the planning frame's) already has its codes: converting a million
            # values to strings first costs more than every selection after it.
            cat = column.array if isinstance(column.dtype, pd.CategoricalDtype) else pd.Categorical(column.astype("string"))
            names = [str(c) for c in cat.categories]
            # Shifted by one so a missing value (-1) becomes 0, in no set and in no complement.
            dtype = np.int16 if len(names) < 32_000 else np.int32
            hit = ((cat.codes + 1).astype(dtype), names, {n.strip().lower(): i + 1 for i, n in enumerate(names)})
            self._codes[field] = hit
        return hit

    def _number(self, field: str) -> np.ndarray:
        hit = self._numbers.get(field)
        if hit is None:
            column = self.frame[self._columns[field]]
            hit = (to_ns(column) if FILTER_FIELDS[field][1] == "date"
                   else pd.to_numeric(column, errors="coerce").to_numpy(np.float64, na_value=np.nan))
            self._numbers[field] = hit
        return hit

    def _category_mask(self, c: Condition) -> np.ndarray:
        codes, names, lookup = self._category(c.field)
        wanted = []
        for value in c.value:
            code = lookup.get(value.strip().lower())
            if code is None and c.field == "country" and self.strict_countries:
                close = difflib.get_close_matches(value.strip().lower(), list(lookup), n=1)
                hint = f" Did you mean '{names[lookup[close[0]] - 1]}'?" if close else ""
                raise FilterError(f"Unknown country '{value}'.{hint} Countries here: {', '.join(sorted(names)[:50])}.")
            if code is not None:
                wanted.append(code)
        wanted = list(dict.fromkeys(wanted))
        if len(wanted) <= 4:
            inside = np.zeros(self.n, dtype=bool)
            for code in wanted:
                inside |= self._member(c.field, code)
        else:  # many names (countries of a region): one lookup-table gather beats many passes
            table = np.zeros(len(names) + 1, dtype=bool)
            table[np.asarray(wanted, dtype=np.int64)] = True
            inside = table[codes]
        if c.op == "not in":
            inside = ~inside
            inside &= codes != 0
        return inside

    def _member(self, field: str, code: int) -> np.ndarray:
        """One category's rows, cached (read-only): OR-ing a few of these beats a gather over codes."""
        key = (field, code)
        hit = self._members.get(key)
        if hit is None:
            hit = self._category(field)[0] == code
            hit.flags.writeable = False
            self._members[key] = hit
        return hit


def to_ns(series: pd.Series) -> np.ndarray:
    values = pd.to_datetime(series, errors="coerce")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_localize(None)
    return values.astype("datetime64[ns]").to_numpy().view(np.int64)
