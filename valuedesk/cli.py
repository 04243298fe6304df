"""The `valuedesk` command line. Each layer registers its own subcommands through the
`valuedesk.commands` entry-point group; the wiring adds the ones that span layers (`api`, `agent-api`,
`ui`). Handlers get the settings, read once here, as `args.settings`."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from pydantic import ValidationError

from predictor.errors import ValueDeskError
from valuedesk import bootstrap, forget, server
from valuedesk.config import load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="valuedesk", description="Customer value, churn and campaigns for marketers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for ep in sorted(entry_points(group="valuedesk.commands"), key=lambda e: e.name):
        ep.load()(sub)
    server.register(sub)
    bootstrap.register(sub)
    forget.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.settings = load_settings()
    except ValidationError as exc:  # a VALUEDESK_ variable out of range: say which, without a traceback
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except ValueDeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
