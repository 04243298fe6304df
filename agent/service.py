"""The agent service every surface uses (agent API, `valuedesk chat`, the eval harness, ui.py).

See docs/CONTRACTS.md, section "Agent". One service per process (`get_agent_service`), built lazily:
the chat model, the agent graph and the session store are created on first use, never at import.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from pydantic import BaseModel, Field

from predictor.errors import ValueDeskError
from predictor.settings import Settings, get_settings

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000


class AgentInputError(ValueDeskError):
    """The question or session id cannot be used."""


class ToolCallTrace(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    duration_ms: float = 0.0
    error: dict[str, Any] | None = Field(None, description="{code, message, hint} when the tool failed.")


class AgentReply(BaseModel):
    answer: str
    tool_calls: list[ToolCallTrace] = Field(default_factory=list)
    backend: str
    model: str | None = None
    latency_ms: float
    unverified: list[str] = Field(default_factory=list,
                                  description="Numbers/ids in the answer found in no tool output of this question.")
    kind: Literal["answer", "clarify", "refuse", "error"] = "answer"


class AgentEvent(BaseModel):
    type: Literal["tool_start", "tool_end", "token", "answer", "error"]
    data: dict[str, Any] = Field(default_factory=dict)


class AgentService:
    """Answers questions with the configured backend; `model`, `registry` and `memory` may be injected (tests)."""

    def __init__(self, settings: Settings, *, registry: Any = None, model: Any = None, memory: Any = None,
                 backend: str | None = None):
        self.settings = settings
        self._registry = registry
        self._model = model
        self._memory = memory
        self._backend_override = backend
        self._graph = None
        self._build_lock = threading.Lock()
        self._session_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # ------------------------------------------------------------ lazy parts

    @property
    def registry(self):
        if self._registry is None:
            from tools.registry import get_registry

            self._registry = get_registry(self.settings)
        return self._registry

    @property
    def memory(self):
        if self._memory is None:
            from agent.memory import SessionMemory

            self._memory = SessionMemory(self.settings)
        return self._memory

    def _info(self):
        from agent.backends import BackendInfo, backend_info

        if self._model is not None and self._backend_override:
            return BackendInfo(self._backend_override, getattr(self._model, "model_name", None)
                               or type(self._model).__name__, None)
        return backend_info(self.settings)

    @property
    def graph(self):
        if self._graph is None:
            with self._build_lock:
                if self._graph is None:
                    from agent.backends import build_chat_model
                    from agent.graph import build_agent, system_prompt

                    info = self._info()
                    model = self._model or build_chat_model(self.settings, registry=self.registry)
                    prompt = system_prompt(self.settings, self._data_facts())
                    self._graph = build_agent(model, self.registry, self.settings, prompt=prompt,
                                              checkpointer=self.memory.checkpointer,
                                              strict_tools=info.backend in ("vllm", "openai"),
                                              few_shot=self.settings.agent_few_shot and info.backend != "offline")
        return self._graph

    def _data_facts(self) -> dict[str, Any]:
        try:
            meta = dict(self.registry.deps.bundle.metadata)
        except Exception:  # noqa: BLE001 - facts for the prompt are optional; tools report missing data
            return {}
        rng = meta.get("data_range") or {}
        win = meta.get("training_window") or {}
        return {"data_range": f"{rng.get('start', '?')} to {rng.get('end', '?')}" if rng else None,
                "training_window": f"{win.get('first_cutoff', '?')} to {win.get('last_cutoff', '?')}" if win else None}

    def backend_info(self) -> dict[str, Any]:
        info = self._info()
        facts = self._data_facts()
        return {"backend": info.backend, "model": info.model, "base_url": info.base_url,
                "training_window": facts.get("training_window"), "data_range": facts.get("data_range")}

    def reset(self, session_id: str) -> None:
        self.memory.reset(_session(session_id))

    # ------------------------------------------------------------ answering

    def chat(self, message: str, session_id: str = "default") -> AgentReply:
        last: AgentEvent | None = None
        for event in self._run(message, session_id, tokens=False):
            last = event
        if last is not None and last.type == "answer":
            return AgentReply.model_validate(last.data)
        data = last.data if last is not None else {}
        info = self._info()
        return AgentReply(answer=data.get("message", "The agent ended without an answer."), backend=info.backend,
                          model=info.model, latency_ms=data.get("latency_ms", 0.0), kind="error",
                          tool_calls=[ToolCallTrace(**t) for t in data.get("tool_calls", [])])

    def stream(self, message: str, session_id: str = "default") -> Iterator[AgentEvent]:
        """Tool start/end and answer-token events as they happen; the last event is `answer` or `error`."""
        return self._run(message, session_id, tokens=True)

    def _lock_for(self, session_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._session_locks.setdefault(session_id, threading.Lock())

    def _run(self, message: str, session_id: str, *, tokens: bool) -> Iterator[AgentEvent]:
        message = _message(message)
        session_id = _session(session_id)
        started = time.perf_counter()
        info = self._info()
        traces: list[dict[str, Any]] = []
        with self._lock_for(session_id):
            try:
                graph = self.graph
                config = {"configurable": {"thread_id": session_id},
                          "recursion_limit": 4 * self.settings.agent_max_steps + 4}
                human = HumanMessage(message, id=str(uuid.uuid4()))
                modes = ["custom", "messages"] if tokens else ["custom"]
                for mode, chunk in graph.stream({"messages": [human]}, config, stream_mode=modes):
                    if mode == "custom" and isinstance(chunk, dict) and chunk.get("type") in ("tool_start", "tool_end"):
                        if chunk["type"] == "tool_end":
                            traces.append(chunk["data"])
                        yield AgentEvent(type=chunk["type"], data=chunk["data"])
                    elif mode == "messages":
                        msg, meta = chunk
                        if (isinstance(msg, AIMessageChunk) and meta.get("langgraph_node") == "model"
                                and isinstance(msg.content, str) and msg.content):
                            yield AgentEvent(type="token", data={"text": msg.content})
                messages = graph.get_state(config).values.get("messages", [])
                reply = self._reply(messages, human.id, info, started)
            except ValueDeskError as exc:
                yield _error(str(exc), started, traces)
                return
            except Exception as exc:  # noqa: BLE001 - an LLM/network failure must end the stream with an event
                log.exception("agent failed")
                yield _error(_describe(exc, info), started, traces)
                return
        yield AgentEvent(type="answer", data=reply.model_dump(mode="json"))

    def _reply(self, messages: list, human_id: str, info, started: float) -> AgentReply:
        start = next((i for i, m in enumerate(messages) if getattr(m, "id", None) == human_id), None)
        turn = messages[start + 1:] if start is not None else []
        traces = [ToolCallTrace(**m.artifact) for m in turn
                  if isinstance(m, ToolMessage) and isinstance(m.artifact, dict) and "name" in m.artifact]
        final = next((m for m in reversed(turn) if isinstance(m, AIMessage) and not m.tool_calls), None)
        if final is None:
            raise AgentStopped(f"The agent stopped after {self.settings.agent_max_steps} steps without an answer; "
                               "ask a narrower question (or raise VALUEDESK_AGENT_MAX_STEPS).")
        from agent.graph import text_of

        kind = final.additional_kwargs.get("valuedesk_kind", "answer")
        return AgentReply(answer=text_of(final).strip(), tool_calls=traces, backend=info.backend, model=info.model,
                          latency_ms=round((time.perf_counter() - started) * 1000, 3),
                          unverified=list(final.additional_kwargs.get("valuedesk_unverified", [])),
                          kind=kind if kind in ("answer", "clarify", "refuse", "error") else "answer")


class AgentStopped(ValueDeskError):
    """The agent used its step budget without answering."""


def _message(message: Any) -> str:
    if not isinstance(message, str) or not message.strip():
        raise AgentInputError("The question is empty; ask something like 'Who are my at-risk top customers?'.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise AgentInputError(f"The question is {len(message)} characters long; keep it under {MAX_MESSAGE_CHARS}.")
    return message.strip()


def _session(session_id: Any) -> str:
    session_id = str(session_id or "default").strip()
    if len(session_id) > 128 or not session_id.isprintable():
        raise AgentInputError("session_id must be printable text of at most 128 characters.")
    return session_id


def _error(message: str, started: float, traces: list[dict[str, Any]]) -> AgentEvent:
    return AgentEvent(type="error", data={"message": message, "tool_calls": traces,
                                          "latency_ms": round((time.perf_counter() - started) * 1000, 3)})


def _describe(exc: Exception, info) -> str:
    from langgraph.errors import GraphRecursionError

    if isinstance(exc, GraphRecursionError):
        return "The agent ran out of steps without an answer; ask a narrower question."
    name = type(exc).__name__
    if info.backend in ("vllm", "openai") and ("Connection" in name or "Timeout" in name or "APIError" in name
                                               or "APIStatusError" in name or "NotFound" in name):
        hint = "start it with `valuedesk serve-llm`" if info.backend == "vllm" else "check VALUEDESK_LLM_BASE_URL"
        return f"The {info.backend} LLM at {info.base_url} did not answer ({name}: {exc}); {hint}."
    return f"The agent failed unexpectedly ({name}: {exc}); the server log has the details."


_services: dict[int, AgentService] = {}
_services_lock = threading.Lock()


def get_agent_service(settings: Settings | None = None) -> AgentService:
    """The process-wide agent service for these settings (built on first use, never at import)."""
    settings = settings or get_settings()
    with _services_lock:
        service = _services.get(id(settings))
        if service is None:
            service = _services[id(settings)] = AgentService(settings)
        return service
