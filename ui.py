"""ValueDesk chat UI: a Gradio app around the agent service.

Run it with `python ui.py` (or `valuedesk ui`); the first-run build, the warm-up and the launch are
the wiring's (valuedesk.bootstrap), and the words, tables, charts and cards shown come from
agent.display and agent.display_* (answer, table, charts, page).

This module is an adapter only: it turns the agent's events (tool_start, tool_end, token, answer,
error) into chat messages, a status line, tables, charts, a customer card and downloads. Every
number on screen comes from a tool result; the only tools it calls itself go through the shared
registry: `export_audience`, to turn an answer's audience into a CSV on request, and the answer's own
list tool again with a higher limit when a marketer asks to see every matching row.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import gradio as gr  # noqa: E402 - after the analytics switch above

from agent.display import (  # noqa: E402
    AUDIENCE_TOOLS, EXAMPLES, as_dict, backend_markdown, error_text, event_parts, export_arguments, friendly,
    friendly_exception, index_markdown, json_block, result_summary, state_dict,
)
from agent.display_answer import (  # noqa: E402
    AnswerResults, answer_for_screen, progress_line, results_panels, unverified_note,
)
from agent.display_charts import TIER_COLOURS, TIER_ORDER, VALUE_MEASURES, measure_label  # noqa: E402
from agent.display_page import CSS, HEAD, SCROLL_JS  # noqa: E402
from agent.display_table import plural  # noqa: E402

log = logging.getLogger("valuedesk.ui")
TOKEN_REFRESH_S = 0.5  # streamed text is shown in chunks at most this often, never token by token


# --------------------------------------------------------------------------- events -> view state


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
        text = answer_for_screen(text, self.table_ids(), self.results.campaign_ids())
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


# --------------------------------------------------------------------------- view state -> components


def results_updates(results: AnswerResults) -> tuple:
    """The results column for one answer (agent.display_answer.results_panels, in `_results_column` order)."""
    return tuple(gr.update(**panel) for panel in results_panels(results))


def export_updates(turn: Turn, final: bool) -> tuple:
    export = turn.export
    if export:
        rows = plural(int(export["rows"]), "row")
        return (gr.update(value=export["path"], visible=True, label=f"Download audience CSV ({rows})"),
                gr.update(visible=False),
                f"Audience file: {Path(export['path']).name}, {rows} (written by export_audience).")
    offer = bool(final and turn.audience)
    note = "This answer describes an audience: export it as a CSV for your marketing tool." if offer else ""
    return gr.update(value=None, visible=False), gr.update(visible=offer), note


def outputs_for(turn: Turn) -> tuple:
    return (turn.history, turn.status(), *results_updates(turn.results), *export_updates(turn, turn.finished),
            turn.audience, turn.results)


RESULT_OUTPUTS = 10  # len(results_updates(...))


# --------------------------------------------------------------------------- the app


def _results_column() -> list:
    """The components of the results column, in `results_updates` order."""
    common = dict(visible=False, y_lim=[0, None], y_axis_format=",.0f")
    return [
        gr.Markdown(elem_id="vd-summary", visible=False),
        gr.HTML(elem_id="vd-card", visible=False),
        gr.Dataframe(elem_id="vd-table", label="Customers in this answer", interactive=False, show_search="search",
                     buttons=["fullscreen", "copy"], visible=False, max_height=360, wrap=False,
                     elem_classes=["vd-sortable"]),
        gr.Button("Show all", size="sm", visible=False, elem_id="vd-more"),
        gr.Dataframe(elem_id="vd-campaigns", label="Campaign plan", interactive=False, visible=False, wrap=False,
                     elem_classes=["vd-sortable"]),
        gr.BarPlot(x="tier", y="customers", color="tier", color_map=TIER_COLOURS, sort=TIER_ORDER,
                   label="Customers per tier", x_title="Tier", y_title="Customers", elem_id="vd-tier-plot", **common),
        gr.BarPlot(x="measure", y="amount", color="group", label="Value by tier (£)", x_title="", y_title="£",
                   sort=[measure_label(m) for m in VALUE_MEASURES], tooltip=["group", "measure", "shown"],
                   elem_id="vd-value-plot", **common),
        gr.ScatterPlot(x="churn_risk", y="predicted_value", color="tier", color_map=TIER_COLOURS,
                       label="Churn risk vs predicted value, per customer", x_title="Churn risk (%)",
                       y_title="Predicted value (£)", x_axis_format=".0%", x_lim=[0, 1],
                       tooltip=["customer", "tier", "shown"], elem_id="vd-scatter-plot", **common),
        gr.BarPlot(x="measure", y="amount", color="campaign", label="Campaign cost vs expected revenue (£)",
                   x_title="", y_title="£", sort=["Cost", "Expected incremental revenue"],
                   tooltip=["campaign", "measure", "shown"], elem_id="vd-campaign-plot", **common),
        gr.Markdown(elem_id="vd-glossary", visible=False),
    ]


def build_app(service: Any, settings: Any, index_status: Any = None):
    """The Gradio Blocks app around `service` (an AgentService: stream, backend_info, reset, registry), over
    the data directory of `settings` (both handed in by the wiring, valuedesk.bootstrap).

    `index_status`, when given, is a callable returning the background indexing state (shown
    under the backend panel and refreshed every few seconds until the index is ready)."""

    def panel_text() -> str:
        try:
            return backend_markdown(service.backend_info())
        except Exception as exc:  # noqa: BLE001 - the panel says so; questions may still work
            log.warning("backend_info failed: %s", exc)
            return backend_markdown(None, "the agent service did not report its backend")

    def index_line() -> tuple[str, Any]:
        """The profile search line, and the timer kept ticking only while indexing runs."""
        try:
            state = state_dict(index_status() if index_status else None)
        except Exception as exc:  # noqa: BLE001 - a status line must never break the page
            log.warning("index status unavailable: %s", exc)
            state = {}
        return index_markdown(state), gr.Timer(active=state.get("state") in ("embedding", "writing"))

    def respond(message: str, history: list[dict[str, Any]] | None, session_id: str | None):
        session_id = session_id or uuid.uuid4().hex
        shown = 0.0
        for turn, kind in answer_stream(service, message, history, session_id):
            now = time.perf_counter()
            if kind in ("token", "tool_start", "user"):  # cheap updates: the chat and the status line only
                if kind == "token" and now - shown < TOKEN_REFRESH_S:
                    continue  # text arrives in chunks, not one browser update per token
                shown = now
                yield ("", turn.history, turn.status(), *([gr.skip()] * (RESULT_OUTPUTS + 5)), session_id)
            else:
                shown = now
                yield ("", *outputs_for(turn), session_id)

    def call_tool(tool: str, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """One tool call through the shared registry: (result, None) or (None, what went wrong)."""
        try:
            envelope = service.registry.call(tool, args)
        except Exception as exc:  # noqa: BLE001 - the registry returns errors as data; this is a last guard
            log.exception("%s failed", tool)
            return None, friendly_exception(exc)
        return (envelope.result or {}, None) if envelope.ok else (None, error_text(envelope.error))

    def show_more(results: AnswerResults | None):
        """Every matching row: the answer's list tool again, with the highest limit it takes."""
        more = results.more_call() if results else None
        if more is None:
            return (*([gr.skip()] * RESULT_OUTPUTS), results)
        result, problem = call_tool(more["tool"], more["args"])
        if problem:
            return (gr.update(value=f"More rows could not be fetched: {problem}"),
                    *([gr.skip()] * (RESULT_OUTPUTS - 1)), results)
        results.replace_rows(more["tool"], more["args"], result)
        return (*results_updates(results), results)

    def export_audience(args: dict[str, Any] | None):
        """Write the current answer's audience with the export_audience tool (the same one the agent calls)."""
        if not args:
            return gr.update(visible=False), gr.update(), "There is no audience in this answer to export."
        result, problem = call_tool("export_audience", args)
        if problem:
            return gr.update(visible=False), gr.update(), f"The export did not work: {problem}"
        turn = Turn(history=[], export=result)
        return export_updates(turn, True)

    def new_chat(session_id: str | None):
        if session_id:
            try:
                service.reset(session_id)
            except Exception as exc:  # noqa: BLE001 - a fresh id below forgets the session either way
                log.warning("reset failed: %s", exc)
        turn = Turn(history=[], finished=True)
        return ("", turn.history, "", *outputs_for(turn)[2:], uuid.uuid4().hex)

    with warnings.catch_warnings():  # Gradio 6 prefers css/head at launch(); the wiring's launch passes neither
        warnings.simplefilter("ignore", UserWarning)
        demo = gr.Blocks(title="ValueDesk", fill_width=True, css=CSS, head=HEAD)
    with demo:
        session, audience, results_state = gr.State(None), gr.State(None), gr.State(None)
        gr.Markdown("# ValueDesk\nCustomer value, churn risk and campaigns, answered from your own data.",
                    elem_id="vd-title")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=340, elem_id="vd-main"):
                chat = gr.Chatbot(elem_id="vd-chat", label="Conversation", height=540, buttons=["copy"],
                                  feedback_options=None, autoscroll=True,
                                  placeholder="Ask about your customers: who is at risk, why, and what to do.")
                status = gr.Markdown(elem_id="vd-status")
                with gr.Row(equal_height=True, elem_id="vd-ask"):
                    box = gr.Textbox(elem_id="vd-input", show_label=False, scale=5, autofocus=True, lines=1,
                                     placeholder="e.g. who are my at-risk top customers?", submit_btn=False)
                    send = gr.Button("Send", variant="primary", scale=1, min_width=70, elem_id="vd-send")
                    new = gr.Button("New chat", scale=1, min_width=70, elem_id="vd-new-chat")
                with gr.Row(elem_id="vd-examples"):
                    example_buttons = [gr.Button(q, size="sm", elem_classes=["vd-example"]) for q in EXAMPLES]
            with gr.Column(scale=4, min_width=340, elem_id="vd-results"):
                results_view = _results_column()
                with gr.Row():
                    export_note = gr.Markdown(elem_id="vd-export-note")
                    export_btn = gr.Button("Export this audience as CSV", visible=False, elem_id="vd-export")
                    download = gr.DownloadButton("Download audience CSV", visible=False, elem_id="vd-download")
        with gr.Row(elem_id="vd-side"):
            backend = gr.Markdown(elem_id="vd-backend")
            index_note = gr.Markdown(elem_id="vd-index-status")
            index_timer = gr.Timer(2.0, active=index_status is not None)

        view = [chat, status, *results_view, download, export_btn, export_note, audience, results_state]
        chat_io = dict(fn=respond, inputs=[box, chat, session], outputs=[box, *view, session], show_progress="hidden")
        box.submit(**chat_io).then(None, js=SCROLL_JS)
        send.click(**chat_io).then(None, js=SCROLL_JS)
        for button in example_buttons:
            button.click(lambda q: q, inputs=button, outputs=box, queue=False).then(**chat_io).then(None, js=SCROLL_JS)
        results_view[3].click(show_more, inputs=results_state, outputs=[*results_view, results_state])
        export_btn.click(export_audience, inputs=audience, outputs=[download, export_btn, export_note])
        new.click(new_chat, inputs=session, outputs=[box, *view, session])
        chat.clear(new_chat, inputs=session, outputs=[box, *view, session])
        demo.load(lambda: (uuid.uuid4().hex, panel_text()), outputs=[session, backend])
        if index_status is not None:
            demo.load(index_line, outputs=[index_note, index_timer], show_progress="hidden")
            index_timer.tick(index_line, outputs=[index_note, index_timer], show_progress="hidden")
    demo.valuedesk_allowed_paths = [str(Path(settings.data_dir) / "exports")]
    return demo


if __name__ == "__main__":
    from valuedesk.bootstrap import main

    sys.exit(main())
