"""`valuedesk` command line. Each package registers its own subcommands through the
`valuedesk.commands` entry-point group, so this module never imports downstream layers."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from predictor.errors import ValueDeskError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="valuedesk", description="Customer value, churn and campaigns for marketers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for ep in sorted(entry_points(group="valuedesk.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ValueDeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def register(sub: argparse._SubParsersAction) -> None:
    """Predictor subcommands: evaluate, score, build. Filled in by predictor.commands."""
    from predictor import commands

    commands.register(sub)


if __name__ == "__main__":
    sys.exit(main())
