"""Shopify's orders export (Admin > Orders > Export, "CSV for Excel, Numbers, or other spreadsheet programs")
as a ValueDesk log, its contact data and its currency.

The export has one row per line item. Order-level columns ("Email", "Financial Status", "Created at",
"Currency", "Billing ...", "Refunded Amount", "Cancelled at") are filled on an order's first row only, so they
are carried down the order by its "Name" (#1001). Columns used:

- "Name": the order id. "Created at" ("2011-12-01 08:26:00 +0000"): the order time.
- "Email": who ordered. The customer id is a hash of the lower-cased address (`shopify-<12 hex>`); the
  address itself goes to the contact data only (predictor/customers/contacts.py), never into the log.
- "Lineitem quantity", "Lineitem price", "Lineitem discount": the line's amount is quantity x price less
  its discount. "Lineitem sku" (or the name when a line has no SKU): the product id; "Lineitem name": the
  product's name.
- "Financial Status": refunded and voided orders, and orders with "Cancelled at", are not purchases and
  are left out; a partially refunded order gets one negative line of its "Refunded Amount".
- "Billing Country": the customer's country. "Currency": the log's currency (the most common one).
- Contact data: "Email", "Billing Name", "Billing Phone" (or "Phone"), "Billing Address1", "Billing City",
  "Billing Zip", "Billing Country".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from predictor.data.side_files import parse_numbers, parse_times
from predictor.errors import DataError

REQUIRED = ("Name", "Email", "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price")
ORDER_LEVEL = ("Email", "Financial Status", "Created at", "Currency", "Billing Name", "Billing Phone", "Phone",
               "Billing Address1", "Billing City", "Billing Zip", "Billing Country", "Refunded Amount", "Cancelled at")
NOT_PURCHASES = {"refunded", "voided"}
# The canonical log the adapter writes, read back through the generic schema with this map.
COLUMN_MAP = {"customer_id": "customer_id", "order_id": "order_id", "timestamp": "timestamp", "amount": "amount",
              "quantity": "quantity", "product_id": "product_id", "product_name": "product_name", "country": "country"}


@dataclass
class ShopifyExport:
    lines: pd.DataFrame  # the canonical log (COLUMN_MAP's columns)
    contacts: pd.DataFrame  # customer_id + contact fields
    currency: str | None
    orders_left_out: int


def customer_key(email: str) -> str:
    return "shopify-" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:12]


def read_shopify(path: Path | str) -> ShopifyExport:
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"Shopify export {path} cannot be read as CSV: {type(exc).__name__}.") from None
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise DataError(f"{path} is not a Shopify orders export: no column {', '.join(map(repr, missing))}; "
                        "expected Shopify's orders CSV (Admin > Orders > Export).")
    orders = _carry_order_fields(raw)
    status = orders.get("Financial Status", pd.Series("", index=orders.index)).str.lower()
    cancelled = orders.get("Cancelled at", pd.Series("", index=orders.index)).ne("")
    kept = orders[~status.isin(NOT_PURCHASES) & ~cancelled & orders["Email"].ne("")]
    lines = _lines(kept, path)
    currency = kept["Currency"].replace("", pd.NA).mode() if "Currency" in kept else pd.Series([], dtype=object)
    return ShopifyExport(lines=pd.concat([lines, _refunds(kept)], ignore_index=True), contacts=_contacts(kept),
                         currency=str(currency.iloc[0]) if len(currency) else None,
                         orders_left_out=int(orders["Name"].nunique() - kept["Name"].nunique()))


def _carry_order_fields(raw: pd.DataFrame) -> pd.DataFrame:
    """Order-level columns copied from each order's first row to its other line items."""
    out = raw.copy()
    for column in (c for c in ORDER_LEVEL if c in out.columns):
        out[column] = out[column].replace("", pd.NA).groupby(out["Name"]).transform("first").fillna("")
    return out


def _lines(orders: pd.DataFrame, path: Path) -> pd.DataFrame:
    quantity = parse_numbers(orders["Lineitem quantity"], "Lineitem quantity", path)
    price = parse_numbers(orders["Lineitem price"], "Lineitem price", path)
    discount = parse_numbers(orders.get("Lineitem discount", pd.Series("0", index=orders.index)), "Lineitem discount", path)
    sku = orders.get("Lineitem sku", pd.Series("", index=orders.index))
    return pd.DataFrame({
        "customer_id": orders["Email"].map(customer_key), "order_id": orders["Name"],
        "timestamp": parse_times(orders["Created at"], "Created at", path),
        "amount": quantity * price - discount, "quantity": quantity,
        "product_id": sku.where(sku.ne(""), orders["Lineitem name"]), "product_name": orders["Lineitem name"],
        "country": orders.get("Billing Country", pd.Series("", index=orders.index))})


def _refunds(orders: pd.DataFrame) -> pd.DataFrame:
    """One negative line per partially refunded order, on its first row's date."""
    if "Refunded Amount" not in orders:
        return pd.DataFrame(columns=list(COLUMN_MAP))
    first = orders.drop_duplicates("Name")
    refunded = pd.to_numeric(first["Refunded Amount"].replace("", "0"), errors="coerce").fillna(0)
    first = first[refunded > 0]
    return pd.DataFrame({
        "customer_id": first["Email"].map(customer_key), "order_id": "C" + first["Name"],
        "timestamp": pd.to_datetime(first["Created at"], utc=True).dt.tz_localize(None),
        "amount": -refunded[refunded > 0], "quantity": -1.0, "product_id": "REFUND", "product_name": "Refund",
        "country": first.get("Billing Country", pd.Series("", index=first.index))})


def _contacts(orders: pd.DataFrame) -> pd.DataFrame:
    first = orders.drop_duplicates("Email", keep="last")
    phone = first.get("Billing Phone", pd.Series("", index=first.index))
    if "Phone" in first:
        phone = phone.where(phone.ne(""), first["Phone"])
    fields = {"email": first["Email"], "full_name": first.get("Billing Name"), "phone": phone,
              "address": first.get("Billing Address1"), "city": first.get("Billing City"),
              "postcode": first.get("Billing Zip"), "country_name": first.get("Billing Country")}
    frame = pd.DataFrame({k: v for k, v in fields.items() if v is not None})
    frame.insert(0, "customer_id", first["Email"].map(customer_key))
    return frame.reset_index(drop=True)
