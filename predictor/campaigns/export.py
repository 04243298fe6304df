"""Audience exports: one row per customer (AUDIENCE_COLUMNS) from a plan or a customers table, as
streamed CSV text or a CSV file under ``<data_dir>/exports`` named for its audience, date and row
count, and the pruning of old exports.

Every column means one thing in every export (docs/CONTRACTS.md, "Audience exports"): `group` says
whether to contact the customer (``treatment``) or hold them out (``control``, campaign exports only,
so the lift can be measured); `campaign`, `offer` and `expected_net_value` are empty where there is
no campaign; numbers have fixed decimals (money 2, churn_risk a 0-1 share with 4); dates are ISO.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from predictor.atomic import atomic_path
from predictor.campaigns.catalogue import CampaignError, closest_hint
from predictor.campaigns.planning import CampaignPlan

# Contact columns (email, phone, consent) would follow customer_id once the customers table carries
# them; it holds none today, so a marketing tool matches rows on customer_id.
AUDIENCE_COLUMNS = ("customer_id", "group", "campaign", "offer", "products", "tier", "lifecycle", "at_risk",
                    "churn_risk", "predicted_value", "value_at_risk", "next_order_date", "expected_net_value")
TREATMENT, CONTROL = "treatment", "control"


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _products_text(value: Any, sep: str) -> str:
    if _missing(value):
        return ""
    if isinstance(value, str):
        return value
    return sep.join(str(v) for v in value)


def _label_text(label: Any) -> str:
    return "" if _missing(label) else str(label)


def _flag_text(flag: Any) -> str:
    """The at_risk flag as an import tool reads it: true, false, or empty when unknown."""
    return "" if _missing(flag) else ("true" if bool(flag) else "false")


def _fixed(decimals: int) -> Callable[[Any], str]:
    """A number with exactly `decimals` decimals ("" when missing; never "-0.00")."""
    def text(value: Any) -> str:
        if _missing(value) or not math.isfinite(float(value)):
            return ""
        return f"{round(float(value), decimals) + 0.0:.{decimals}f}"
    return text


_money_text, _share_text = _fixed(2), _fixed(4)


def _date_text(value: Any) -> str:
    return "" if _missing(value) else pd.Timestamp(value).date().isoformat()


# The customer columns every row carries: (CSV column, customers-table column, CSV text).
_CUSTOMER_COLUMNS = (("tier", "tier", _label_text), ("lifecycle", "lifecycle", _label_text),
                     ("at_risk", "at_risk", _flag_text), ("churn_risk", "churn_risk", _share_text),
                     ("predicted_value", "predicted_value", _money_text),
                     ("value_at_risk", "value_at_risk", _money_text),
                     ("next_order_date", "expected_next_order", _date_text))


_EXPORT_CHUNK = 10_000


def _audience_rows(plan_or_customers: CampaignPlan | pd.DataFrame, customers: pd.DataFrame | None, *,
                   products: Mapping[str, Sequence[str]] | None, include_control: bool, campaign: str | None,
                   product_separator: str) -> Iterator[dict[str, Any]]:
    if isinstance(plan_or_customers, CampaignPlan):
        plan = plan_or_customers
        frame = customers if customers is not None else plan._customers
        yield from _plan_rows(plan, _customer_lookup(frame), products=products, include_control=include_control,
                              campaign=campaign, product_separator=product_separator)
    else:
        yield from _frame_rows(plan_or_customers, products=products, product_separator=product_separator)


def _customer_lookup(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """The exported customer columns (and suggested products when present) by customer id, one row per id."""
    if frame is None:
        return None
    cols = [c for _, c, _ in _CUSTOMER_COLUMNS if c in frame] + (
        ["suggested_products"] if "suggested_products" in frame else [])
    # Only the exported columns are copied (the customers table is wide).
    lookup = frame[["customer_id", *cols]].assign(customer_id=frame["customer_id"].astype(str)).set_index("customer_id")
    return lookup[~lookup.index.duplicated()]


def _customer_text(sub: pd.DataFrame | None, n: int) -> dict[str, list[str]]:
    """Each customer column of a chunk as CSV text (empty where the table lacks it)."""
    return {out: [text(v) for v in sub[col].tolist()] if sub is not None and col in sub else [""] * n
            for out, col, text in _CUSTOMER_COLUMNS}


def _plan_rows(plan: CampaignPlan, lookup: pd.DataFrame | None, *, products: Mapping[str, Sequence[str]] | None,
               include_control: bool, campaign: str | None, product_separator: str) -> Iterator[dict[str, Any]]:
    for camp in _selected(plan, campaign):
        # Treated customers first (highest expected net value first), then the campaign's control group:
        # the same campaign name, flagged control, with nothing to send and no campaign value.
        groups = [(TREATMENT, camp.customer_ids, camp.expected_values, camp.offer_text)]
        if include_control:
            groups.append((CONTROL, camp.control_group_ids, None, ""))
        for group, ids, values, offer in groups:
            # Look customers up a chunk at a time so memory stays flat however large the audience.
            for start in range(0, len(ids), _EXPORT_CHUNK):
                part = ids[start:start + _EXPORT_CHUNK]
                sub = lookup.reindex(part) if lookup is not None else None
                columns = _customer_text(sub, len(part))
                found = (sub["suggested_products"].tolist() if sub is not None and "suggested_products" in sub
                         else [None] * len(part))
                for i, cid in enumerate(part):
                    prods = products.get(cid) if products is not None else found[i]
                    yield {"customer_id": cid, "group": group, "campaign": camp.name, "offer": offer,
                           "products": _products_text(prods, product_separator) if group == TREATMENT else "",
                           **{c: column[i] for c, column in columns.items()},
                           "expected_net_value": _money_text(values[start + i]) if values is not None else ""}


def _selected(plan: CampaignPlan, campaign: str | None) -> list[Any]:
    return [c for c in plan.campaigns if campaign is None or c.name == campaign]


def _frame_rows(frame: pd.DataFrame, *, products: Mapping[str, Sequence[str]] | None,
                product_separator: str) -> Iterator[dict[str, Any]]:
    for start in range(0, len(frame), _EXPORT_CHUNK):
        chunk = frame.iloc[start:start + _EXPORT_CHUNK]
        ids = chunk["customer_id"].astype(str).tolist()
        columns = _customer_text(chunk, len(ids))
        found = chunk["suggested_products"].tolist() if "suggested_products" in chunk else [None] * len(ids)
        for i, cid in enumerate(ids):
            prods = products.get(cid) if products is not None else found[i]
            yield {"customer_id": cid, "group": TREATMENT, "campaign": "", "offer": "",
                   "products": _products_text(prods, product_separator),
                   **{c: column[i] for c, column in columns.items()}, "expected_net_value": ""}


def audience_rows(plan_or_customers: CampaignPlan | pd.DataFrame, customers: pd.DataFrame | None = None, *,
                  products: Mapping[str, Sequence[str]] | None = None, include_control: bool = True,
                  campaign: str | None = None, product_separator: str = "; ") -> Iterator[dict[str, Any]]:
    """One dict per exported customer (columns AUDIENCE_COLUMNS, values as CSV text), produced lazily.

    With a plan: per campaign (only ``campaign`` if given), its treated customers (group 'treatment',
    with offer, products and expected net value), then, unless ``include_control`` is False, its
    control group (group 'control': not to be contacted; no offer, products or value). With a
    customers frame: every row in frame order, group 'treatment', no campaign. Customer columns come
    from ``customers`` (default: the table the plan was made from). Bad arguments fail here, not at
    the first ``next()``.
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


def audience_row_count(plan_or_customers: CampaignPlan | pd.DataFrame, *, include_control: bool = True,
                       campaign: str | None = None) -> int:
    """How many rows ``audience_rows`` yields for the same arguments (known before writing, for the file name)."""
    if isinstance(plan_or_customers, CampaignPlan):
        return sum(len(c.customer_ids) + (len(c.control_group_ids) if include_control else 0)
                   for c in _selected(plan_or_customers, campaign))
    return len(plan_or_customers)


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


def write_audience_csv(rows: Iterable[Mapping[str, Any]], path: str | Path,
                       columns: Sequence[str] = AUDIENCE_COLUMNS) -> int:
    """Stream rows to ``path`` atomically (predictor.atomic); returns the number of data rows.

    The file is created 0600 (owner only: it lists customers); a missing folder is created 0700."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    count = 0
    with atomic_path(path, mode=0o600) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for chunk in _batched(rows, 5_000):
            writer.writerows([row.get(c, "") for c in columns] for row in chunk)
            count += len(chunk)
    return count


def write_new_export(rows: Iterable[Mapping[str, Any]], path: str | Path,
                     columns: Sequence[str] = AUDIENCE_COLUMNS) -> tuple[Path, int]:
    """Write rows as a new export named ``path``, or ``<stem>-v2.csv``, ``-v3`` ... when an earlier export
    holds that name: never over an existing file. Returns the path written and its row count.

    The name is claimed first (an empty 0600 file made with O_EXCL, so two exports at once cannot pick
    the same one), then the CSV replaces it atomically; a failed write removes the claim and the temp
    file, leaving the folder as it was."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for n in itertools.count(1):
        candidate = path if n == 1 else path.with_name(f"{path.stem}-v{n}{path.suffix}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        try:
            return candidate, write_audience_csv(rows, candidate, columns)
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
    raise AssertionError("unreachable")  # itertools.count never ends


# ------------------------------------------------------------------ file names

SLUG_MAX_CHARS = 60


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _number(value: float) -> str:
    return str(int(round(value))) if abs(value - round(value)) < 1e-9 or abs(value) >= 100 else f"{value:g}"


def _range_words(label: str, low: float | None, high: float | None, unit: str = "", scale: float = 1.0) -> str | None:
    if low is None and high is None:
        return None
    lo = None if low is None else _number(low * scale)
    hi = None if high is None else _number(high * scale)
    if lo is not None and hi is not None:
        return f"{label} {lo} to {hi}{unit}"
    return f"{label} over {lo}{unit}" if lo is not None else f"{label} under {hi}{unit}"


def _filter_words(flt: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """A filter in marketer words: the words before "customers" (at risk, stages, segments, tiers) and after
    (countries, then the ranges)."""
    before = {True: ["at risk"], False: ["not at risk"]}.get(flt.get("at_risk"), [])
    for key in ("lifecycle", "segments", "tiers"):
        before += list(flt.get(key) or [])
    after = ["in " + " ".join(flt["countries"])] if flt.get("countries") else []
    ranges = (_range_words("churn", flt.get("min_churn_risk"), flt.get("max_churn_risk"), "pct", 100.0),
              _range_words("value", flt.get("min_value"), flt.get("max_value")),
              _range_words("last order", flt.get("min_recency_days"), flt.get("max_recency_days"), " days ago"))
    return before, after + [r for r in ranges if r]


def audience_slug(flt: Mapping[str, Any] | None = None, plan: str | None = None) -> str:
    """The audience in marketer words as a file-name slug: 'at-risk-gold-customers', 'lapsed-customers-in-germany',
    'gold-win-back-plan' (``plan``: the campaign, goal or playbook a campaign export was planned for).

    ASCII letters, digits and '-' only, at most SLUG_MAX_CHARS, cut at a word; a word said twice
    (at_risk and the lifecycle stage 'at risk') is said once."""
    before, after = _filter_words(dict(flt or {}))
    middle = [plan, "plan"] if plan is not None else ["customers"]
    if plan is None and not before and not after:
        middle = ["all customers"]
    words: list[str] = []
    for part in before + middle + after:
        slug = _slug(str(part))
        if slug and slug not in words:
            words.append(slug)
    text = "-".join(words) or "audience"
    if len(text) > SLUG_MAX_CHARS:
        text = text[:SLUG_MAX_CHARS + 1].rsplit("-", 1)[0].strip("-") or text[:SLUG_MAX_CHARS]
    return text


def export_file_name(slug: str, rows: int, day: date | None = None) -> str:
    """``<slug>-<YYYY-MM-DD>-<rows>.csv``, the day being the server's local date (today by default)."""
    return f"{slug}-{(day or date.today()).isoformat()}-{int(rows)}.csv"


# A temp file is written continuously while its export runs; one untouched this long was left by a
# process that died mid-write (a failed write removes its own).
EXPORT_TMP_GRACE_S = 600.0


def export_dir(folder: str | Path) -> Path:
    """The exports folder (settings.exports_path), created if needed and kept 0700 (exports list customers)."""
    folder = Path(folder)
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
