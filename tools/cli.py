"""`valuedesk` subcommands owned by the tools layer: tool, mcp, keys and audit (tools/admin_cli.py) (`valuedesk api`, which serves the tools
with the agent's routes, is the wiring's: valuedesk.server). Handlers get `args.settings` from the CLI."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add this layer's subcommands."""
    tool = sub.add_parser("tool", help="Call one tool and print its JSON result (or --list the tool schemas).",
                          description="Call a ValueDesk tool, e.g. valuedesk tool find_customers "
                                      "'{\"tiers\": [\"Gold\"], \"min_churn_risk\": 0.5}'")
    tool.add_argument("name", nargs="?", help="Tool name (see --list).")
    tool.add_argument("args", nargs="?", default="{}", help="JSON object of arguments ('-' reads stdin).")
    tool.add_argument("--list", action="store_true", help="Print the tools as OpenAI function-tool JSON schemas.")
    tool.set_defaults(handler=_tool)

    mcp = sub.add_parser("mcp", help="Serve the tools as an MCP server (stdio or streamable HTTP).")
    mcp.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    mcp.add_argument("--host", default="127.0.0.1")
    mcp.add_argument("--port", type=int, default=8765)
    mcp.set_defaults(handler=_mcp)

    from tools import admin_cli

    admin_cli.register(sub)  # keys, audit


def _tool(args: argparse.Namespace) -> int:
    from tools.json_guard import JSONProblem, parse
    from tools.registry import get_registry

    settings = args.settings
    registry = get_registry(settings)
    if args.list:
        print(json.dumps(registry.openai_tools(), indent=2, ensure_ascii=False))
        return 0
    if not args.name:
        print(f"error: name a tool ({', '.join(registry.names())}) or pass --list", file=sys.stderr)
        return 2
    text = sys.stdin.read() if args.args == "-" else args.args
    try:
        # The same strict reader as the HTTP and MCP surfaces: depth, huge numbers, lone surrogates.
        raw = parse(text, settings.max_json_depth) if text.strip() else {}
    except JSONProblem as exc:
        print(json.dumps({"error": {"code": "invalid_arguments", "message": f"Arguments refused: {exc}",
                                    "hint": "Quote the JSON object in single quotes in the shell."}}))
        return 2
    result = registry.call(args.name, raw)
    if result.ok:
        print(json.dumps(result.result, indent=2, ensure_ascii=False))
        return 0
    print(json.dumps({"error": result.error.model_dump(exclude_none=True)}, indent=2, ensure_ascii=False))
    return 2


def _mcp(args: argparse.Namespace) -> int:
    from tools import mcp_server

    settings = args.settings
    if args.transport == "stdio":
        mcp_server.serve_stdio(settings)
    else:
        mcp_server.serve_http(settings, args.host, args.port)
    return 0
