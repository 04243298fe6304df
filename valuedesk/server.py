"""The one HTTP server: the tools' routes (tools.api) and the agent's routes (agent.api) on one app,
behind the same API key, body limit and error shapes. `valuedesk api` (and its alias `valuedesk
agent-api`) serve it."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the server's stack is imported when it is built, so `valuedesk --help` stays fast
    from fastapi import FastAPI

    from agent.settings import AgentSettings


def build_app(settings: AgentSettings, service: Any = None) -> FastAPI:
    """Tools and agent routes on one app; the agent (or the injected `service`) uses the same registry."""
    from agent.api import agent_router
    from tools.api import create_app
    from tools.registry import get_registry

    registry = service.registry if service is not None else get_registry(settings)
    return create_app(settings, extra_routers=[agent_router(settings, service)], registry=registry)


def app_from_env() -> FastAPI:
    """App factory for multi-process serving: each uvicorn worker builds its app from the environment."""
    from valuedesk.config import load_settings

    return build_app(load_settings())


def serve(settings: AgentSettings, host: str | None = None, port: int | None = None, *,
          access_log: bool = False, workers: int = 1) -> None:
    """Run the app with uvicorn (refusing a non-loopback host without an API key).

    With `workers` > 1, uvicorn starts that many processes, each building its app through
    `app_from_env` (an import string, so the workers can build it) and loading its own customers table.
    """
    import uvicorn

    from tools.api import check_bind

    host = host or settings.api_host
    port = port or settings.api_port
    check_bind(host, settings)
    if workers > 1:
        # Loading a large customers table can keep a worker from answering the supervisor's ping for
        # seconds; the default 5 s would kill and restart it in a loop.
        uvicorn.run("valuedesk.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                    access_log=access_log, log_level="info", timeout_worker_healthcheck=120)
    else:
        uvicorn.run(build_app(settings), host=host, port=port, access_log=access_log, log_level="info")


def _serve(args: argparse.Namespace) -> int:
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    serve(args.settings, args.host, args.port, access_log=args.access_log, workers=args.workers)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """`valuedesk api` and its alias `valuedesk agent-api`."""
    api = sub.add_parser("api", help="Serve the tools (and the agent's chat routes) over HTTP; OpenAPI docs at /docs.")
    api.add_argument("--host", default=None, help="Interface to bind (default VALUEDESK_API_HOST, 127.0.0.1).")
    api.add_argument("--port", type=int, default=None, help="Port (default VALUEDESK_API_PORT, 8000).")
    api.add_argument("--access-log", action="store_true", help="Log every request.")
    api.add_argument("--workers", type=int, default=1,
                     help="Server processes (each holds its own copy of the customers table).")
    api.set_defaults(handler=_serve)

    agent_api = sub.add_parser("agent-api", help="alias of `valuedesk api` (tools and agent routes on one app)")
    agent_api.add_argument("--host", default=None)
    agent_api.add_argument("--port", type=int, default=None)
    agent_api.add_argument("--access-log", action="store_true")
    agent_api.add_argument("--workers", type=int, default=1,
                           help="server processes (each holds its own customers table and agent)")
    agent_api.set_defaults(handler=_serve)
