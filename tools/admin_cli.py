"""`valuedesk keys` (named, scoped API keys) and `valuedesk audit` (read and verify the audit trail)."""

from __future__ import annotations

import argparse
import json

import pandas as pd

from predictor.errors import ValueDeskError


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys: add (shown once), list, rotate, revoke; each with a name and scopes.")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    add = actions.add_parser("add", help="Make a key; it is printed once and only its hash is stored.")
    add.add_argument("name")
    add.add_argument("--scopes", default="read", help="Comma-separated: read, export, export:contact, admin.")
    actions.add_parser("list", help="Names, scopes and creation times (never the keys).")
    for verb, text in (("rotate", "Replace a key (same name and scopes); the old one stops working at once."),
                       ("revoke", "Remove a key; it stops working at once.")):
        actions.add_parser(verb, help=text).add_argument("name")
    keys.set_defaults(handler=_keys)

    audit = sub.add_parser("audit", help="Read the audit trail of tool calls, or --verify its hash chain.")
    audit.add_argument("--since", default=None, help="Only records from this date or time (ISO 8601).")
    audit.add_argument("--principal", default=None, help="Only this principal's records.")
    audit.add_argument("--verify", action="store_true", help="Check the hash chain; exit 1 when it is broken.")
    audit.set_defaults(handler=_audit)


def _keys(args: argparse.Namespace) -> int:
    from tools.principals import KeyStore, parse_scopes

    store = KeyStore(args.settings.data_dir)
    if args.keys_command == "add":
        key = store.add(args.name, parse_scopes(args.scopes))
        print(f"Key for '{args.name}' ({args.scopes}); shown once, store it now:\n{key}")
    elif args.keys_command == "rotate":
        print(f"New key for '{args.name}'; the old one no longer works:\n{store.rotate(args.name)}")
    elif args.keys_command == "revoke":
        store.revoke(args.name)
        print(f"Revoked '{args.name}'.")
    else:
        for entry in store.entries():
            print(f"{entry['name']}\t{','.join(entry['scopes'])}\t{entry.get('created_at', '')}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from tools.audit import AuditLog

    trail = AuditLog(args.settings.audit_path)
    if args.verify:
        intact, lines, detail = trail.verify()
        print(("intact: " if intact else "BROKEN: ") + detail)
        return 0 if intact else 1
    since = _since(args.since)
    for record in trail.records():
        if args.principal and record.get("principal") != args.principal:
            continue
        if since is not None and pd.Timestamp(record["time"]) < since:
            continue
        print(json.dumps(record, ensure_ascii=False, sort_keys=True))
    return 0


def _since(text: str | None):
    if not text:
        return None
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise ValueDeskError(f"--since '{text}' is not a date; expected ISO 8601, e.g. 2026-12-01") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


