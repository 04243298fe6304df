"""The call's customer filter, as every audience-taking tool builds it: the arguments' CustomerFilter
with each country checked against the data's own list."""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from predictor.customers.audience import CustomerFilter
from tools.deps import ToolDeps
from tools.stores import CustomerStore, ToolFailure

KNOWN_COUNTRIES_SHOWN = 8


def known_countries(store: CustomerStore) -> list[str]:
    """The data's countries, most customers first (cached on the store)."""
    known = getattr(store, "_known_countries", None)
    if known is None:
        labels = store.labels["country"]
        counts = np.bincount(labels.codes[labels.codes >= 0], minlength=len(labels.categories))
        known = [str(labels.categories[i]) for i in np.argsort(-counts, kind="stable") if counts[i]]
        store._known_countries = known
    return known


def customer_filter(args: Any, deps: ToolDeps, *, empty: str = "") -> CustomerFilter:
    """The call's customer filter, with every country checked against the data's own list.

    Countries are data, not a fixed vocabulary, so CustomerFilter cannot validate them; an unknown one
    would match nobody and, dropped anywhere upstream, widen the audience to everyone. It is an
    invalid argument naming the value, the closest country and the most common ones. `empty` says what
    the refusal means for this tool (e.g. that nothing was exported).
    """
    flt = args.customer_filter()
    if not flt.countries:
        return flt
    try:
        known = known_countries(deps.customers)
    except ToolFailure:
        return flt  # no customers table: the tool reports that itself
    if not known:
        return flt
    lookup = {c.lower(): c for c in known}
    unknown = [c for c in flt.countries if c.strip().lower() not in lookup]
    if not unknown:
        return flt
    shown = ", ".join(repr(c[:60]) for c in unknown)
    close = difflib.get_close_matches(unknown[0].strip().lower(), list(lookup), n=1, cutoff=0.75)
    guess = f" Did you mean '{lookup[close[0]]}'?" if close else ""
    listed = ", ".join(known[:KNOWN_COUNTRIES_SHOWN])
    more = f" and {len(known) - KNOWN_COUNTRIES_SHOWN:,} more" if len(known) > KNOWN_COUNTRIES_SHOWN else ""
    raise ToolFailure(
        "invalid_arguments",
        f"No country named {shown} in the data{empty}.{guess} Known countries include {listed}{more}.",
        "Name countries as the data does; segment_summary with group_by 'country' lists them all.")
