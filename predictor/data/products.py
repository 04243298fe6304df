"""A products file joined to the transaction log at load: product names and categories by product id.

Logs from order systems often carry only a product id (SKU) per line, with names and departments in a
second export. `valuedesk build --products PATH --products-map product_id=SKU,product_name=Title,category=Dept`
reads it here; each line's name and category come from it (a name already on the line is kept when the
file has none). The report counts the lines and ids the file does not know.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from predictor.data.side_files import parse_field_map, read_side_file
from predictor.errors import DataError

PRODUCT_FIELDS = ("product_id", "product_name", "category")


def parse_products_map(text: str) -> dict[str, str]:
    mapping = parse_field_map(text, "--products-map", "product_id=SKU,product_name=Title,category=Department")
    unknown = sorted(set(mapping) - set(PRODUCT_FIELDS))
    if unknown or "product_id" not in mapping or len(mapping) < 2:
        raise DataError(f"--products-map must map product_id and product_name and/or category (got "
                        f"{', '.join(mapping) or 'nothing'}{'; unknown: ' + ', '.join(unknown) if unknown else ''}).")
    return mapping


def load_products(path: Path | str, column_map: dict[str, str]) -> pd.DataFrame:
    """The products file as product_id + product_name and/or category (strings), one row per id."""
    frame = read_side_file(path, column_map, "product_id", "Products file", "--products-map")
    return frame.drop_duplicates("product_id", keep="last").reset_index(drop=True)


def join_products(tx: pd.DataFrame, products: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """`tx` with names and categories from `products`; and how many lines and ids it did not know."""
    if "product_id" not in tx or tx["product_id"].isna().all():
        raise DataError("The transaction log has no product_id column to join the products file on; map it "
                        "with --map product_id=...")
    ids = tx["product_id"].astype(str)
    table = products.set_index("product_id")
    known = ids.isin(table.index)
    out = tx.copy()
    for field in ("product_name", "category"):
        if field in table:
            joined = ids.map(table[field]).replace("", pd.NA)
            current = out[field].astype("object") if field in out else pd.Series(pd.NA, index=out.index, dtype="object")
            out[field] = joined.astype("object").fillna(current)
    stats = {"products": int(len(products)), "lines": int(len(tx)), "unmatched_lines": int((~known).sum()),
             "unmatched_ids": int(ids[~known].nunique())}
    return out, stats


def products_fingerprint(path: Path | str, column_map: dict[str, str]) -> str:
    stat = Path(path).stat()
    return hashlib.sha256(f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{sorted(column_map.items())}"
                          .encode()).hexdigest()[:16]
