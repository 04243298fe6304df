"""One short, marketer-readable profile per customer, plus the metadata search filters on.

Profile text is customer data, never instructions: it is built only from numbers and from
names in the transaction log, control and format characters are removed, whitespace is
collapsed, product names are quoted and length-capped, and nothing in it is phrased as
a request to the reader. Downstream code shows it or embeds it; it never executes it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from predictor.errors import ValueDeskError

from predictor.data.categories import FEES, OTHER
from predictor.figures import duration, name, pct, rhythm, times, whole_money

METADATA_COLUMNS = ["tier", "lifecycle", "segment", "country", "predicted_value", "churn_risk", "value_at_risk",
                    "customer_value", "historical_value", "recency_days", "orders", "last_order_date",
                    "last_order_days", "at_risk"]
PROFILE_COLUMNS = ["customer_id", "profile_text", "embedding_text", *METADATA_COLUMNS, "content_hash"]
_EPOCH = pd.Timestamp("1970-01-01")
_MAX_NAME = 60
_SPACE = re.compile(r"\s+")


def clean_text(value: object, max_len: int | None = None) -> str:
    """Printable single-line text: control/format characters dropped, whitespace collapsed."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    text = unicodedata.normalize("NFKC", str(value))
    # Cc (controls: newlines, ESC...), Cf (zero-width and bidi overrides), Cs/Co/Cn: never legitimate here.
    text = "".join(" " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch for ch in text
                   if unicodedata.category(ch) not in {"Cf", "Cs", "Co", "Cn"})
    text = _SPACE.sub(" ", text).strip()
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 1].rstrip() + "…"
    return text


def quote_name(name: object) -> str:
    """A product name as a quoted, capped literal; inner double quotes become single quotes."""
    return '"' + clean_text(name, _MAX_NAME).replace('"', "'") + '"'


def customer_products(transactions: pd.DataFrame, customer_ids: Iterable[str] | None = None,
                      n_categories: int = 3, n_products: int = 5) -> pd.DataFrame:
    """customer_id, top_categories, top_products: by the customer's net spend, fees and outliers left out."""
    cols = ["customer_id", "top_categories", "top_products"]
    tx = transactions
    if "is_outlier" in tx:
        tx = tx.loc[~tx["is_outlier"].fillna(False).astype(bool)]
    ids = pd.Index(pd.Series(tx["customer_id"].unique(), dtype="string") if customer_ids is None
                   else pd.Series(list(customer_ids), dtype="string"), name="customer_id")
    out = pd.DataFrame(index=ids)
    out["top_categories"] = [[] for _ in range(len(out))]
    out["top_products"] = [[] for _ in range(len(out))]
    if tx.empty:
        return out.reset_index()[cols]
    base = pd.DataFrame({"customer_id": tx["customer_id"].astype("string"), "amount": tx["amount"].astype("float64")})
    if "category" in tx and tx["category"].notna().any():
        base["category"] = tx["category"].astype("string")
        spend = base.dropna(subset=["category"])
        spend = spend.loc[~spend["category"].isin([FEES, OTHER])]
        spend = spend.groupby(["customer_id", "category"], observed=True)["amount"].sum()
        spend = spend[spend > 0].reset_index().sort_values(["customer_id", "amount", "category"],
                                                           ascending=[True, False, True])
        top = spend.groupby("customer_id", observed=True).head(n_categories)
        lists = top.groupby("customer_id", observed=True)["category"].agg(list)
        out["top_categories"] = [lists.get(c, []) for c in out.index]
    if "product_name" in tx and tx["product_name"].notna().any():
        base["product_name"] = tx["product_name"].astype("string").str.strip()
        if "category" in base:
            base = base.loc[~base["category"].isin([FEES]).fillna(False)]
        spend = base.dropna(subset=["product_name"]).groupby(["customer_id", "product_name"], observed=True)["amount"].sum()
        spend = spend[spend > 0].reset_index().sort_values(["customer_id", "amount", "product_name"],
                                                           ascending=[True, False, True])
        top = spend.groupby("customer_id", observed=True).head(n_products)
        lists = top.groupby("customer_id", observed=True)["product_name"].agg(list)
        out["top_products"] = [lists.get(c, []) for c in out.index]
    return out.reset_index()[cols]


def _num(x: object, default: float = 0.0) -> float:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return default if math.isnan(v) else v


def _as_list(value: object) -> list:
    if value is None or value is pd.NA:
        return []
    if isinstance(value, float) and math.isnan(value):
        return []
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [v for v in list(value) if v is not None and v is not pd.NA]
    return [value]


def profile_text(row: Mapping, currency: str = "£") -> str:
    """The profile of one customers-table row, in plain sentences (figure names and formats from
    predictor.figures, as every answer says them)."""
    cid = clean_text(row["customer_id"], 40)
    country = clean_text(row.get("country"), 60)
    orders = int(_num(row.get("orders")))
    last = row.get("last_order")
    last_s = pd.Timestamp(last).date().isoformat() if last is not None and not pd.isna(last) else "unknown"
    horizon = int(row["horizon_days"])  # written by scoring from the model bundle; never guessed here
    parts = [
        f"Customer {cid} from {country}." if country else f"Customer {cid}.",
        f"{clean_text(row.get('tier'))} tier, RFM segment {clean_text(row.get('rfm_segment'))}, "
        f"lifecycle stage {clean_text(row.get('lifecycle'))}.",
        f"Customer for {duration(_num(row.get('tenure_days')))} with {orders} order{'s' if orders != 1 else ''}; "
        f"{name('historical_value')} {whole_money(_num(row.get('historical_value')), currency)}, "
        f"{name('revenue_12m')} {whole_money(_num(row.get('revenue_12m')), currency)}, "
        f"{name('aov')} {whole_money(_num(row.get('aov')), currency)}.",
    ]
    gap = _num(row.get("mean_gap_days"), float("nan"))
    cadence = f"Orders {rhythm(gap)} on average; " if orders >= 2 and not math.isnan(gap) else "Single order so far; "
    parts.append(f"{cadence}last order {duration(_num(row.get('recency_days')))} ago ({last_s}).")
    trend = _num(row.get("trend"), float("nan"))
    if not math.isnan(trend) and orders >= 2:
        word = "rising" if trend >= 1.25 else "falling" if trend <= 0.75 else "steady"
        parts.append(f"Spending trend {word}: last 90 days at {times(trend)} their usual rate.")
    parts += _tastes(row, "Favourite categories: ")
    parts.append(
        f"{name('churn_risk').capitalize()} {pct(_num(row.get('churn_risk')))} over the next {horizon} days; "
        f"{name('predicted_value')} {whole_money(_num(row.get('predicted_value')), currency)} "
        f"(likely range {whole_money(_num(row.get('value_p10')), currency)} to "
        f"{whole_money(_num(row.get('value_p90')), currency)}); "
        f"{name('value_at_risk')} {whole_money(_num(row.get('value_at_risk')), currency)}.")
    drivers = [clean_text(d, 120) for d in _as_list(row.get("drivers"))]
    drivers = [d for d in drivers if d]
    if drivers:
        parts.append("Top drivers: " + "; ".join(drivers) + ".")
    return " ".join(parts)


def _tastes(row: Mapping, categories_lead: str) -> list[str]:
    """The favourite categories and products sentences (both texts say them; the lead differs)."""
    parts = []
    cats = [clean_text(c, 40) for c in _as_list(row.get("top_categories"))]
    if cats:
        parts.append(categories_lead + ", ".join(cats) + ".")
    prods = [quote_name(p) for p in _as_list(row.get("top_products"))]
    if prods:
        parts.append("Favourite products: " + ", ".join(prods) + ".")
    return parts


def _cadence_words(orders: int, gap: float) -> str:
    """Order rhythm as words: mean gap and order count only change when the customer buys again."""
    if orders < 2 or math.isnan(gap):
        return "Single order so far."
    rhythm = ("about weekly" if gap <= 10 else "every couple of weeks" if gap <= 21 else
              "about monthly" if gap <= 45 else "every few months" if gap <= 120 else "a couple of times a year")
    count = "a few orders" if orders <= 4 else "many orders" if orders <= 20 else "very many orders"
    return f"Orders {rhythm}, {count} so far."


def embedding_text(row: Mapping) -> str:
    """What a profile is embedded from: tastes and habits that only purchases change.

    Scores, tiers, segments, lifecycle, recency, dates and money move on every rescore and are
    metadata filters anyway; leaving them out means a rescore with unchanged purchases re-embeds
    nothing, and the vector is about what the customer buys rather than how the model rates them.
    """
    parts = _tastes(row, "Mostly buys ")
    parts.append(_cadence_words(int(_num(row.get("orders"))), _num(row.get("mean_gap_days"), float("nan"))))
    country = clean_text(row.get("country"), 60)
    if country:
        parts.append(f"Based in {country}.")
    return " ".join(parts)


def profile_metadata(row: Mapping) -> dict:
    """Flat, typed metadata (str / int / float only, no nulls) for search filters."""
    last = row.get("last_order")
    has_last = last is not None and not pd.isna(last)
    last_ts = pd.Timestamp(last) if has_last else None
    return {
        "tier": clean_text(row.get("tier")) or "Bronze",
        "lifecycle": clean_text(row.get("lifecycle")),
        "segment": clean_text(row.get("rfm_segment")),
        "country": clean_text(row.get("country"), 60) or "Unknown",
        "predicted_value": round(_num(row.get("predicted_value")), 2),
        "churn_risk": round(_num(row.get("churn_risk")), 4),
        "value_at_risk": round(_num(row.get("value_at_risk")), 2),
        "customer_value": round(_num(row.get("customer_value")), 2),
        "historical_value": round(_num(row.get("historical_value")), 2),
        "recency_days": round(_num(row.get("recency_days")), 2),
        "orders": int(_num(row.get("orders"))),
        "last_order_date": last_ts.date().isoformat() if last_ts is not None else "",
        "last_order_days": int((last_ts.normalize() - _EPOCH).days) if last_ts is not None else -1,
        "at_risk": bool(row.get("at_risk")) if not pd.isna(row.get("at_risk", False)) else False,
    }


def content_hash(text: str, metadata: dict) -> str:
    payload = json.dumps({"text": text, "metadata": metadata}, sort_keys=True, ensure_ascii=False,
                         separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def build_profiles(customers: pd.DataFrame, currency: str = "£") -> pd.DataFrame:
    """One row per customer: customer_id, profile_text (display), embedding_text, metadata and content_hash."""
    missing = [c for c in ("customer_id", "horizon_days") if c not in customers.columns]
    if missing:
        raise ValueDeskError(f"the customers table lacks {missing}: profiles state the model's horizon, which "
                             "scoring writes into every row; rebuild with `valuedesk build`")
    rows = []
    for row in customers.to_dict("records"):
        text = profile_text(row, currency)
        meta = profile_metadata(row)
        rows.append({"customer_id": str(row["customer_id"]), "profile_text": text,
                     "embedding_text": embedding_text(row), **meta,
                     "content_hash": content_hash(text, meta)})
    out = pd.DataFrame(rows, columns=PROFILE_COLUMNS)
    return out.astype({"customer_id": "string", "profile_text": "string", "embedding_text": "string", "tier": "string", "lifecycle": "string",
                       "segment": "string", "country": "string", "last_order_date": "string",
                       "content_hash": "string", "orders": "int64", "last_order_days": "int64"})
