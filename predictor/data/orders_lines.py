"""An "orders + order lines" export in two files (WooCommerce's shape, and most order systems') as a ValueDesk
log, its contact data and its currency.

Defaults follow WooCommerce's order export columns; `--map` and `--lines-map` rename them for other systems.
- Orders file: "Order ID", "Order Date", "Order Status", "Customer User ID" (0 or empty for a guest, who is
  then known by a hash of "Billing Email"), "Order Currency", "Billing Country", and as contact data
  "Billing Email", "Billing First Name", "Billing Last Name", "Billing Phone", "Billing Address 1",
  "Billing City", "Billing Postcode".
- Lines file: "Order ID", "Product ID", "Item Name", "Quantity", "Line Total" (the line's amount after
  discounts, before tax).
Orders whose status is cancelled, refunded, failed, pending or draft are not purchases and are left out;
refunded orders appear as such in WooCommerce (a partial refund is not in this export shape).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from predictor.data.side_files import parse_field_map, parse_numbers, parse_times, read_side_file
from predictor.errors import DataError

ORDER_FIELDS = {"order_id": "Order ID", "timestamp": "Order Date", "status": "Order Status",
                "customer_id": "Customer User ID", "email": "Billing Email", "currency": "Order Currency",
                "country": "Billing Country", "first_name": "Billing First Name", "last_name": "Billing Last Name",
                "phone": "Billing Phone", "address": "Billing Address 1", "city": "Billing City",
                "postcode": "Billing Postcode"}
LINE_FIELDS = {"order_id": "Order ID", "product_id": "Product ID", "product_name": "Item Name",
               "quantity": "Quantity", "amount": "Line Total"}
NOT_PURCHASES = {"cancelled", "refunded", "failed", "pending", "draft", "checkout-draft", "trash"}
CONTACT = ("email", "first_name", "last_name", "phone", "address", "city", "postcode")


@dataclass
class OrdersLinesExport:
    lines: pd.DataFrame  # canonical log: customer_id, order_id, timestamp, amount, quantity, product_*, country
    contacts: pd.DataFrame
    currency: str | None
    orders_left_out: int
    lines_without_order: int


def _mapping(defaults: dict[str, str], text: str | None, flag: str) -> dict[str, str]:
    mapping = {**defaults, **(parse_field_map(text, flag, "order_id=id,timestamp=created_at") if text else {})}
    unknown = sorted(set(mapping) - set(defaults))
    if unknown:
        raise DataError(f"{flag} names unknown field(s) {', '.join(unknown)}; expected some of {', '.join(defaults)}.")
    return mapping


def _present(path: Path, mapping: dict[str, str], required: tuple[str, ...]) -> dict[str, str]:
    """The mapping restricted to the file's columns; the required ones must be there."""
    columns = set(pd.read_csv(path, dtype=str, nrows=0).columns)
    return {f: c for f, c in mapping.items() if f in required or c in columns}


def read_orders_lines(orders_path: Path | str, lines_path: Path | str, orders_map: str | None = None,
                      lines_map: str | None = None) -> OrdersLinesExport:
    orders_path, lines_path = Path(orders_path), Path(lines_path)
    for path in (orders_path, lines_path):
        if not path.is_file():
            raise DataError(f"{path} does not exist; expected the orders CSV (--data) and the order lines CSV (--lines).")
    omap = _present(orders_path, _mapping(ORDER_FIELDS, orders_map, "--map"), ("order_id", "timestamp"))
    lmap = _present(lines_path, _mapping(LINE_FIELDS, lines_map, "--lines-map"),
                    ("order_id", "product_id", "quantity", "amount"))
    orders = read_side_file(orders_path, omap, "order_id", "Orders file", "--map")
    lines = read_side_file(lines_path, lmap, "order_id", "Order lines file", "--lines-map")
    orders["customer"] = _customer(orders)
    status = orders.get("status", pd.Series("", index=orders.index)).str.lower().str.removeprefix("wc-")
    kept = orders[~status.isin(NOT_PURCHASES) & orders["customer"].ne("")]
    # Rows named as in the files: a line's row in the lines file, its order's row in the orders file.
    joined = lines.rename_axis("line_row").reset_index().merge(
        kept.rename_axis("order_row").reset_index(), on="order_id", how="inner", suffixes=("", "_order"))
    line_row = lambda i: int(joined.at[i, "line_row"]) + 2  # noqa: E731
    order_row = lambda i: int(joined.at[i, "order_row"]) + 2  # noqa: E731
    log = pd.DataFrame({
        "customer_id": joined["customer"], "order_id": joined["order_id"],
        "timestamp": parse_times(joined["timestamp"], omap["timestamp"], orders_path, order_row),
        "amount": parse_numbers(joined["amount"], lmap["amount"], lines_path, line_row),
        "quantity": parse_numbers(joined["quantity"], lmap["quantity"], lines_path, line_row),
        "product_id": joined["product_id"],
        "product_name": joined.get("product_name", joined["product_id"]),
        "country": joined.get("country", pd.Series("", index=joined.index))})
    currency = kept["currency"].replace("", pd.NA).mode() if "currency" in kept else pd.Series([], dtype=object)
    contacts = kept.drop_duplicates("customer", keep="last")
    contacts = pd.DataFrame({"customer_id": contacts["customer"],
                             **{f: contacts[f] for f in CONTACT if f in contacts}}).reset_index(drop=True)
    return OrdersLinesExport(lines=log, contacts=contacts, currency=str(currency.iloc[0]) if len(currency) else None,
                             orders_left_out=int(len(orders) - len(kept)),
                             lines_without_order=int((~lines["order_id"].isin(orders["order_id"])).sum()))


def _customer(orders: pd.DataFrame) -> pd.Series:
    """The account id, or for a guest order (0 or empty) a hash of the billing e-mail; "" when neither."""
    account = orders.get("customer_id", pd.Series("", index=orders.index)).replace("0", "")
    email = orders.get("email", pd.Series("", index=orders.index)).str.lower()
    guest = email.map(lambda e: "guest-" + hashlib.sha256(e.encode()).hexdigest()[:12] if e else "")
    return account.where(account.ne(""), guest)
