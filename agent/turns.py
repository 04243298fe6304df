"""What a finished turn keeps for a follow-up, and how stored turns are read back as chat messages.

Per turn: the user's question, the final answer, and a compact summary of each tool call (name,
arguments, and the result's scalars, ids and counts: never whole result lists), plus the offline
planner's plan of the turn. agent.memory stores these records; agent.service writes and reads them.
"""

from __future__ import annotations

import json
from typing import Any

from agent.graph import nested_lists

MAX_QUESTION_CHARS = 4000
MAX_ANSWER_CHARS = 6000
MAX_SUMMARY_CHARS = 2000
MAX_IDS = 50
MAX_ROWS = 12
MAX_SCALARS = 20
MAX_TEXT = 200


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "…"
    return value


def summarize(value: Any, depth: int = 0) -> Any:
    """A compact stand-in for a tool result: scalars, ids and counts, no whole lists."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if _scalar(item):
                out[key] = _short(item)
            elif isinstance(item, list):
                out[key] = _summarize_list(item, depth)
            elif isinstance(item, dict) and depth < 2:
                out[key] = summarize(item, depth + 1)
        return out
    if isinstance(value, list):
        return _summarize_list(value, depth)
    return _short(value) if _scalar(value) else str(value)[:MAX_TEXT]


def _summarize_list(items: list, depth: int) -> Any:
    if items and all(isinstance(r, dict) for r in items) and any("customer_id" in r for r in items):
        # Customer lists: the ids in order (so "the second one" resolves) and how many there were.
        return {"count": len(items), "customer_ids": [str(r.get("customer_id")) for r in items[:MAX_IDS]]}
    if all(_scalar(r) for r in items):
        head = [_short(r) for r in items[:MAX_SCALARS]]
        return head + ([f"... {len(items) - MAX_SCALARS} more"] if len(items) > MAX_SCALARS else [])
    if depth >= 2:
        return {"count": len(items)}
    rows = [summarize(r, depth + 1) for r in items[:MAX_ROWS]]
    return rows + ([{"more": len(items) - MAX_ROWS}] if len(items) > MAX_ROWS else [])


def _fit(value: Any, max_chars: int) -> Any:
    """Halve the longest list until the JSON fits (then drop what still does not)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    for _ in range(60):
        if len(text) <= max_chars:
            return value
        lists = nested_lists(value)
        if not lists:
            break
        holder, key, items = max(lists, key=lambda h: len(json.dumps(h[2], ensure_ascii=False, default=str)))
        holder[key] = items[: len(items) // 2]
        text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= max_chars:
        return value
    keys = list(value)[:20] if isinstance(value, dict) else []
    return {"note": "result too large to keep", "keys": keys}


def turn_record(question: str, answer: str, kind: str, calls: list[dict[str, Any]],
                meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """What one finished turn keeps: `calls` are tool traces ({name, arguments, result, error});
    `meta` the final message's valuedesk_* fields (the offline planner's plan and result ids)."""
    kept = []
    for call in calls:
        entry: dict[str, Any] = {"name": call.get("name"), "arguments": call.get("arguments") or {}}
        if call.get("error"):
            err = call["error"]
            entry["error"] = {k: _short(err.get(k)) for k in ("code", "message") if err.get(k)}
        else:
            entry["summary"] = _fit(summarize(call.get("result")), MAX_SUMMARY_CHARS)
        kept.append(entry)
    answer = answer if len(answer) <= MAX_ANSWER_CHARS else answer[:MAX_ANSWER_CHARS] + " […]"
    return {"q": question[:MAX_QUESTION_CHARS], "a": answer, "kind": kind, "calls": kept,
            "meta": {k: v for k, v in (meta or {}).items() if k.startswith("valuedesk_")}}


def turn_messages(records: list[dict[str, Any]]) -> list:
    """Stored turns as chat messages: question, the tool calls with their summaries, the answer."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    out: list = []
    for i, record in enumerate(records):
        out.append(HumanMessage(record.get("q", "")))
        calls = record.get("calls") or []
        if calls:
            ids = [f"prior_{i}_{j}" for j in range(len(calls))]
            out.append(AIMessage("", tool_calls=[{"name": c["name"], "args": c.get("arguments") or {}, "id": cid,
                                                  "type": "tool_call"} for c, cid in zip(calls, ids)]))
            for call, cid in zip(calls, ids):
                body = {"error": call["error"]} if call.get("error") else call.get("summary")
                out.append(ToolMessage(json.dumps(body, ensure_ascii=False, default=str), tool_call_id=cid,
                                       name=call["name"], status="error" if call.get("error") else "success"))
        out.append(AIMessage(record.get("a", ""), additional_kwargs=dict(record.get("meta") or {})))
    return out
