"""Audience exports: one row per customer (AUDIENCE_COLUMNS) from a plan or a customers table, as
streamed CSV text or a CSV file under ``<data_dir>/exports``, and the pruning of old exports."""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from predictor.atomic import atomic_path
from predictor.campaigns.catalogue import CampaignError, closest_hint
from predictor.campaigns.planning import CampaignPlan

AUDIENCE_COLUMNS = ("customer_id", "tier", "lifecycle", "at_risk", "campaign", "offer", "products", "expected_value")


def _products_text(value: Any, sep: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    return sep.join(str(v) for v in value)


def _tier_text(tier: Any) -> str:
    return "" if tier is None or tier is pd.NA or (isinstance(tier, float) and math.isnan(tier)) else str(tier)


def _flag_text(flag: Any) -> str:
    """The at_risk flag as an import tool reads it: true, false, or empty when unknown."""
    if flag is None or flag is pd.NA or (isinstance(flag, float) and math.isnan(flag)):
        return ""
    return "true" if bool(flag) else "false"


# The customer columns an export row carries besides its campaign: (table column, CSV text).
_LABELS = (("tier", _tier_text), ("lifecycle", _tier_text), ("at_risk", _flag_text))


_EXPORT_CHUNK = 10_000


def _audience_rows(plan_or_customers: CampaignPlan | pd.DataFrame, customers: pd.DataFrame | None, *,
                   products: Mapping[str, Sequence[str]] | None, include_control: bool, campaign: str | None,
                   product_separator: str) -> Iterator[dict[str, Any]]:
    if isinstance(plan_or_customers, CampaignPlan):
        plan = plan_or_customers
        frame = customers if customers is not None else plan._customers
        yield from _plan_rows(plan, _tier_lookup(frame), products=products, include_control=include_control,
                              campaign=campaign, product_separator=product_separator)
    else:
        yield from _frame_rows(plan_or_customers, products=products, product_separator=product_separator)


def _tier_lookup(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """Tier, lifecycle, at_risk (and suggested products when present) by customer id, one row per id."""
    if frame is None:
        return None
    cols = [c for c, _ in _LABELS if c in frame] + (["suggested_products"] if "suggested_products" in frame else [])
    lookup = frame.assign(customer_id=frame["customer_id"].astype(str)).set_index("customer_id")[cols]
    return lookup[~lookup.index.duplicated()]


def _plan_rows(plan: CampaignPlan, lookup: pd.DataFrame | None, *, products: Mapping[str, Sequence[str]] | None,
               include_control: bool, campaign: str | None, product_separator: str) -> Iterator[dict[str, Any]]:
    for camp in plan.campaigns:
        if campaign is not None and camp.name != campaign:
            continue
        groups = [(camp.customer_ids, camp.expected_values, camp.name, camp.offer_text)]
        if include_control:
            groups.append((camp.control_group_ids, [0.0] * len(camp.control_group_ids),
                           f"{camp.name} (control)", ""))
        for ids, values, name, offer in groups:
            # Look customers up a chunk at a time so memory stays flat however large the audience.
            for start in range(0, len(ids), _EXPORT_CHUNK):
                part = ids[start:start + _EXPORT_CHUNK]
                sub = lookup.reindex(part) if lookup is not None else None
                labels = _label_columns(sub, len(part))
                found = (sub["suggested_products"].tolist() if sub is not None and "suggested_products" in sub
                         else [None] * len(part))
                for i, (cid, value, prods) in enumerate(zip(part, values[start:start + _EXPORT_CHUNK], found)):
                    if products is not None:
                        prods = products.get(cid)
                    yield {"customer_id": cid, **{c: column[i] for c, column in labels.items()}, "campaign": name,
                           "offer": offer, "products": _products_text(prods, product_separator),
                           "expected_value": round(float(value), 2)}


def _label_columns(sub: pd.DataFrame | None, n: int) -> dict[str, list[str]]:
    """Each label column of a looked-up chunk as CSV text (empty where the table lacks it)."""
    return {c: [text(v) for v in sub[c].tolist()] if sub is not None and c in sub else [""] * n
            for c, text in _LABELS}


def _frame_rows(frame: pd.DataFrame, *, products: Mapping[str, Sequence[str]] | None,
                product_separator: str) -> Iterator[dict[str, Any]]:
    value_col = "predicted_value" if "predicted_value" in frame else None
    for start in range(0, len(frame), _EXPORT_CHUNK):
        for rec in frame.iloc[start:start + _EXPORT_CHUNK].to_dict("records"):
            cid = str(rec["customer_id"])
            prods = products.get(cid) if products is not None else rec.get("suggested_products")
            value = rec.get(value_col) if value_col else None
            yield {"customer_id": cid, **{c: text(rec.get(c)) for c, text in _LABELS}, "campaign": "", "offer": "",
                   "products": _products_text(prods, product_separator),
                   "expected_value": round(float(value), 2) if value is not None and pd.notna(value) else ""}


def audience_rows(plan_or_customers: CampaignPlan | pd.DataFrame, customers: pd.DataFrame | None = None, *,
                  products: Mapping[str, Sequence[str]] | None = None, include_control: bool = False,
                  campaign: str | None = None, product_separator: str = "; ") -> Iterator[dict[str, Any]]:
    """One dict per exported customer (columns AUDIENCE_COLUMNS), produced lazily.

    With a plan: the treated customers of each campaign (only ``campaign`` if given; with
    ``include_control`` also the control group, as campaign '<name> (control)' with no offer). With a
    customers frame: every row, no campaign, expected value = predicted value. Bad arguments fail here,
    not at the first ``next()``.
    """
    if isinstance(plan_or_customers, CampaignPlan):
        if not all(c.ids_complete for c in plan_or_customers.campaigns):
            raise CampaignError("This plan lists only its first customers, so it cannot be exported.",
                                hint="plan again without list_ids to export every targeted customer")
        if campaign is not None and campaign not in {c.name for c in plan_or_customers.campaigns}:
            raise CampaignError(f"The plan has no campaign '{campaign}'.",
                                hint=closest_hint(campaign, [c.name for c in plan_or_customers.campaigns],
                                                   "campaigns in this plan"), field="campaign")
    elif not isinstance(plan_or_customers, pd.DataFrame) or "customer_id" not in plan_or_customers:
        raise CampaignError("Cannot export an audience without a customer_id column.",
                            hint="pass a campaign plan or the customers table")
    return _audience_rows(plan_or_customers, customers, products=products, include_control=include_control,
                          campaign=campaign, product_separator=product_separator)


def iter_audience_csv(rows: Iterable[Mapping[str, Any]], *, chunk_rows: int = 5_000) -> Iterator[str]:
    """CSV text in chunks (header first) for streaming HTTP responses and downloads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(AUDIENCE_COLUMNS)
    for chunk in _batched(rows, chunk_rows):
        writer.writerows([row.get(c, "") for c in AUDIENCE_COLUMNS] for row in chunk)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _batched(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def write_audience_csv(rows: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    """Stream rows to ``path`` atomically (predictor.atomic); returns the number of data rows.

    The file is created 0600 (owner only: it lists customers); a missing folder is created 0700."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    count = 0
    with atomic_path(path, mode=0o600) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(AUDIENCE_COLUMNS)
        for chunk in _batched(rows, 5_000):
            writer.writerows([row.get(c, "") for c in AUDIENCE_COLUMNS] for row in chunk)
            count += len(chunk)
    return count


# A temp file is written continuously while its export runs; one untouched this long was left by a
# process that died mid-write (a failed write removes its own).
EXPORT_TMP_GRACE_S = 600.0


def export_dir(data_dir: str | Path) -> Path:
    """``<data_dir>/exports``, created if needed and kept 0700 (exports list customers)."""
    folder = Path(data_dir) / "exports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o777 != 0o700:
        os.chmod(folder, 0o700)  # a folder made by an older version (0755)
    return folder


def prune_exports(folder: str | Path, max_age_hours: float, *, now: float | None = None) -> list[str]:
    """Delete audience exports (``*.csv``) older than ``max_age_hours`` and temp files (``.*.tmp``) that
    an interrupted export left behind; returns the names removed. Symlinks and folders are left alone,
    and a file that vanishes meanwhile (another process pruning) or cannot be removed is skipped: pruning
    never stops the export that triggered it."""
    now = time.time() if now is None else now
    max_age_s = float(max_age_hours) * 3600.0
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        is_tmp = name.startswith(".") and name.endswith(".tmp")
        if not (is_tmp or name.endswith(".csv")):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if age > (EXPORT_TMP_GRACE_S if is_tmp else max_age_s):
                os.unlink(entry.path)
                removed.append(name)
        except OSError:
            continue
    return removed
