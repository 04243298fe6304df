"""`valuedesk` subcommands owned by the tools layer: tool, api, mcp."""

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

    api = sub.add_parser("api", help="Serve the tools (and the agent's chat routes) over HTTP; OpenAPI docs at /docs.")
    api.add_argument("--host", default=None, help="Interface to bind (default VALUEDESK_API_HOST, 127.0.0.1).")
    api.add_argument("--port", type=int, default=None, help="Port (default VALUEDESK_API_PORT, 8000).")
    api.add_argument("--access-log", action="store_true", help="Log every request.")
    api.add_argument("--workers", type=int, default=1,
                     help="Server processes (each holds its own copy of the customers table).")
    api.set_defaults(handler=_api)

    mcp = sub.add_parser("mcp", help="Serve the tools as an MCP server (stdio or streamable HTTP).")
    mcp.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    mcp.add_argument("--host", default="127.0.0.1")
    mcp.add_argument("--port", type=int, default=8765)
    mcp.set_defaults(handler=_mcp)


def _tool(args: argparse.Namespace) -> int:
    from predictor.settings import get_settings
    from tools.json_guard import JSONProblem, parse
    from tools.registry import get_registry

    settings = get_settings()
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


def _api(args: argparse.Namespace) -> int:
    from predictor.settings import get_settings
    from tools.api import serve

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    serve(get_settings(), args.host, args.port, access_log=args.access_log, workers=args.workers)
    return 0


def _mcp(args: argparse.Namespace) -> int:
    from predictor.settings import get_settings
    from tools import mcp_server

    settings = get_settings()
    if args.transport == "stdio":
        mcp_server.serve_stdio(settings)
    else:
        mcp_server.serve_http(settings, args.host, args.port)
    return 0
