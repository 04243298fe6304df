"""The agent service every surface uses (agent API, `valuedesk chat`, the eval harness, ui.py).

See docs/CONTRACTS.md, section "Agent". One service per process (`get_agent_service`), built lazily:
the chat model, the agent graph and the session store are created on first use, never at import.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from pydantic import BaseModel, Field

from agent.memory import LOCAL_OWNER
from agent.settings import AgentSettings
from agent.turns import MAX_ANSWER_CHARS
from predictor.errors import ValueDeskError
from tools.registry import PerSettings

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
    session_id: str | None = Field(None, description=(
        "The session this turn was stored in (pass it back to follow up); None when the caller sent the "
        "history itself."))


class AgentEvent(BaseModel):
    type: Literal["tool_start", "tool_end", "token", "answer", "error"]
    data: dict[str, Any] = Field(default_factory=dict)


class AgentService:
    """Answers questions with the configured backend; `model`, `registry` and `memory` may be injected (tests)."""

    def __init__(self, settings: AgentSettings, *, registry: Any = None, model: Any = None, memory: Any = None,
                 backend: str | None = None):
        self.settings = settings
        self._registry = registry
        self._model = model
        self._memory = memory
        self._backend_override = backend
        self._graph = None
        self._chat_model: Any = None
        self._build_lock = threading.Lock()
        self._memory_lock = threading.Lock()
        self._locks = _KeyedLocks()

    # ------------------------------------------------------------ lazy parts

    @property
    def registry(self):
        if self._registry is None:
            from tools.registry import get_registry

            self._registry = get_registry(self.settings)
        return self._registry

    @property
    def memory(self):
        """The session store, SQLite or PostgreSQL (opened on first use; a failed open is retried on the next turn)."""
        if self._memory is None:
            with self._memory_lock:
                if self._memory is None:
                    from agent.memory import open_session_store

                    self._memory = open_session_store(self.settings)
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
                    # No checkpointer: the session store keeps finished turns only and feeds them back
                    # as input messages (agent/memory.py).
                    self._graph = build_agent(model, self.registry, self.settings, prompt=prompt,
                                              strict_tools=info.backend in ("vllm", "openai"),
                                              few_shot=self.settings.agent_few_shot and info.backend != "offline")
                    self._chat_model = model
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

    def reset(self, session_id: str, *, owner: str = LOCAL_OWNER) -> None:
        self.memory.reset(owner, _session(session_id))

    def check_store(self) -> None:
        """Raise SessionStoreError when the session store cannot be opened or read."""
        self.memory.check()

    # ------------------------------------------------------------ answering

    def chat(self, message: str, session_id: str | None = None, *, owner: str = LOCAL_OWNER,
             history: list[tuple[str, str]] | None = None) -> AgentReply:
        """Answer one question. `session_id` None starts a fresh session (its id is in the reply);
        `history` [(role, text), ...] ("user"/"assistant") is the conversation so far, sent by the caller,
        and then nothing is read from or written to the session store. Raises SessionStoreError when
        the store cannot be read or written."""
        last: AgentEvent | None = None
        for event in self._run(message, session_id, owner=owner, history=history, tokens=False, raise_store=True):
            last = event
        if last is not None and last.type == "answer":
            return AgentReply.model_validate(last.data)
        data = last.data if last is not None else {}
        info = self._info()
        return AgentReply(answer=data.get("message", "The agent ended without an answer."), backend=info.backend,
                          model=info.model, latency_ms=data.get("latency_ms", 0.0), kind="error",
                          tool_calls=[ToolCallTrace(**t) for t in data.get("tool_calls", [])],
                          session_id=data.get("session_id"))

    def stream(self, message: str, session_id: str | None = None, *, owner: str = LOCAL_OWNER,
               history: list[tuple[str, str]] | None = None) -> Iterator[AgentEvent]:
        """Tool start/end and answer-token events as they happen; the last event is `answer` or `error`
        (a session store failure is an `error` event with `code` and `status`)."""
        return self._run(message, session_id, owner=owner, history=history, tokens=True, raise_store=False)

    def _run(self, message: str, session_id: str | None, *, owner: str, history: list[tuple[str, str]] | None,
             tokens: bool, raise_store: bool) -> Iterator[AgentEvent]:
        from agent.memory import SessionStoreError
        from agent.turns import turn_messages, turn_record

        message = _message(message)
        stateless = history is not None
        session_id = None if stateless else (_session(session_id) if session_id else str(uuid.uuid4()))
        started = time.perf_counter()
        info = self._info()
        traces: list[dict[str, Any]] = []
        lock = contextlib.nullcontext() if stateless else self._locks.hold((owner, session_id))
        with lock:
            try:
                graph = self.graph
                if stateless:
                    prior = self._client_turns(history)
                else:
                    # agent_history_turns counts this turn too (as the graph's middleware trims).
                    prior = turn_messages(self.memory.load(owner, session_id, self.settings.agent_history_turns - 1))
                human = HumanMessage(message, id=str(uuid.uuid4()))
                state: dict[str, Any] = {}
                yield from self._graph_events(graph, [*prior, human], tokens, traces, state)
                reply, final = self._reply(state.get("messages", []), human.id, info, started, session_id)
                if not stateless:
                    self.memory.append(owner, session_id, turn_record(
                        message, reply.answer, reply.kind, [t.model_dump() for t in reply.tool_calls],
                        final.additional_kwargs))
            except SessionStoreError as exc:
                if raise_store:
                    raise
                event = _error(str(exc), started, traces, session_id)
                event.data.update(code=exc.code, status=exc.status, hint=exc.hint)
                yield event
                return
            except ValueDeskError as exc:
                yield _error(str(exc), started, traces, session_id)
                return
            except Exception as exc:  # noqa: BLE001 - an LLM/network failure must end the stream with an event
                log.exception("agent failed")
                yield _error(_describe(exc, info), started, traces, session_id)
                return
        yield AgentEvent(type="answer", data=reply.model_dump(mode="json"))

    def _graph_events(self, graph, messages: list, tokens: bool, traces: list[dict[str, Any]],
                      state: dict[str, Any]) -> Iterator[AgentEvent]:
        """Run the graph on `messages`: yield tool (and, with `tokens`, answer-token) events as they
        happen, append each finished tool call to `traces`, and leave the final graph state in `state`."""
        config = {"recursion_limit": 4 * self.settings.agent_max_steps + 4}
        modes = ["custom", "values", "messages"] if tokens else ["custom", "values"]
        for mode, chunk in graph.stream({"messages": messages}, config, stream_mode=modes):
            if mode == "values":
                state.clear()
                state.update(chunk)
            elif mode == "custom" and isinstance(chunk, dict) and chunk.get("type") in ("tool_start", "tool_end"):
                if chunk["type"] == "tool_end":
                    traces.append(chunk["data"])
                yield AgentEvent(type=chunk["type"], data=chunk["data"])
            elif mode == "messages":
                msg, meta = chunk
                if (isinstance(msg, AIMessageChunk) and meta.get("langgraph_node") == "model"
                        and isinstance(msg.content, str) and msg.content):
                    yield AgentEvent(type="token", data={"text": msg.content})

    def _client_turns(self, history: list[tuple[str, str]]) -> list:
        """The caller's own conversation as chat messages (its last `agent_history_turns` - 1 turns).

        The offline planner resolves follow-ups from the plan of the earlier turns, which plain text
        does not carry, so for it each earlier question is planned again in order (no tool runs;
        references to rows of an earlier answer, "the second one", need the stored session)."""
        turns: list[list[str | None]] = []  # [question, answer]
        for role, text in history:
            text = (text or "").strip()
            if not text:
                continue
            if role == "user":
                turns.append([text[:MAX_MESSAGE_CHARS], None])
            elif role == "assistant" and turns and turns[-1][1] is None:
                turns[-1][1] = text[:MAX_ANSWER_CHARS]
        keep = self.settings.agent_history_turns - 1  # the question being asked is a turn too
        turns = turns[-keep:] if keep > 0 else []
        planner = getattr(self._chat_model, "planner", None)
        plans: list[dict[str, Any]] = []
        out: list = []
        for question, answer in turns:
            meta: dict[str, Any] = {}
            if planner is not None:
                try:
                    plan = planner.plan(question, plans).to_dict()
                except Exception:  # noqa: BLE001 - an earlier turn that cannot be planned is text only
                    log.warning("could not re-plan an earlier question of the client's history", exc_info=True)
                else:
                    plans.append({"plan": plan, "results": []})
                    meta = {"valuedesk_plan": plan, "valuedesk_results": []}
            out.append(HumanMessage(question))
            out.append(AIMessage(answer or "", additional_kwargs=meta))
        return out

    def _reply(self, messages: list, human_id: str, info, started: float,
               session_id: str | None) -> tuple[AgentReply, AIMessage]:
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
        reply = AgentReply(answer=text_of(final).strip(), tool_calls=traces, backend=info.backend, model=info.model,
                           latency_ms=round((time.perf_counter() - started) * 1000, 3),
                           unverified=list(final.additional_kwargs.get("valuedesk_unverified", [])),
                           kind=kind if kind in ("answer", "clarify", "refuse", "error") else "answer",
                           session_id=session_id)
        return reply, final


class _KeyedLocks:
    """One lock per session while it is in use (forgotten when no turn holds or waits for it, so fresh
    session ids do not pile up)."""

    def __init__(self):
        self._guard = threading.Lock()
        self._held: dict[Any, list] = {}

    @contextlib.contextmanager
    def hold(self, key: Any) -> Iterator[None]:
        with self._guard:
            entry = self._held.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    self._held.pop(key, None)

    def __len__(self) -> int:
        return len(self._held)


class AgentStopped(ValueDeskError):
    """The agent used its step budget without answering."""


def _message(message: Any) -> str:
    if not isinstance(message, str) or not message.strip():
        raise AgentInputError("The question is empty; ask something like 'Who are my at-risk top customers?'.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise AgentInputError(f"The question is {len(message)} characters long; keep it under {MAX_MESSAGE_CHARS}.")
    return message.strip()


def _session(session_id: Any) -> str:
    session_id = str(session_id or "").strip()
    if not session_id or len(session_id) > 128 or not session_id.isprintable():
        raise AgentInputError("session_id must be printable text of 1 to 128 characters.")
    return session_id


def _error(message: str, started: float, traces: list[dict[str, Any]], session_id: str | None = None) -> AgentEvent:
    return AgentEvent(type="error", data={"message": message, "tool_calls": traces, "session_id": session_id,
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


_services: PerSettings[AgentService] = PerSettings(AgentService)


def get_agent_service(settings: AgentSettings) -> AgentService:
    """The process-wide agent service for these settings (built on first use, never at import)."""
    return _services.get(settings)
