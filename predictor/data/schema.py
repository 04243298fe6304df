"""The canonical transaction schema and the adapters that map known sources onto it.

Everything downstream reads the canonical columns only; a new source needs an entry here
(or a column map), never changes in the feature or model code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# Fields a source may supply. `amount` can instead be computed from quantity x unit_price.
REQUIRED_FIELDS: tuple[str, ...] = ("customer_id", "order_id", "timestamp", "amount")
OPTIONAL_FIELDS: tuple[str, ...] = ("quantity", "product_id", "product_name", "category", "country")
CANONICAL_FIELDS: tuple[str, ...] = REQUIRED_FIELDS + OPTIONAL_FIELDS
# Not an output column: only used to compute amount and to drop non-positive prices.
MAP_ONLY_FIELDS: tuple[str, ...] = ("unit_price",)
MAPPABLE_FIELDS: tuple[str, ...] = CANONICAL_FIELDS + MAP_ONLY_FIELDS

# Output columns of `load_transactions`, in order, with their pandas dtypes (docs/CONTRACTS.md).
OUTPUT_DTYPES: dict[str, str] = {
    "customer_id": "string",
    "order_id": "string",
    "timestamp": "datetime64[ns]",
    "amount": "float64",
    "quantity": "float64",
    "product_id": "string",
    "product_name": "string",
    "category": "string",
    "country": "string",
    "is_cancellation": "bool",
    "is_outlier": "bool",
}
OUTPUT_COLUMNS: tuple[str, ...] = tuple(OUTPUT_DTYPES)

SchemaName = Literal["online_retail", "cdnow", "generic"]
SCHEMA_NAMES: tuple[str, ...] = ("online_retail", "cdnow", "generic")

# Timestamp text formats tried, in order, when a column is not ISO 8601. Month-first comes
# before day-first because the common Online Retail CSV exports (Kaggle) are M/D/YYYY; the
# format is chosen for the whole column, so a file with a day > 12 settles the ambiguity.
TIMESTAMP_FORMATS: tuple[str, ...] = (
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y%m%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
)


class SourceSchema(BaseModel):
    """How one known source spells the canonical fields."""

    name: str
    # canonical field -> accepted source column names, first match wins
    columns: dict[str, tuple[str, ...]]
    amount_from_price: bool = Field(False, description="amount = quantity x unit_price")
    description: str = ""


# UCI Online Retail; the second spelling of each column is Online Retail II's, whose rows have
# the same quirks, so both load with schema="online_retail".
ONLINE_RETAIL = SourceSchema(
    name="online_retail",
    columns={
        "customer_id": ("CustomerID", "Customer ID"),
        "order_id": ("InvoiceNo", "Invoice"),
        "timestamp": ("InvoiceDate",),
        "quantity": ("Quantity",),
        "unit_price": ("UnitPrice", "Price"),
        "product_id": ("StockCode",),
        "product_name": ("Description",),
        "country": ("Country",),
    },
    amount_from_price=True,
    description="UCI Online Retail (and Online Retail II) CSV or Parquet",
)

# CDNOW_master.txt: whitespace-separated customer id, yyyymmdd, number of CDs, dollar value.
CDNOW_FIELDS: tuple[str, ...] = ("customer_id", "date", "number_of_cds", "dollar_value")

# Online Retail stock codes that are not products: postage and carriage, fees, manual and
# discount adjustments, samples, bad-debt adjustments, a 0.001 filler line, and gift vouchers
# (money held, not goods bought). DCGS* codes are real goods sold through the dotcom shop.
NON_PRODUCT_CODES: tuple[str, ...] = (
    "POST", "DOT", "C2", "M", "D", "S", "B", "CRUK", "BANK CHARGES", "AMAZONFEE", "PADS",
)
NON_PRODUCT_CODE_PREFIXES: tuple[str, ...] = ("gift_",)
# Invoices starting with A are accounting adjustments ("Adjust bad debt"), C are cancellations.
ADJUSTMENT_INVOICE_PREFIX = "A"
CANCELLATION_INVOICE_PREFIX = "C"
