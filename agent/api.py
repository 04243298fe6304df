"""Agent routes, mounted beside the tool routes by the one HTTP server (valuedesk.server, `valuedesk api`),
so they sit behind the same API key and body limit:

- `POST /v1/agent/chat` {message, session_id?, stream?} -> AgentReply JSON (with the `session_id` to pass
  back for a follow-up; without one the turn starts a fresh session), or server-sent events
  (`stream: true` or `Accept: text/event-stream`): `tool_start`, `tool_end`, `token`, then `answer` or `error`.
- `POST /v1/agent/reset` {session_id}; `GET /v1/agent/info`.
- `POST /v1/chat/completions`: an OpenAI-compatible facade (model "valuedesk"): the last user message is
  the question and the messages before it are the conversation (nothing is kept on the server; `user` is
  not a session); returns a chat.completion object, or chat.completion.chunk events when `stream: true`.

Sessions belong to the caller: the stored id is prefixed with a hash of the caller's bearer key
("anonymous" when the server runs without VALUEDESK_API_KEY), so two keys never share a session.
A session store that is full answers 507 `insufficient_storage`, one that cannot be opened, read or written
503 `storage_unavailable` (the tools' codes for the same failures), with a message and a hint.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from agent.settings import AgentSettings

FACADE_MODEL = "valuedesk"


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=4000)
    session_id: str | None = Field(None, min_length=1, max_length=128, description=(
        "The conversation to continue (the `session_id` of an earlier reply); omit it to start a fresh one."))
    stream: bool = False


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str = Field(min_length=1, max_length=128)


class FacadeMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class FacadeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send temperature, tools, ...; ignored here
    model: str = FACADE_MODEL
    messages: list[FacadeMessage] = Field(min_length=1)
    stream: bool = False
    user: str | None = None


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()


def _error(code: str, message: str, status: int, hint: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "hint": hint}}, status_code=status)


def _store_error(exc: Any) -> JSONResponse:
    return _error(exc.code, str(exc), exc.status, exc.hint)


def caller_owner(settings: AgentSettings, request: Request) -> str:
    """Whose sessions these are: a hash of the bearer key the caller sent (never the key), or
    "anonymous" when the server has no API key (every caller may then claim any key)."""
    from agent.memory import ANONYMOUS_OWNER, owner_for_key

    if not settings.api_key:
        return ANONYMOUS_OWNER
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return owner_for_key(token.strip() if scheme.lower() == "bearer" else None)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


STORE_ERRORS = {503: {"description": "The session store cannot be opened, read or written."},
                507: {"description": "The session store (its disk) is full."}}


def _agent_events(service: Any, message: str, session_id: str | None, owner: str) -> Iterator[bytes]:
    """The agent's events for one question as server-sent events; a refused question ends in `error`."""
    from predictor.errors import ValueDeskError

    try:
        for event in service.stream(message, session_id, owner=owner):
            yield _sse(event.type, event.data)
    except ValueDeskError as exc:
        yield _sse("error", {"message": str(exc)})


def agent_router(settings: AgentSettings, service: Any = None) -> APIRouter:
    """The agent's routes; `service` defaults to the process-wide AgentService (built on first request)."""
    router = APIRouter()
    resolved = [service]

    def get_service():
        if resolved[0] is None:  # looked up once: the service stays the same for the router's life
            from agent.service import get_agent_service

            resolved[0] = get_agent_service(settings)
        return resolved[0]

    store_errors = STORE_ERRORS

    @router.post("/v1/agent/chat", tags=["agent"], responses=store_errors)
    async def chat(body: ChatRequest, request: Request):
        """Ask the agent one question in a session; the reply carries the answer, the tool trace and the
        `session_id` to send with a follow-up (a request without one starts a fresh session)."""
        from agent.memory import SessionStoreError
        from predictor.errors import ValueDeskError

        owner = caller_owner(settings, request)
        wants_sse = body.stream or "text/event-stream" in request.headers.get("accept", "")
        if wants_sse:
            try:  # a store that cannot be read fails before the stream starts, with its status
                await run_in_threadpool(get_service().check_store)
            except SessionStoreError as exc:
                return _store_error(exc)
            return StreamingResponse(iterate_in_threadpool(_agent_events(get_service(), body.message, body.session_id, owner)),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            reply = await run_in_threadpool(lambda: get_service().chat(body.message, body.session_id, owner=owner))
        except SessionStoreError as exc:
            return _store_error(exc)
        except ValueDeskError as exc:
            return _error("invalid_arguments", str(exc), 422)
        return JSONResponse(reply.model_dump(mode="json"))

    @router.post("/v1/agent/reset", tags=["agent"], responses=store_errors)
    async def reset(body: ResetRequest, request: Request):
        """Forget a session's conversation (one of this caller's sessions)."""
        from agent.memory import SessionStoreError

        owner = caller_owner(settings, request)
        try:
            await run_in_threadpool(lambda: get_service().reset(body.session_id, owner=owner))
        except SessionStoreError as exc:
            return _store_error(exc)
        return {"session_id": body.session_id, "reset": True}

    @router.get("/v1/agent/info", tags=["agent"])
    async def info() -> dict[str, Any]:
        """Which backend and model answer, and the data/training window behind the numbers."""
        return await run_in_threadpool(get_service().backend_info)

    _add_completions_route(router, get_service)
    return router



def _add_completions_route(router: APIRouter, get_service) -> None:
    @router.post("/v1/chat/completions", tags=["agent"])
    async def chat_completions(body: FacadeRequest):
        """OpenAI-compatible chat completions: ValueDesk as a model for other apps."""
        from predictor.errors import ValueDeskError

        last = next((i for i in range(len(body.messages) - 1, -1, -1) if body.messages[i].role == "user"), None)
        question = _text(body.messages[last].content) if last is not None else ""
        if not question.strip():
            return _error("invalid_arguments", "messages must contain a user message with text.", 422)
        # The conversation is what the client sends (OpenAI semantics): the user and assistant messages
        # before the question; system, tool and later messages are ignored, and nothing is stored.
        history = [(m.role, _text(m.content)) for m in body.messages[:last] if m.role in ("user", "assistant")]
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            return StreamingResponse(iterate_in_threadpool(_completion_chunks(get_service(), question, history,
                                                                             cid, created)),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            reply = await run_in_threadpool(lambda: get_service().chat(question, history=history))
        except ValueDeskError as exc:
            return _error("invalid_arguments", str(exc), 422)
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": created, "model": FACADE_MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.answer},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "valuedesk": {"tool_calls": [t.model_dump(mode="json") for t in reply.tool_calls], "kind": reply.kind,
                          "unverified": reply.unverified, "backend": reply.backend, "latency_ms": reply.latency_ms},
        })


def _completion_chunks(service: Any, question: str, history: list, cid: str, created: int) -> Iterator[bytes]:
    """The streamed completion as OpenAI chunks: a role chunk, the answer's tokens, a stop chunk, [DONE]."""
    from predictor.errors import ValueDeskError

    def chunk(delta: dict, finish: str | None = None, extra: dict | None = None) -> bytes:
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": FACADE_MODEL,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}
        return f"data: {json.dumps(obj, ensure_ascii=False, default=str)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    streamed = False
    try:
        for event in service.stream(question, history=history):
            if event.type == "token":
                streamed = True
                yield chunk({"content": event.data["text"]})
            elif event.type == "answer":
                if not streamed:
                    yield chunk({"content": event.data["answer"]})
                yield chunk({}, "stop", {"valuedesk": {k: event.data[k] for k in
                                                       ("tool_calls", "kind", "unverified", "backend")}})
            elif event.type == "error":
                yield chunk({"content": event.data.get("message", "error")}, "stop")
    except ValueDeskError as exc:
        yield chunk({"content": str(exc)}, "stop")
    yield b"data: [DONE]\n\n"
