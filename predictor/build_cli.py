"""`valuedesk build`: the subcommand's arguments and handler (the pipeline itself is predictor.build)."""

from __future__ import annotations

import argparse
import hashlib

from predictor.engine import add_engine_arguments, settings_with_engine


def register_build(sub: argparse._SubParsersAction) -> None:
    """Add `valuedesk build` to the CLI."""
    p = sub.add_parser("build", help="score, tier and profile every customer, and index the profiles",
                       description="Build the customer tables from a transaction log (default: the bundled "
                                   "Online Retail data): load, categorise products, score, tier, write profiles "
                                   "and index them. Idempotent: an unchanged input prints 'no changes'.")
    p.add_argument("--data", metavar="PATH", help="transaction file (CSV, CSV.gz or Parquet); default: settings")
    p.add_argument("--schema", metavar="S", help="online_retail, cdnow, generic, shopify (Shopify's orders export) or "
                                                 "orders_lines (an orders file + an order lines file, WooCommerce's "
                                                 "shape; with --lines); default: settings")
    p.add_argument("--map", metavar="M", dest="column_map",
                   help="column map, e.g. customer_id=household_id,order_id=basket_id,...")
    p.add_argument("--rescore", action="store_true", help="score again even if the data and model are unchanged")
    p.add_argument("--rebuild-index", action="store_true", help="rebuild the search index from scratch")
    p.add_argument("--no-index", action="store_true", help="do not touch the search index")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--lines", metavar="PATH", help="with --schema orders_lines: the order lines CSV")
    p.add_argument("--lines-map", metavar="M", default=None,
                   help="its columns, e.g. order_id=order,product_id=sku,product_name=title,quantity=qty,amount=total")
    p.add_argument("--products", metavar="PATH", help="products file (CSV or Parquet) whose names and categories are "
                                                      "joined to the log by product id")
    p.add_argument("--products-map", metavar="M", default=None,
                   help="its columns, e.g. product_id=SKU,product_name=Title,category=Department")
    p.add_argument("--currency", metavar="CODE", help="the log's currency, an ISO 4217 code (USD, EUR, GBP) or a "
                                                      "symbol; recorded in the build and used in every answer")
    p.add_argument("--customers", metavar="PATH", help="customers file with contact data (CSV or Parquet), stored "
                                                        "apart and read only by scoped audience exports")
    p.add_argument("--customers-map", metavar="M", default="customer_id=customer_id,email=email",
                   help="its columns, e.g. customer_id=Customer ID,email=Email,first_name=First Name,phone=Phone")
    add_engine_arguments(p)
    p.set_defaults(handler=run_build)


def run_build(args: argparse.Namespace) -> int:
    """The handler: `args.settings` are the settings the CLI entry read (valuedesk.cli)."""
    from predictor.build import build

    contacts = _load_contacts(args)  # a bad customers file fails before anything is built
    data, schema, column_map, currency = args.data, args.schema, args.column_map, args.currency
    if schema in ("shopify", "orders_lines"):
        data, contacts, found_currency = _import_export(args)
        schema, column_map, currency = "generic", export_log_map(), currency or found_currency
    settings = _with_currency(args.settings, currency)
    report = build(settings_with_engine(settings, args), data_path=data, schema=schema, column_map=column_map,
                   rescore=args.rescore, rebuild_index=args.rebuild_index, with_index=not args.no_index,
                   progress=not args.quiet, products=args.products, products_map=args.products_map)
    print(report.summary())
    if contacts is not None:
        print(_store_contacts(args.settings, contacts))
    return 0


def _with_currency(settings, currency: str | None):
    if not currency:
        return settings
    from predictor.errors import DataError
    from predictor.figures import currency_symbol

    try:
        return settings.model_copy(update={"currency_symbol": currency_symbol(currency)})
    except ValueError as exc:
        raise DataError(str(exc)) from None


def export_log_map() -> dict[str, str]:
    from predictor.data.shopify import COLUMN_MAP

    return dict(COLUMN_MAP)


def _import_export(args: argparse.Namespace):
    """A platform export as a canonical log under data_dir/imports (named by the export's fingerprint, so an
    unchanged export is reused), its contact data and its currency."""
    from predictor.atomic import atomic_path
    from predictor.data.load import source_fingerprint
    from predictor.errors import DataError
    from predictor.suppression import SuppressionList

    if not args.data:
        raise DataError(f"--schema {args.schema} needs --data: the orders CSV of the export.")
    if args.schema == "shopify":
        from predictor.data.shopify import read_shopify

        export, key, name = read_shopify(args.data), source_fingerprint(args.data), "Shopify export"
    else:
        from predictor.data.orders_lines import read_orders_lines

        if not args.lines:
            raise DataError("--schema orders_lines needs --lines: the order lines CSV beside the orders (--data).")
        export = read_orders_lines(args.data, args.lines, args.column_map, args.lines_map)
        key, name = source_fingerprint(args.data) + source_fingerprint(args.lines), "Orders and lines"
    digest = hashlib.sha256(f"{key}:{args.column_map}:{getattr(args, 'lines_map', None)}".encode()).hexdigest()[:16]
    target = args.settings.data_dir / "imports" / f"{args.schema}-{digest}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomic_path(target) as tmp:
        export.lines.to_parquet(tmp, index=False)
    print(f"{name}: {export.lines['order_id'].nunique():,} orders, {len(export.lines):,} lines; "
          f"{export.orders_left_out:,} refunded, voided or cancelled orders left out; currency {export.currency}.")
    return target, SuppressionList(args.settings.data_dir).drop_from(export.contacts), export.currency


def _load_contacts(args: argparse.Namespace):
    if not args.customers:
        return None
    from predictor.customers.contacts import load_contacts, parse_contact_map
    from predictor.suppression import SuppressionList

    frame = load_contacts(args.customers, parse_contact_map(args.customers_map))
    return SuppressionList(args.settings.data_dir).drop_from(frame)


def _store_contacts(settings, contacts) -> str:
    """Contacts saved apart; the line says how many match a built customer (never whose)."""
    import pandas as pd

    from predictor.customers.contacts import save_contacts

    path = save_contacts(settings.data_dir, contacts)
    built = set(pd.read_parquet(settings.customers_path, columns=["customer_id"])["customer_id"].astype(str))
    matched = int(contacts["customer_id"].isin(built).sum())
    return (f"Contacts: {len(contacts):,} customers' contact data stored apart in {path.relative_to(settings.data_dir)} "
            f"({matched:,} match a customer in the log, {len(contacts) - matched:,} do not); only exports by a key "
            "with the export:contact scope read it.")
