"""The planner as a LangChain chat model, so it runs inside the same agent graph as an LLM: memory,
streaming, tool traces and the grounding check are shared."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from agent.planner.plan import Plan


class PlannerChatModel(BaseChatModel):
    """The planner as a chat model: emits tool calls on the first step of a turn and the templated
    answer once the tool results are in."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    planner: Any
    model_name: str = "valuedesk-planner"

    @property
    def _llm_type(self) -> str:
        return "valuedesk-planner"

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):  # noqa: ARG002 - the plan decides the tools
        return self

    def _respond(self, messages: list[BaseMessage]) -> AIMessage:
        from agent.graph import current_turn

        human, turn = current_turn(messages)
        message = human.content if human is not None and isinstance(human.content, str) else ""
        planned = next((m for m in turn if isinstance(m, AIMessage) and m.additional_kwargs.get("valuedesk_plan")),
                       None)
        if planned is None:
            plan = self.planner.plan(message, _history(messages[: messages.index(human)] if human else []))
            if plan.calls:
                calls = [{"name": c["name"], "args": c["args"], "id": f"call_{uuid.uuid4().hex[:12]}",
                          "type": "tool_call"} for c in plan.calls]
                return AIMessage("", tool_calls=calls, additional_kwargs={"valuedesk_plan": plan.to_dict()})
            return AIMessage(plan.text, additional_kwargs={"valuedesk_plan": plan.to_dict(), "valuedesk_kind": plan.kind,
                                                           "valuedesk_results": []})
        plan = Plan.from_dict(planned.additional_kwargs["valuedesk_plan"])
        if not plan.calls:  # asked again within the turn (e.g. by the grounding check): same reply
            return AIMessage(plan.text, additional_kwargs=dict(planned.additional_kwargs))
        traces = [m.artifact for m in turn if isinstance(m, ToolMessage) and isinstance(m.artifact, dict)]
        text, kind = self.planner.answer(plan, traces)
        results = [t.get("result") for t in traces if t.get("result") is not None]
        return AIMessage(text, additional_kwargs={"valuedesk_plan": plan.to_dict(), "valuedesk_kind": kind,
                                                  "valuedesk_results": _slim(results)})

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._respond(messages))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs) -> Iterator[ChatGenerationChunk]:
        message = self._respond(messages)
        if message.tool_calls:
            chunks = [{"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                      for i, c in enumerate(message.tool_calls)]
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=chunks,
                                                             additional_kwargs=message.additional_kwargs))
            return
        pieces = re.findall(r"\S+\s*|\s+", message.content) or [""]
        for i, piece in enumerate(pieces):
            chunk = AIMessageChunk(content=piece, additional_kwargs=message.additional_kwargs if i == 0 else {})
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=ChatGenerationChunk(message=chunk))
            yield ChatGenerationChunk(message=chunk)


def _slim(results: list[Any]) -> list[Any]:
    """What a follow-up needs from this turn's results (customer ids in order), not the whole payload."""
    out = []
    for r in results:
        if isinstance(r, dict):
            rows = r.get("customers") or r.get("hits")
            if rows:
                out.append({"customers": [{"customer_id": row.get("customer_id")} for row in rows[:50]]})
    return out


def _history(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        if isinstance(m, AIMessage) and not m.tool_calls and m.additional_kwargs.get("valuedesk_plan"):
            out.append({"plan": m.additional_kwargs["valuedesk_plan"],
                        "results": m.additional_kwargs.get("valuedesk_results") or []})
    return out

