"""ValueDesk chat UI: a Gradio app around the agent service.

Run it with `python ui.py` (or `valuedesk ui`); the first-run build, the warm-up and the launch are
the wiring's (valuedesk.bootstrap), and the words and tables shown come from agent.display.

This module is an adapter only: it turns the agent's events (tool_start, tool_end, token, answer,
error) into chat messages, tables, charts and downloads. Every number on screen comes from a tool
result; the only tool it calls itself is `export_audience`, through the shared registry, to turn
an answer's audience into a CSV on request.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from agent.display import (
    AUDIENCE_TOOLS, CUSTOMER_COLUMNS, EXAMPLES, TIER_ORDER, as_dict, backend_markdown, campaign_chart_frame, campaign_frame,
    customer_frame, error_text, event_parts, export_arguments, friendly, friendly_exception, index_markdown,
    json_block, result_summary, scatter_frame, state_dict, tier_frame,
)

log = logging.getLogger("valuedesk.ui")


# --------------------------------------------------------------------------- events -> view state


@dataclass
class Turn:
    """What one question produced so far: chat messages plus the rows behind tables and charts."""

    history: list[dict[str, Any]]
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: list[dict[str, Any]] = field(default_factory=list)
    segment_group_by: str | None = None
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    export: dict[str, Any] | None = None
    audience: dict[str, Any] | None = None  # export_audience arguments for this answer's audience
    reply: dict[str, Any] | None = None
    finished: bool = False
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
        rows: list[dict[str, Any]] = []
        if name == "find_customers":
            rows = list(result.get("customers") or [])
        elif name == "search_profiles":
            rows = list(result.get("hits") or [])
        elif name == "get_customer" and result.get("customer_id"):
            rows = [result]
        elif name == "export_audience" and result.get("path"):
            self.export = result
        if name == "segment_summary":
            self.segments = list(result.get("groups") or [])
            self.segment_group_by = result.get("group_by")
        if name == "recommend_campaigns":
            self.campaigns = list(result.get("campaigns") or [])
        for row in rows:
            cid = str(row.get("customer_id"))
            self.customers.setdefault(cid, {}).update({k: v for k, v in row.items() if k in CUSTOMER_COLUMNS})
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
        if self._text is not None:  # the reply is the authoritative text; tokens were its preview
            self.history[self._text]["content"] = text
        else:
            self.history.append({"role": "assistant", "content": text})
        unverified = [str(u) for u in reply.get("unverified") or []]
        if unverified:
            self.history.append({
                "role": "assistant",
                "content": "These figures in the answer appear in no tool result, so treat them with care: "
                           + ", ".join(unverified),
                "metadata": {"title": "Unverified figures", "status": "done"},
            })
        self.finished = True

    def fail(self, message: str) -> None:
        """End the turn with a message a marketer can act on; the session stays usable."""
        self._close_pending("stopped")
        self.history.append({"role": "assistant", "content": friendly(message)})
        self._text = None
        self.finished = True

    def _close_pending(self, why: str) -> None:
        for pos, _ in self._steps:
            meta = dict(self.history[pos]["metadata"])
            meta.update(status="done", log=why)
            self.history[pos] = {**self.history[pos], "metadata": meta}
        self._steps.clear()

    # ------------------------------------------------------------ frames for the components

    def customer_frame(self) -> pd.DataFrame:
        return customer_frame(self.customers.values())

    def campaign_frame(self) -> pd.DataFrame:
        return campaign_frame(self.campaigns)

    def tier_frame(self) -> pd.DataFrame:
        segments = self.segments if self.segment_group_by == "tier" else []
        return tier_frame(self.customer_frame(), segments)

    def scatter_frame(self) -> pd.DataFrame:
        return scatter_frame(self.customer_frame())

    def campaign_chart_frame(self) -> pd.DataFrame:
        return campaign_chart_frame(self.campaigns)



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
        turn.finished = True
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


# --------------------------------------------------------------------------- the app


def build_app(service: Any, settings: Any, index_status: Any = None):
    """The Gradio Blocks app around `service` (an AgentService: stream, backend_info, reset), over the
    data directory of `settings` (both handed in by the wiring, valuedesk.bootstrap).

    `index_status`, when given, is a callable returning the background indexing state (shown
    under the backend panel and refreshed every few seconds until the index is ready)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    def backend_info() -> dict[str, Any] | None:
        try:
            return service.backend_info()
        except Exception as exc:  # noqa: BLE001 - the panel says so; questions may still work
            log.warning("backend_info failed: %s", exc)
            return None

    def panel_text() -> str:
        info = backend_info()
        return backend_markdown(info, None if info is not None else "the agent service did not report its backend")

    def new_session() -> str:
        return uuid.uuid4().hex

    def index_line() -> tuple[str, Any]:
        """The profile search line, and the timer kept ticking only while indexing runs."""
        try:
            state = index_status() if index_status else None
        except Exception as exc:  # noqa: BLE001 - a status line must never break the page
            log.warning("index status unavailable: %s", exc)
            state = None
        state = state_dict(state)
        return index_markdown(state), gr.Timer(active=state.get("state") in ("embedding", "writing"))

    def outputs_for(turn: Turn, final: bool) -> tuple:
        customers = turn.customer_frame()
        campaigns = turn.campaign_frame()
        tiers, scatter, campaign_chart = turn.tier_frame(), turn.scatter_frame(), turn.campaign_chart_frame()
        export = turn.export
        download = (gr.update(value=export["path"], visible=True, label=f"Download audience CSV ({export['rows']:,} rows)")
                    if export else gr.update(value=None, visible=False))
        export_button = gr.update(visible=bool(final and turn.audience and not export))
        if export:
            note = f"Audience file: {Path(export['path']).name}, {export['rows']:,} rows (written by export_audience)."
        elif final and turn.audience:
            note = "This answer describes an audience: export it as a CSV for your marketing tool."
        else:
            note = ""
        # Bring the table the answer is about to the front (campaign plans over their audience rows).
        tab = "campaigns" if not campaigns.empty else ("customers" if not customers.empty else None)
        return (
            turn.history,
            gr.update(selected=tab) if tab else gr.skip(),
            gr.update(value=customers, visible=not customers.empty),
            gr.update(value=campaigns, visible=not campaigns.empty),
            gr.update(value=tiers, visible=not tiers.empty),
            gr.update(value=scatter, visible=not scatter.empty),
            gr.update(value=campaign_chart, visible=not campaign_chart.empty),
            download,
            export_button,
            note,
            turn.audience,
        )

    def respond(message: str, history: list[dict[str, Any]] | None, session_id: str | None):
        session_id = session_id or new_session()
        for turn, kind in answer_stream(service, message, history, session_id):
            if kind == "token":  # cheap update: only the chat changes while text streams
                yield ("", turn.history, *([gr.skip()] * 10), session_id)
            else:
                yield ("", *outputs_for(turn, turn.finished), session_id)

    def export_audience(args: dict[str, Any] | None):
        """Write the current answer's audience with the export_audience tool (the same one the agent calls)."""
        if not args:
            return gr.update(visible=False), gr.update(), "There is no audience in this answer to export."
        try:
            envelope = service.registry.call("export_audience", args)
        except Exception as exc:  # noqa: BLE001 - the registry returns errors as data; this is a last guard
            log.exception("export_audience failed")
            return gr.update(visible=False), gr.update(), f"The export did not work: {friendly_exception(exc)}."
        if not envelope.ok:
            return gr.update(visible=False), gr.update(), f"The export did not work: {error_text(envelope.error)}"
        result = envelope.result or {}
        note = f"Audience file: {Path(result['path']).name}, {result['rows']:,} rows (written by export_audience)."
        return (gr.update(value=result["path"], visible=True, label=f"Download audience CSV ({result['rows']:,} rows)"),
                gr.update(visible=False), note)

    def new_chat(session_id: str | None):
        if session_id:
            try:
                service.reset(session_id)
            except Exception as exc:  # noqa: BLE001 - a fresh id below forgets the session either way
                log.warning("reset failed: %s", exc)
        turn = Turn(history=[])
        return ("", *outputs_for(turn, True), new_session())

    with gr.Blocks(title="ValueDesk", fill_width=True) as demo:
        session = gr.State(None)
        audience = gr.State(None)
        gr.Markdown("# ValueDesk\nCustomer value, churn risk and campaigns, answered from your own data.")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(elem_id="vd-chat", label="Conversation", height=520, buttons=["copy"],
                                  feedback_options=None,
                                  placeholder="Ask about your customers: who is at risk, why, and what to do.")
                with gr.Row():
                    box = gr.Textbox(elem_id="vd-input", show_label=False, scale=5, autofocus=True,
                                     placeholder="e.g. who are my at-risk top customers?", submit_btn=False)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="vd-send")
            with gr.Column(scale=2):
                backend = gr.Markdown(elem_id="vd-backend")
                index_note = gr.Markdown(elem_id="vd-index-status")
                index_timer = gr.Timer(2.0, active=index_status is not None)
                new = gr.Button("New chat", elem_id="vd-new-chat")
                gr.Markdown("**Try an example**")
                example_buttons = [gr.Button(q, size="sm", elem_classes=["vd-example"]) for q in EXAMPLES]
        with gr.Tabs(elem_id="vd-tabs") as tabs:
            with gr.Tab("Customers", id="customers"):
                table = gr.Dataframe(elem_id="vd-table", label="Customers in this answer", interactive=False,
                                     show_search="search", buttons=["fullscreen", "copy"], visible=False,
                                     max_height=420, wrap=False)
            with gr.Tab("Charts", id="charts"):
                with gr.Row():
                    tier_plot = gr.BarPlot(x="tier", y="customers", color="tier", label="Customers per tier",
                                           sort=TIER_ORDER, elem_id="vd-tier-plot", visible=False)
                    scatter_plot = gr.ScatterPlot(x="churn_risk", y="predicted_value", color="tier",
                                                  label="Predicted value vs churn risk",
                                                  x_title="Churn risk", y_title="Predicted value",
                                                  tooltip=["customer_id", "tier", "predicted_value", "churn_risk"],
                                                  elem_id="vd-scatter-plot", visible=False)
                    campaign_plot = gr.BarPlot(x="measure", y="amount", color="campaign",
                                               label="Campaign expected value vs cost", y_title="Amount",
                                               x_title="", sort=["Cost", "Expected revenue", "Expected net value"],
                                               elem_id="vd-campaign-plot", visible=False)
            with gr.Tab("Campaigns", id="campaigns"):
                campaign_table = gr.Dataframe(elem_id="vd-campaigns", label="Campaign plan", interactive=False,
                                              visible=False, wrap=True)
        with gr.Row():
            export_note = gr.Markdown(elem_id="vd-export-note")
            export_btn = gr.Button("Export this audience as CSV", visible=False, elem_id="vd-export")
            download = gr.DownloadButton("Download audience CSV", visible=False, elem_id="vd-download")

        view = [chat, tabs, table, campaign_table, tier_plot, scatter_plot, campaign_plot, download, export_btn,
                export_note, audience]
        chat_io = dict(fn=respond, inputs=[box, chat, session], outputs=[box, *view, session])
        box.submit(**chat_io)
        send.click(**chat_io)
        for button in example_buttons:
            button.click(lambda q: q, inputs=button, outputs=box, queue=False).then(**chat_io)
        export_btn.click(export_audience, inputs=audience, outputs=[download, export_btn, export_note])
        new.click(new_chat, inputs=session, outputs=[box, *view, session])
        chat.clear(new_chat, inputs=session, outputs=[box, *view, session])
        demo.load(lambda: (new_session(), panel_text()), outputs=[session, backend])
        if index_status is not None:
            demo.load(index_line, outputs=[index_note, index_timer], show_progress="hidden")
            index_timer.tick(index_line, outputs=[index_note, index_timer], show_progress="hidden")
    demo.valuedesk_allowed_paths = [str(Path(settings.data_dir) / "exports")]
    return demo


if __name__ == "__main__":
    from valuedesk.bootstrap import main

    sys.exit(main())
