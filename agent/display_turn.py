"""One question's answer as the screen shows it, built from the agent's events: the chat messages (each
tool call a collapsible step with its arguments, duration and status), the status line, and the tool
results behind the tables and charts (agent.display_answer.AnswerResults).

`answer_stream` runs a question through the agent service and yields the `Turn` after each event;
ui.py turns it into Gradio updates. Whatever goes wrong ends the turn with a message a marketer can
act on (agent.display.friendly); no Gradio here, no I/O but the service's own stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from agent.display import (
    AUDIENCE_TOOLS, as_dict, error_text, event_parts, export_arguments, friendly, friendly_exception, json_block,
    result_summary,
)
from agent.display_answer import AnswerResults, answer_for_screen, progress_line, unverified_note

log = logging.getLogger("valuedesk.ui")


@dataclass
class Turn:
    """What one question produced so far: chat messages, the tool results behind the tables and charts,
    and what the status line says."""

    history: list[dict[str, Any]]
    results: AnswerResults = field(default_factory=AnswerResults)
    export: dict[str, Any] | None = None
    audience: dict[str, Any] | None = None  # export_audience arguments for this answer's audience
    reply: dict[str, Any] | None = None
    finished: bool = False
    failed: bool = False
    tool: str | None = None  # the tool running now
    tools_done: int = 0
    seconds: float | None = None
    _started: float = field(default_factory=time.perf_counter)
    _steps: list[tuple[int, str]] = field(default_factory=list)  # (history index, tool name) of pending steps
    _text: int | None = None  # history index of the assistant text being streamed
    _n: int = 0

    # ------------------------------------------------------------ applying events

    def apply(self, event: Any) -> str:
        kind, data = event_parts(event)
        if kind == "tool_start":
            self._tool_start(data)
        elif kind == "tool_end":
            self._tool_end(data)
        elif kind == "token":
            self._token(str(data.get("text") or ""))
        elif kind == "answer":
            self._answer(data)
        elif kind == "error":
            self.fail(str(data.get("message") or "the assistant could not answer"))
        return kind

    def _tool_start(self, data: dict[str, Any]) -> None:
        self._n += 1
        name = str(data.get("name") or "tool")
        self.tool = name
        self.history.append({
            "role": "assistant",
            "content": "**Arguments**\n" + json_block(data.get("arguments") or {}),
            "metadata": {"title": f"Tool: {name}", "id": f"tool-{self._n}", "status": "pending"},
        })
        self._steps.append((len(self.history) - 1, name))
        self._text = None  # text after a tool call is a new message below the step

    def _tool_end(self, data: dict[str, Any]) -> None:
        name = str(data.get("name") or "tool")
        args = data.get("arguments") or {}
        result = as_dict(data.get("result"))
        error = data.get("error")
        seconds = float(data.get("duration_ms") or 0.0) / 1000.0
        step = next((s for s in self._steps if s[1] == name), None)
        if step is None:  # a backend that reports only the end of a call
            self._tool_start({"name": name, "arguments": args})
            step = self._steps[-1]
        self._steps.remove(step)
        self.tool, self.tools_done = None, self.tools_done + 1
        pos = step[0]
        content = "**Arguments**\n" + json_block(args)
        meta = dict(self.history[pos]["metadata"])
        meta.update(status="done", duration=round(seconds, 3))
        if error:
            meta["title"] = f"Tool: {name} (failed)"
            meta["log"] = str(as_dict(error).get("code") or "error")
            content += "\n\n**Error:** " + error_text(error)
        else:
            meta["log"] = result_summary(name, result)
            self._collect(name, args, result)
        self.history[pos] = {"role": "assistant", "content": content, "metadata": meta}

    def _collect(self, name: str, args: dict[str, Any], result: dict[str, Any]) -> None:
        self.results.collect(name, args, result)
        if name == "export_audience" and result.get("path"):
            self.export = result
        if name in AUDIENCE_TOOLS:
            self.audience = export_arguments(args, AUDIENCE_TOOLS[name])

    def _token(self, text: str) -> None:
        if not text:
            return
        if self._text is None:
            self.history.append({"role": "assistant", "content": ""})
            self._text = len(self.history) - 1
        self.history[self._text]["content"] += text

    def _answer(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self._close_pending("no result reported")
        if self._n == 0 and self._text is None:  # a backend that streams no tool events: show them from the reply
            for call in reply.get("tool_calls") or []:
                self._tool_end(as_dict(call))
        kind = reply.get("kind") or "answer"
        text = str(reply.get("answer") or "").strip()
        if kind == "error":
            text = friendly(text or "the assistant could not answer")
        if not text:
            text = "I have no answer to that. Try one of the example questions."
        # The table next to the answer shows the rows: the text keeps the top one and points to the table.
        text = answer_for_screen(text, self.table_ids())
        if self._text is not None:  # the reply is the authoritative text; tokens were its preview
            self.history[self._text]["content"] = text
        else:
            self.history.append({"role": "assistant", "content": text})
        self.history.extend(unverified_note(reply.get("unverified")))
        self._finish()

    def fail(self, message: str) -> None:
        """End the turn with a message a marketer can act on; the session stays usable."""
        self._close_pending("stopped")
        self.history.append({"role": "assistant", "content": friendly(message)})
        self._text = None
        self.failed = True
        self._finish()

    def _finish(self) -> None:
        self.finished, self.tool = True, None
        self.seconds = time.perf_counter() - self._started

    def _close_pending(self, why: str) -> None:
        for pos, _ in self._steps:
            meta = dict(self.history[pos]["metadata"])
            meta.update(status="done", log=why)
            self.history[pos] = {**self.history[pos], "metadata": meta}
        self._steps.clear()

    # ------------------------------------------------------------ what the view shows

    def table_ids(self) -> set[str]:
        """The customers the table shows (none when one customer is shown as a card)."""
        rows = self.results.rows
        return set(rows) if len(rows) > 1 else set()

    def status(self) -> str:
        if not self.finished:
            return f"<span class='vd-busy'>{progress_line(self.tool)}</span>"
        return progress_line(None, done=True, seconds=self.seconds, tools=self.tools_done, failed=self.failed)


def answer_stream(service: Any, message: str, history: list[dict[str, Any]] | None,
                  session_id: str) -> Iterator[tuple[Turn, str]]:
    """Run one question through `service.stream` and yield (turn so far, event type) after each event.

    Whatever goes wrong (an error event, an exception from the backend, a stream that ends without
    a reply) ends the turn with a friendly chat message; the traceback goes to the log only.
    """
    message = (message or "").strip()
    turn = Turn(history=list(history or []))
    if not message:
        turn.history.append({"role": "assistant",
                             "content": "Ask me about your customers, for example one of the example questions."})
        turn._finish()
        yield turn, "answer"
        return
    turn.history.append({"role": "user", "content": message})
    yield turn, "user"
    try:
        for event in service.stream(message, session_id):
            kind = turn.apply(event)
            yield turn, kind
            if turn.finished:
                return
    except Exception as exc:  # noqa: BLE001 - shown as a chat message; the traceback goes to the log
        log.exception("answering %r failed", message)
        info = None
        try:
            info = service.backend_info()
        except Exception:  # noqa: BLE001 - only used to word the message
            pass
        turn.fail(friendly_exception(exc, info))
        yield turn, "error"
        return
    turn.fail("the assistant stopped without a reply")
    yield turn, "error"
