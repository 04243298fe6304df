"""Agent routes for the tools' FastAPI app (`valuedesk api` mounts them through the `valuedesk.api_routers`
entry point, so they sit behind the same API key and body limit):

- `POST /v1/agent/chat` {message, session_id, stream?} -> AgentReply JSON, or server-sent events
  (`stream: true` or `Accept: text/event-stream`): `tool_start`, `tool_end`, `token`, then `answer` or `error`.
- `POST /v1/agent/reset` {session_id}; `GET /v1/agent/info`.
- `POST /v1/chat/completions`: an OpenAI-compatible facade (model "valuedesk"): the last user message is
  the question, the `user` field (or "default") the session; returns a chat.completion object, or
  chat.completion.chunk events when `stream: true`.
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

from predictor.settings import Settings

FACADE_MODEL = "valuedesk"


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=4000)
    session_id: str = Field("default", min_length=1, max_length=128)
    stream: bool = False


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str = Field("default", min_length=1, max_length=128)


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


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "hint": None}}, status_code=status)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def agent_router(settings: Settings, service: Any = None) -> APIRouter:
    """The agent's routes; `service` defaults to the process-wide AgentService (built on first request)."""
    router = APIRouter()

    def get_service():
        if service is not None:
            return service
        from agent.service import get_agent_service

        return get_agent_service(settings)

    def events(message: str, session_id: str) -> Iterator[bytes]:
        from predictor.errors import ValueDeskError

        try:
            for event in get_service().stream(message, session_id):
                yield _sse(event.type, event.data)
        except ValueDeskError as exc:
            yield _sse("error", {"message": str(exc)})

    @router.post("/v1/agent/chat", tags=["agent"])
    async def chat(body: ChatRequest, request: Request):
        """Ask the agent one question in a session; the reply carries the answer and the tool trace."""
        from predictor.errors import ValueDeskError

        wants_sse = body.stream or "text/event-stream" in request.headers.get("accept", "")
        if wants_sse:
            return StreamingResponse(iterate_in_threadpool(events(body.message, body.session_id)),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            reply = await run_in_threadpool(get_service().chat, body.message, body.session_id)
        except ValueDeskError as exc:
            return _error("invalid_arguments", str(exc), 422)
        return JSONResponse(reply.model_dump(mode="json"))

    @router.post("/v1/agent/reset", tags=["agent"])
    async def reset(body: ResetRequest) -> dict[str, Any]:
        """Forget a session's conversation."""
        await run_in_threadpool(get_service().reset, body.session_id)
        return {"session_id": body.session_id, "reset": True}

    @router.get("/v1/agent/info", tags=["agent"])
    async def info() -> dict[str, Any]:
        """Which backend and model answer, and the data/training window behind the numbers."""
        return await run_in_threadpool(get_service().backend_info)

    @router.post("/v1/chat/completions", tags=["agent"])
    async def chat_completions(body: FacadeRequest):
        """OpenAI-compatible chat completions: ValueDesk as a model for other apps."""
        from predictor.errors import ValueDeskError

        question = next((_text(m.content) for m in reversed(body.messages) if m.role == "user"), "")
        if not question.strip():
            return _error("invalid_arguments", "messages must contain a user message with text.", 422)
        session = body.user or "default"
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if body.stream:
            def chunks() -> Iterator[bytes]:
                def chunk(delta: dict, finish: str | None = None, extra: dict | None = None) -> bytes:
                    obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": FACADE_MODEL,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}
                    return f"data: {json.dumps(obj, ensure_ascii=False, default=str)}\n\n".encode()

                yield chunk({"role": "assistant", "content": ""})
                streamed = False
                try:
                    for event in get_service().stream(question, session):
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

            return StreamingResponse(iterate_in_threadpool(chunks()), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            reply = await run_in_threadpool(get_service().chat, question, session)
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

    return router

