"""HTTP surface: thin FastAPI routes over the tool registry (valuedesk.server serves them together with
the agent's routes).

One route per tool (`POST /v1/tools/{name}`) so the OpenAPI document carries each tool's real input
and output schema; the body is validated once, by the registry, exactly as the CLI and MCP server do.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from predictor.errors import ValueDeskError
from tools import json_guard
from tools.models import ToolError
from tools.principals import KeyStore, caller_for, current_caller, key_store
from tools.registry import ToolRegistry, ToolSpec, get_registry
from tools.settings import ServingSettings

log = logging.getLogger(__name__)

STATUS = {
    "invalid_arguments": 422, "unknown_tool": 404, "not_found": 404, "not_built": 503,
    "index_unavailable": 503, "campaign_error": 422, "scoring_error": 422, "internal_error": 500,
    "unauthorized": 401, "forbidden": 403, "payload_too_large": 413, "method_not_allowed": 405, "bad_request": 400,
    "insufficient_storage": 507, "storage_unavailable": 503,
}


class ServeError(ValueDeskError):
    """The server cannot start with these settings."""


class ErrorBody(BaseModel):
    error: ToolError


def error_response(code: str, message: str, hint: str | None = None, status: int | None = None,
                   fields: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "hint": hint}
    if fields:
        body["fields"] = fields
    return JSONResponse({"error": body}, status_code=status or STATUS.get(code, 400), headers=headers)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: ServingSettings) -> None:
    """Refuse to expose the tools beyond this machine without an API key."""
    if not is_loopback(host) and not key_store(settings).configured:
        raise ServeError(
            f"Refusing to listen on {host} without an API key: anyone who can reach it could read every "
            "customer. Make one with `valuedesk keys add NAME --scopes read` (or set VALUEDESK_API_KEY; "
            "clients send 'Authorization: Bearer <key>'), or bind 127.0.0.1.")


PARSED_BODY = "valuedesk.json_body"  # scope key: the request body as parsed by BodyGuard
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BODY_LABELS = {"not_utf8": "not UTF-8", "syntax": "invalid JSON", "lone_surrogate": "lone surrogate",
                "too_deep": "nesting too deep", "number_out_of_range": "number out of range"}
_BODY_HINTS = {
    "not_utf8": "Send the body as UTF-8 encoded JSON.",
    "syntax": "Send a JSON object of arguments (Content-Type: application/json).",
    "lone_surrogate": "Strings must be valid Unicode: a \\udXXX escape needs its partner (a surrogate pair).",
    "too_deep": "Flatten the request (VALUEDESK_MAX_JSON_DEPTH sets the limit).",
    "number_out_of_range": "Send integers that fit in 64 bits and numbers a double can hold.",
}


class BodyGuard:
    """Pure ASGI middleware in front of every route (the tools' and the mounted agent routes), run
    before routing so no route ever sees a body it cannot handle:

    - 413 for a body over `limit` bytes, by Content-Length or while a chunked body streams in;
    - for methods that carry a body, a non-empty body is parsed strictly (`tools.json_guard`):
      400 `bad_request` for bytes that are not UTF-8, not JSON, hold a lone surrogate or nest deeper
      than `max_depth`; 422 `invalid_arguments` for numbers out of range. Each says which, and where.

    The parsed value travels in the scope (`PARSED_BODY`) so the tool routes do not parse it again;
    the body bytes are replayed to the app unchanged.
    """

    def __init__(self, app, limit: int, max_depth: int = 64):
        self.app, self.limit, self.max_depth = app, limit, max_depth

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._too_large(scope, receive, send)
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away mid-body
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                return await self._too_large(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if scope.get("method") in BODY_METHODS and body.strip():
            try:
                scope[PARSED_BODY] = json_guard.parse(body, self.max_depth)
            except json_guard.JSONProblem as problem:
                return await self._bad_body(problem)(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the app expects

        await self.app(scope, replay, send)

    def _bad_body(self, problem: json_guard.JSONProblem) -> JSONResponse:
        message = f"Request body refused ({_BODY_LABELS.get(problem.kind, problem.kind)}): {problem.message}"
        fields = [{"field": problem.path or "(body)", "reason": problem.message}]
        hint = _BODY_HINTS.get(problem.kind)
        if problem.kind == "number_out_of_range":  # well-formed JSON, but a value no argument can take
            return error_response("invalid_arguments", message, hint, fields=fields)
        return error_response("bad_request", message, hint, status=400, fields=fields)

    async def _too_large(self, scope, receive, send):
        response = error_response("payload_too_large", f"Request body larger than {self.limit} bytes.",
                                  "Send fewer orders or a narrower request (VALUEDESK_MAX_BODY_BYTES sets the limit).")
        await response(scope, receive, send)


def _openapi_with_tool_inputs(app: FastAPI, registry: ToolRegistry) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for spec in registry.tools.values():
        model_schema = spec.args_model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in model_schema.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components[spec.args_model.__name__] = model_schema
    app.openapi_schema = schema
    return schema


ERROR_RESPONSES = {
    400: {"model": ErrorBody, "description": "The body is not UTF-8 JSON, holds a lone surrogate, or nests "
                                             "too deeply (which, and where, in the message)."},
    401: {"model": ErrorBody, "description": "Missing or wrong API key."},
    403: {"model": ErrorBody, "description": "The key lacks the scope this call needs (`forbidden`)."},
    404: {"model": ErrorBody, "description": "Unknown tool or customer."},
    413: {"model": ErrorBody, "description": "Body too large."},
    422: {"model": ErrorBody, "description": "Invalid arguments, with the field and reason."},
    503: {"model": ErrorBody, "description": "Data, model or index not built or unavailable, or the data "
                                             "directory cannot be written."},
    507: {"model": ErrorBody, "description": "No space left for the file a tool writes."}}


def create_app(settings: ServingSettings, extra_routers: Iterable[APIRouter] = (),
               registry: ToolRegistry | None = None) -> FastAPI:
    """The HTTP app with the tool routes. `extra_routers` (the agent's routes, mounted by the wiring in
    valuedesk.server) sit behind the same key, body limit and error shapes."""
    registry = registry or get_registry(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        try:  # load the customers table before the first request rather than during it
            await run_in_threadpool(registry.warm)
        except ValueDeskError as exc:
            log.warning("tools not ready: %s", exc)
        yield

    app = FastAPI(title="ValueDesk tools", version="1", lifespan=lifespan,
                  description="Customer value, churn and campaign tools. Every route calls the same tool "
                              "functions as the CLI, the MCP server and the agent.")
    guarded = [Depends(_key_check(key_store(settings)))]
    _add_tool_routes(app, registry, settings, guarded)
    for router in extra_routers:
        app.include_router(router, dependencies=guarded, responses={k: ERROR_RESPONSES[k] for k in (400, 401, 413)})
    _add_error_handlers(app)
    app.openapi = lambda: _openapi_with_tool_inputs(app, registry)  # type: ignore[method-assign]
    app.add_middleware(BodyGuard, limit=settings.max_body_bytes, max_depth=settings.max_json_depth)
    return app


def _key_check(store: KeyStore):
    """The dependency that names the caller (request.state.caller and `current_caller`, which the agent's
    tool calls inside the request inherit), or refuses a request without a valid key when keys exist."""
    bearer = HTTPBearer(auto_error=False, description="Required when the server has API keys (`valuedesk keys`).")

    async def check_key(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        header = f"{credentials.scheme} {credentials.credentials}" if credentials is not None else None
        caller = caller_for(store, header, "http")
        if caller is None:
            raise StarletteHTTPException(401, "Missing or wrong API key.")
        request.state.caller = caller
        current_caller.set(caller)

    return check_key


def _add_tool_routes(app: FastAPI, registry: ToolRegistry, settings: ServingSettings, guarded: list) -> None:
    """/health, /v1/tools and one POST route per tool, each a thin call of the registry."""
    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "built": settings.customers_path.exists(), "tools": registry.names()}

    tool_list: list[dict[str, Any]] = []

    @app.get("/v1/tools", tags=["tools"], dependencies=guarded, responses={401: ERROR_RESPONSES[401]})
    async def list_tools() -> dict[str, Any]:
        """The tools as OpenAI function-tool JSON schemas (strict mode)."""
        if not tool_list:
            tool_list.extend(registry.openai_tools())
        return {"tools": tool_list}

    for spec in registry.tools.values():
        app.add_api_route(
            f"/v1/tools/{spec.name}", _tool_endpoint(registry, spec), methods=["POST"], name=spec.name,
            tags=["tools"], summary=spec.description.split("\n")[0], description=spec.description,
            response_model=spec.result_model, responses=ERROR_RESPONSES, dependencies=guarded,
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{spec.args_model.__name__}"}}}}})

    @app.post("/v1/tools/{name}", include_in_schema=False, dependencies=guarded)
    async def unknown_tool(name: str) -> Response:
        return error_response("unknown_tool", f"There is no tool named '{name}'.",
                              f"Available tools: {', '.join(registry.names())} (GET /v1/tools).")


def _tool_endpoint(registry: ToolRegistry, spec: ToolSpec):
    async def endpoint(request: Request) -> Response:
        # BodyGuard parsed (and vetted) a non-empty body before routing; an empty body means no arguments.
        args = request.scope.get(PARSED_BODY, {})
        if not isinstance(args, dict):
            return error_response("invalid_arguments", "The body must be a JSON object of arguments.",
                                  fields=[{"field": "(body)", "reason": "not an object"}])
        if spec.fast:
            # Milliseconds of numpy work: cheaper inline than a worker-thread hop.
            result, err = registry.run(spec.name, args, request.state.caller)
        else:
            result, err = await run_in_threadpool(registry.run, spec.name, args, request.state.caller)
        if err is None:
            return Response(result.__pydantic_serializer__.to_json(result), media_type="application/json")
        return error_response(err.code, err.message, err.hint, fields=err.fields)

    return endpoint


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as {error: {code, message, hint}}; never a stack trace."""
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "bad_request")
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return error_response(code, str(exc.detail), status=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        fields = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "(body)",
                   "reason": str(e.get("msg", "invalid"))} for e in exc.errors()]
        return error_response("invalid_arguments", "; ".join(f"{f['field']}: {f['reason']}" for f in fields),
                              fields=fields)

    @app.exception_handler(ValueDeskError)
    async def domain_error(_request: Request, exc: ValueDeskError) -> Response:
        return error_response("invalid_arguments", str(exc))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response("internal_error", "The server failed to answer this request.",
                              "This is a bug; the server log has the details.")
