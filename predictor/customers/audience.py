"""One filter model shared by every surface that selects customers (tools, search, campaigns)."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, field_validator, model_validator

from predictor.errors import ValueDeskError

TIERS = ("Platinum", "Gold", "Silver", "Bronze")
LIFECYCLE_STAGES = ("new", "active", "at risk", "lapsing", "lapsed")
RFM_SEGMENTS = (
    "Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention",
    "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost",
)


class FilterError(ValueDeskError):
    """A filter names an unknown value or an impossible range."""


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


def column_isin(column: pd.Series, values, *, casefold: bool = False) -> np.ndarray:
    """Membership of each row in `values` as a bool array (missing values never match). A categorical
    column is matched once per category, not row by row; with `casefold`, `values` are lower-case
    names matched case-insensitively."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = pd.Index(column.cat.categories)
        if casefold:
            categories = categories.astype("string").str.lower()
        hit = np.asarray(categories.isin(values), dtype=bool)
        codes = column.cat.codes.to_numpy()
        return (codes >= 0) & hit[codes.clip(min=0)]
    if casefold:
        column = column.astype("string").str.lower()
    return column.isin(values).fillna(False).to_numpy(dtype=bool)


class CustomerFilter(BaseModel):
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

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        keep = pd.Series(True, index=frame.index)
        for field, column in (("tiers", "tier"), ("lifecycle", "lifecycle"), ("segments", "rfm_segment")):
            values = getattr(self, field)
            if values:
                keep &= column_isin(frame[column], values)
        if self.countries:
            wanted = {c.strip().lower() for c in self.countries}
            keep &= column_isin(frame["country"], wanted, casefold=True)
        for field, column, op in (
            ("min_churn_risk", "churn_risk", "ge"), ("max_churn_risk", "churn_risk", "le"),
            ("min_value", "predicted_value", "ge"), ("max_value", "predicted_value", "le"),
            ("min_recency_days", "recency_days", "ge"), ("max_recency_days", "recency_days", "le"),
        ):
            bound = getattr(self, field)
            if bound is not None:
                keep &= getattr(frame[column], op)(bound)
        return keep
