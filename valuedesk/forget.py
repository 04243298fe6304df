"""`valuedesk forget CUSTOMER_ID...`: erase customers from every store, and keep them out of later builds.

In order: the ids go on the suppression list (predictor/suppression.py: salted hashes, honoured by every
load); their contact data goes; agent sessions that mention them are deleted (SQLite or PostgreSQL);
audience files that list them are deleted; a new build version is made from the same source without them
(scores, customers, profiles, transactions and a new index collection), and every older version (which
still holds them, with its index collection) is removed, so `valuedesk model use` can no longer bring
them back. The audit trail records the erasure (how many customers, what was removed) without the ids;
its earlier records hold only keyed pseudonyms of ids (tools/audit.py), never the ids themselves.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from predictor.errors import ValueDeskError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("forget", help="Erase customers from scores, tables, profiles, the index, contact data, "
                                      "sessions and exports; later builds leave them out.")
    p.add_argument("customer_ids", nargs="+", metavar="CUSTOMER_ID")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_forget)


def run_forget(args: argparse.Namespace) -> int:
    summary = forget(args.settings, [str(c).strip() for c in args.customer_ids if str(c).strip()],
                     progress=not args.quiet)
    print(f"Forgot {summary['customers']} customer(s): {summary['new_on_list']} added to the suppression list, "
          f"{summary['contacts']} contact row(s), {summary['sessions']} session(s), {summary['exports']} export "
          f"file(s) and {summary['old_versions']} older build version(s) removed; build {summary['build']} serves "
          "without them.")
    return 0


def forget(settings, customer_ids: list[str], progress: bool = False) -> dict:
    from predictor.build import build
    from predictor.build_state import build_lock, read_build_info
    from predictor.customers.contacts import drop_contacts
    from predictor.layout import current_version
    from predictor.suppression import SuppressionList
    from tools.audit import AuditLog

    if not customer_ids:
        raise ValueDeskError("Name at least one customer id to forget.")
    key = read_build_info(current_version(settings.data_dir)).get("input_key") or {}
    summary = {"customers": len(set(customer_ids)),
               "new_on_list": SuppressionList(settings.data_dir).add(customer_ids),
               "contacts": drop_contacts(settings.data_dir, set(customer_ids)),
               "sessions": _erase_sessions(settings, customer_ids),
               "exports": _erase_exports(Path(settings.exports_path), set(customer_ids))}
    if key:
        build(settings, key.get("source"), key.get("schema"), key.get("column_map") or {}, progress=progress)
        summary["build"] = current_version(settings.data_dir).name
    else:
        summary["build"] = None
    with build_lock(Path(settings.data_dir)):
        summary["old_versions"] = _drop_old_versions(settings)
    AuditLog(settings.audit_path).append({"principal": "local", "surface": "cli", "tool": "forget",
                                        "event": "erasure", "args": {}, "error": None,
                                        "erased": {k: v for k, v in summary.items() if k != "build"}})
    return summary


def _erase_sessions(settings, customer_ids: list[str]) -> int:
    from agent.memory import open_session_store

    store = open_session_store(settings)
    try:
        return store.erase(customer_ids)
    finally:
        store.close()


def _erase_exports(folder: Path, customer_ids: set[str]) -> int:
    """Delete every audience file that lists one of the customers (they are copies, with an expiry)."""
    removed = 0
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        with path.open(newline="", encoding="utf-8") as fh:
            listed = any(row.get("customer_id") in customer_ids for row in csv.DictReader(fh))
        if listed:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _drop_old_versions(settings) -> int:
    """Every version but the serving one, and their index collections: they still hold the erased."""
    from predictor.build_index import activate_index
    from predictor.layout import current_version, prune_versions

    removed = prune_versions(settings.data_dir, keep=1)
    serving = current_version(settings.data_dir)
    try:
        activate_index(settings, serving)  # drops the collections no kept version reads
    except (ValueDeskError, OSError):
        pass  # no index configured; nothing to drop
    return len(removed)

