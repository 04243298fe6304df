"""What an audience is: the one filter language of the product.

A filter arrives as a `CustomerFilter` (the tools' typed arguments, campaign audiences) or as a
mapping with operators (the profile index's `{"churn_risk": {">": 0.5}, "orders": {"between": [2, 10]}}`).
Both compile to the same list of `Condition`s, which `predictor.customers.audience_engine.AudienceTable`
evaluates against a table: there is no second place that turns a filter into rows.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, field_validator, model_validator

from predictor.errors import ValueDeskError
from predictor.figures import GLOSSARY, name

TIERS = ("Platinum", "Gold", "Silver", "Bronze")
LIFECYCLE_STAGES = ("new", "active", "at risk", "lapsing", "lapsed")
RFM_SEGMENTS = (
    "Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention",
    "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost",
)


class FilterError(ValueDeskError):
    """A filter names an unknown field, value or operator, or an impossible range."""


# field -> (columns it is read from, first present wins; kind). The customers table calls the RFM
# segment `rfm_segment`, the indexed profiles (and Chroma's metadata: the last name) call it `segment`.
FILTER_FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "tier": (("tier",), "category"),
    "lifecycle": (("lifecycle",), "category"),
    "segment": (("rfm_segment", "segment"), "category"),
    "country": (("country",), "category"),
    "churn_risk": (("churn_risk",), "number"),
    "predicted_value": (("predicted_value",), "number"),
    "value_at_risk": (("value_at_risk",), "number"),
    "customer_value": (("customer_value",), "number"),
    "historical_value": (("historical_value",), "number"),
    "revenue_12m": (("revenue_12m",), "number"),
    "recency_days": (("recency_days",), "number"),
    "orders": (("orders",), "number"),
    "last_order_date": (("last_order_date",), "date"),
    # The one "at risk" (predictor.customers.tiers.flag_at_risk), stored per customer: true or false.
    "at_risk": (("at_risk",), "flag"),
}
_ALIASES = {
    "tiers": "tier", "segments": "segment", "rfm_segment": "segment", "countries": "country",
    "recency": "recency_days", "value": "predicted_value", "last_order": "last_order_date",
    "lifecycle_stage": "lifecycle", "stage": "lifecycle",
}
_OPS = {
    "==": "==", "=": "==", "eq": "==", "$eq": "==",
    "!=": "!=", "ne": "!=", "$ne": "!=",
    ">": ">", "gt": ">", "$gt": ">",
    ">=": ">=", "gte": ">=", "ge": ">=", "$gte": ">=",
    "<": "<", "lt": "<", "$lt": "<",
    "<=": "<=", "lte": "<=", "le": "<=", "$lte": "<=",
    "in": "in", "$in": "in",
    "not in": "not in", "nin": "not in", "$nin": "not in",
    "between": "between",
}
_CATEGORY_OPS = ("==", "!=", "in", "not in")
_NUMBER_OPS = ("==", "!=", ">", ">=", "<", "<=", "between")
_FLAG_OPS = ("==", "!=")
_KNOWN_VALUES = {"tier": (TIERS, "tiers"), "lifecycle": (LIFECYCLE_STAGES, "lifecycle stages"),
                 "segment": (RFM_SEGMENTS, "segments")}


@dataclass(frozen=True)
class Condition:
    """One test on one field: category ops `in`/`not in` (a tuple of names), number and date ops
    `==`, `!=`, `>`, `>=`, `<`, `<=` (dates as int64 nanoseconds)."""
    field: str
    op: str
    value: Any

    def label(self) -> str:
        """How a marketer reads it in an explanation: "tier in Gold, Platinum", "churn risk at least 50%",
        "no order for at least 90 days" (figure names from the one glossary, predictor.figures)."""
        if self.field == "at_risk":
            return "at risk" if (self.op == "==") == bool(self.value) else "not at risk"
        if isinstance(self.value, tuple):
            return f"{self.field} {self.op} {', '.join(self.value)}"
        if self.field == "recency_days" and self.op in (">", ">="):
            return f"no order for {'more than' if self.op == '>' else 'at least'} {self.value:g} days"
        if self.field == "recency_days" and self.op in ("<", "<="):
            return f"an order within the last {self.value:g} days"
        words = {"==": "equal to", "!=": "not", ">": "above", ">=": "at least", "<": "below", "<=": "at most"}
        if FILTER_FIELDS[self.field][1] == "date":
            words = {**words, ">": "after", ">=": "on or after", "<": "before", "<=": "on or before"}
        field = name(self.field) if self.field in GLOSSARY else self.field.replace("_", " ")
        return f"{field} {words[self.op]} {self._value_text()}"

    def _value_text(self) -> str:
        if FILTER_FIELDS[self.field][1] == "date":
            return pd.Timestamp(int(self.value)).date().isoformat()
        if self.field == "churn_risk":
            return f"{self.value * 100:g}%"
        return f"{self.value:,.2f}".rstrip("0").rstrip(".")


def canonical_names(values: list[str] | None, allowed: tuple[str, ...], field: str) -> list[str] | None:
    """Match names case-insensitively (and ignoring '_'/'-'), refusing unknown ones with the closest valid name."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]

    def norm(name: str) -> str:
        return name.strip().lower().replace("_", " ").replace("-", " ").replace("’", "'")

    lookup = {norm(a): a for a in allowed}
    out = []
    for value in values:
        hit = lookup.get(norm(str(value)))
        if hit is None:
            close = difflib.get_close_matches(norm(str(value)), list(lookup), n=1)
            hint = f" Did you mean '{lookup[close[0]]}'?" if close else ""
            raise FilterError(f"Unknown {field} '{value}'. Valid {field}: {', '.join(allowed)}.{hint}")
        out.append(hit)
    return out


class CustomerFilter(BaseModel):
    """The audience a tool or a campaign is asked about; every field optional, all of them AND-ed."""

    tiers: list[str] | None = Field(None, description="Value tiers to include, e.g. ['Gold', 'Platinum'].")
    lifecycle: list[str] | None = Field(None, description="Lifecycle stages: new, active, at risk, lapsing, lapsed.")
    segments: list[str] | None = Field(None, description="RFM segments, e.g. ['Champions', 'At Risk'].")
    countries: list[str] | None = Field(None, description="Countries as named in the data, e.g. ['Germany'].")
    min_churn_risk: float | None = Field(None, ge=0, le=1, description="Lowest churn risk (0 to 1).")
    max_churn_risk: float | None = Field(None, ge=0, le=1, description="Highest churn risk (0 to 1).")
    min_value: float | None = Field(None, ge=0, description="Lowest predicted value over the horizon.")
    max_value: float | None = Field(None, ge=0, description="Highest predicted value over the horizon.")
    min_recency_days: float | None = Field(None, ge=0, description="At least this many days since the last order.")
    max_recency_days: float | None = Field(None, ge=0, description="At most this many days since the last order.")
    # The one "at risk" (predictor.customers.tiers.flag_at_risk); kept short: it is in every tool's schema.
    at_risk: bool | None = Field(None, description="true: only at-risk customers; false: only those not at risk.")

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, v):
        return canonical_names(v, TIERS, "tiers")

    @field_validator("lifecycle")
    @classmethod
    def _lifecycle(cls, v):
        return canonical_names(v, LIFECYCLE_STAGES, "lifecycle stages")

    @field_validator("segments")
    @classmethod
    def _segments(cls, v):
        return canonical_names(v, RFM_SEGMENTS, "segments")

    @model_validator(mode="after")
    def _ranges(self):
        for low, high in (("min_churn_risk", "max_churn_risk"), ("min_value", "max_value"),
                          ("min_recency_days", "max_recency_days")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low} ({lo}) is greater than {high} ({hi})")
        return self

    def is_empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())

    def conditions(self) -> list[Condition]:
        """The filter in the engine's terms, in the order a marketer reads it (names, then ranges)."""
        return parse_conditions({k: v for k, v in self.model_dump().items() if v is not None})

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """The rows of `frame` this filter keeps, as a boolean Series on its index (a one-off table:
        code that filters one table repeatedly holds an `AudienceTable` instead)."""
        from predictor.customers.audience_engine import AudienceTable

        return pd.Series(AudienceTable(frame).mask(self.conditions()), index=frame.index)


def parse_conditions(filters: Mapping[str, Any] | CustomerFilter | None) -> list[Condition]:
    """Turn a filter (mapping or CustomerFilter) into conditions, refusing unknown fields/operators.

    Mapping form: ``{"tier": ["Gold", "Platinum"], "churn_risk": {">": 0.5}, "country": "Germany",
    "orders": {"between": [2, 10]}, "min_value": 100}``.
    """
    if filters is None:
        return []
    if isinstance(filters, CustomerFilter):
        return filters.conditions()
    if not isinstance(filters, Mapping):
        raise FilterError(f"Filters must be a mapping of field to condition, got {type(filters).__name__}.")
    out: list[Condition] = []
    for raw_key, spec in filters.items():
        if spec is not None:
            out += _field_conditions(str(raw_key), spec)
    return out


def _field_conditions(raw_key: str, spec: Any) -> list[Condition]:
    key = raw_key.strip().lower()
    bound = re.match(r"^(min|max)_(.+)$", key)
    if bound and key not in FILTER_FIELDS:
        name = _resolve_field(bound.group(2))
        if FILTER_FIELDS[name][1] in ("category", "flag"):
            raise FilterError(f"'{raw_key}': min/max only apply to numeric fields, not '{name}'.")
        return _condition(name, ">=" if bound.group(1) == "min" else "<=", spec)
    name = _resolve_field(key)
    if isinstance(spec, dict):
        if not spec:
            raise FilterError(f"Filter '{raw_key}' has no condition.")
        return [c for op, value in spec.items() for c in _condition(name, op, value)]
    if FILTER_FIELDS[name][1] == "category":
        return _condition(name, "in", spec if not isinstance(spec, str) else [spec])
    if isinstance(spec, (list, tuple)):
        raise FilterError(f"Filter '{raw_key}' takes a number or {{operator: value}}, e.g. "
                          f"{{'>': 0.5}} or {{'between': [1, 2]}}; got {spec!r}.")
    return _condition(name, "==", spec)


def _resolve_field(name: str) -> str:
    key = str(name).strip().lower().replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in FILTER_FIELDS:
        raise FilterError(f"Unknown filter field '{name}'. Valid fields: {', '.join(FILTER_FIELDS)} "
                          "(or min_<field>/max_<field> for numeric ones).")
    return key


def _number(field_name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise FilterError(f"Filter '{field_name}' needs a number, got {value!r}.")
    if not math.isfinite(float(value)):
        raise FilterError(f"Filter '{field_name}' needs a finite number, got {value!r}.")
    return float(value)


def _date(field_name: str, value: Any) -> int:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise FilterError(f"Filter '{field_name}' needs a date like 2011-06-30, got {value!r}.") from exc
    if ts is pd.NaT:
        raise FilterError(f"Filter '{field_name}' needs a date like 2011-06-30, got {value!r}.")
    return int(ts.tz_localize(None).value if ts.tzinfo else ts.value)


def _category_condition(field_name: str, op: str, value: Any) -> list[Condition]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple, set, frozenset)) or not values:
        raise FilterError(f"Filter '{field_name}' needs a name or a non-empty list of names, got {value!r}.")
    if any(not isinstance(v, str) for v in values):
        raise FilterError(f"Filter '{field_name}' takes names (text), got {value!r}.")
    if field_name in _KNOWN_VALUES:
        allowed, label = _KNOWN_VALUES[field_name]
        values = canonical_names(list(values), allowed, label)
    op = {"==": "in", "!=": "not in"}.get(op, op)
    return [Condition(field_name, op, tuple(values))]


def _condition(field_name: str, op: str, value: Any) -> list[Condition]:
    kind = FILTER_FIELDS[field_name][1]
    norm = _OPS.get(str(op).strip().lower())
    valid = {"category": _CATEGORY_OPS, "flag": _FLAG_OPS}.get(kind, _NUMBER_OPS)
    if norm is None or norm not in valid:
        raise FilterError(f"Unknown operator '{op}' for filter '{field_name}'. Valid operators: {', '.join(valid)}.")
    if kind == "category":
        return _category_condition(field_name, norm, value)
    if kind == "flag":
        if not isinstance(value, (bool, np.bool_)):
            raise FilterError(f"Filter '{field_name}' is true or false, got {value!r}.")
        return [Condition(field_name, norm, 1.0 if value else 0.0)]
    convert = _number if kind == "number" else _date
    if norm == "between":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise FilterError(f"Filter '{field_name}' between needs [low, high], got {value!r}.")
        low, high = convert(field_name, value[0]), convert(field_name, value[1])
        if low > high:
            raise FilterError(f"Filter '{field_name}' between has low {value[0]!r} above high {value[1]!r}.")
        return [Condition(field_name, ">=", low), Condition(field_name, "<=", high)]
    return [Condition(field_name, norm, convert(field_name, value))]


def to_chroma_where(conditions: list[Condition]) -> dict | None:
    """The same filter as a plain Chroma ``where`` over the indexed metadata (what the index's column
    store is checked against in tests and the bench)."""
    clauses = []
    for c in conditions:
        column, kind = FILTER_FIELDS[c.field][0][-1], FILTER_FIELDS[c.field][1]
        if kind == "category":
            clauses.append({column: {"$in" if c.op == "in" else "$nin": list(c.value)}})
        elif kind == "flag":
            clauses.append({column: {"$eq" if c.op == "==" else "$ne": bool(c.value)}})
        else:
            op = {"==": "$eq", "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}[c.op]
            clauses.append({column if kind == "number" else column + "_ns": {op: c.value}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
