"""Replaying cases against a chat backend: each case in a fresh session, each turn timed, traced and
scored; token counts from the backend's usage figures or, failing that, its tokenizer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel

from agent.eval.cases import Case
from agent.eval.references import Call, as_call
from agent.eval.report import summarise
from agent.eval.scoring import CaseResult, TurnResult, score_turn

TokenCounter = Callable[[str], "int | None"]


class ChatService(Protocol):
    def chat(self, message: str, session_id: str = "default") -> Any: ...


def _completion_tokens(reply: Any) -> int | None:
    usage = getattr(reply, "usage", None)
    if usage is None and isinstance(reply, dict):
        usage = reply.get("usage")
    if isinstance(usage, BaseModel):
        usage = usage.model_dump()
    if isinstance(usage, dict):
        value = usage.get("completion_tokens", usage.get("output_tokens"))
        return int(value) if isinstance(value, (int, float)) else None
    return None


def vllm_token_counter(base_url: str, model: str | None, timeout_s: float = 10.0) -> TokenCounter:
    """Counts an answer's tokens with the served model's own tokenizer (vLLM's POST /tokenize), for
    backends whose replies carry no usage figures. Returns None for a text it could not count."""
    import httpx  # here, not at the top: `valuedesk --help` imports this package and httpx is slow to load

    root = base_url.rstrip("/").removesuffix("/v1")
    client = httpx.Client(timeout=timeout_s)

    def count(text: str) -> int | None:
        try:
            resp = client.post(f"{root}/tokenize", json={"model": model, "prompt": text, "add_special_tokens": False})
            resp.raise_for_status()
            return int(resp.json()["count"])
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            return None

    return count


class _Reply(BaseModel):
    """What one chat call gave back, in the shape scoring needs."""

    calls: list[Call] = []
    answer: str = ""
    kind: str = "error"
    unverified: list[str] = []
    raw: Any = None
    error: str | None = None
    latency_ms: float = 0.0


def _ask(service: ChatService, message: str, session: str) -> _Reply:
    start = time.perf_counter()
    try:
        reply = service.chat(message, session_id=session)
    except Exception as exc:  # noqa: BLE001 - one broken turn is a measured failure, not a crash
        latency = (time.perf_counter() - start) * 1000
        return _Reply(error=f"{type(exc).__name__}: {exc}", latency_ms=latency)
    latency = (time.perf_counter() - start) * 1000
    if reply is None:
        return _Reply(latency_ms=latency)
    return _Reply(calls=[as_call(t) for t in (getattr(reply, "tool_calls", None) or [])],
                  answer=getattr(reply, "answer", "") or "", kind=getattr(reply, "kind", "answer") or "answer",
                  unverified=list(getattr(reply, "unverified", None) or []), raw=reply, latency_ms=latency)


def _count_tokens(result: TurnResult, reply: _Reply, token_counter: TokenCounter | None) -> None:
    result.completion_tokens = _completion_tokens(reply.raw)
    if result.completion_tokens is not None:
        result.tokens_source = "usage"
    elif token_counter is not None and reply.raw is not None and reply.answer:
        result.completion_tokens = token_counter(reply.answer)
        result.tokens_source = "tokenize" if result.completion_tokens is not None else None


def run_case(service: ChatService, case: Case, run_id: str, token_counter: TokenCounter | None = None) -> CaseResult:
    """Replay a case's turns in one fresh session and score each."""
    session = f"eval-{run_id}-{case.id}"
    reset = getattr(service, "reset", None)
    if callable(reset):
        reset(session)
    before: list[list[Call]] = []
    results: list[TurnResult] = []
    for i, turn in enumerate(case.turns):
        reply = _ask(service, turn.user, session)
        result = score_turn(turn.expect, turn.user, reply.answer, reply.kind, reply.calls, before,
                            earlier_users=[t.user for t in case.turns[:i]])
        result.turn, result.latency_ms = i, reply.latency_ms
        # An "error" reply (LLM unreachable, context overflow, ...) is a failed turn with its message kept.
        result.error = reply.error or (f"agent error: {reply.answer[:300]}" if reply.kind == "error" else None)
        result.agent_unverified = reply.unverified
        _count_tokens(result, reply, token_counter)
        if result.error:
            result.passed = False
        results.append(result)
        before.append(reply.calls)
    if callable(reset):
        reset(session)
    return CaseResult(id=case.id, tags=case.tags, passed=all(t.passed for t in results), turns=results)


def run_eval(service: ChatService, cases: list[Case], *, backend: str, model: str | None = None,
             queries: str | None = None, progress: Callable[[CaseResult], None] | None = None,
             token_counter: TokenCounter | None = None) -> dict[str, Any]:
    """Replay every case and return the report (see `report.summarise`)."""
    run_id = uuid.uuid4().hex[:8]
    results = []
    for case in cases:
        result = run_case(service, case, run_id, token_counter)
        results.append(result)
        if progress:
            progress(result)
    return summarise(results, backend=backend, model=model, queries=queries)
