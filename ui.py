"""ValueDesk chat UI: a Gradio app around the agent service.

Run it with `python ui.py` (or `valuedesk ui`); the first-run build, the warm-up and the launch are
the wiring's (valuedesk.bootstrap), and the words, tables, charts and cards shown come from
agent.display and agent.display_* (answer, table, charts, spread, lift, page).

This module is an adapter only: it turns the agent's events (tool_start, tool_end, token, answer,
error) into chat messages, a status line, tables, charts, a customer card and downloads (the events
become a `Turn` in agent.display_turn). Every number on screen comes from a tool result; the only
tools it calls itself go through the shared registry: `export_audience`, to turn an answer's audience
into a CSV on request, and the answer's own find_customers call again with another `offset` when a
marketer pages through every matching row (Next / Previous), or with another `sort_by` from the first
row when they click the header of a column it ranks by (so a sort covers every matching row, not a page).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import gradio as gr  # noqa: E402 - after the analytics switch above

from agent.display import (  # noqa: E402
    EXAMPLES, backend_markdown, error_text, friendly_exception, index_markdown, state_dict,
)
from agent.display_answer import AnswerResults, results_panels  # noqa: E402
from agent.display_charts import TIER_COLOURS, TIER_ORDER, VALUE_MEASURES, measure_label  # noqa: E402
from agent.display_page import CSS, HEAD, SCROLL_JS  # noqa: E402
from agent.display_table import plural  # noqa: E402
from agent.display_turn import Turn, answer_stream  # noqa: E402, F401 - answer_stream: the adapter's entry point
from tools.principals import LOCAL_SERVER, Caller, key_store, named, run_as  # noqa: E402

log = logging.getLogger("valuedesk.ui")
TOKEN_REFRESH_S = 0.5  # streamed text is shown in chunks at most this often, never token by token


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


RESULT_OUTPUTS = len(results_panels(AnswerResults()))  # the results column's components


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
        *_pager(),
        gr.Dataframe(elem_id="vd-campaigns", label="Campaign plan", interactive=False, visible=False, wrap=False,
                     elem_classes=["vd-sortable"]),
        gr.BarPlot(x="tier", y="customers", color="tier", color_map=TIER_COLOURS, sort=TIER_ORDER,
                   label="Customers per tier", x_title="Tier", y_title="Customers", elem_id="vd-tier-plot", **common),
        gr.HTML(elem_id="vd-spread-plot", visible=False, label="Predicted value per customer, by tier"),
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
        gr.HTML(elem_id="vd-lift-plot", visible=False, label="Revenue by decile of predicted value"),
        gr.HTML(elem_id="vd-health", visible=False, label="Model health"),
        gr.Markdown(elem_id="vd-glossary", visible=False),
    ]


def _pager() -> list:
    """"Rows 21-40 of 931", Previous and Next: every matching row of a list, one page at a time."""
    with gr.Row(elem_id="vd-pager", equal_height=True):
        return [gr.Markdown(elem_id="vd-page", visible=False),
                gr.Button("Previous", size="sm", visible=False, elem_id="vd-prev", min_width=90, scale=0),
                gr.Button("Next", size="sm", visible=False, elem_id="vd-next", min_width=90, scale=0)]


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

    store = key_store(settings)

    def caller_of(request: gr.Request | None) -> Caller:
        """The signed-in principal (VALUEDESK_UI_USERS), else the local server principal."""
        name = getattr(request, "username", None) if settings.ui_users else None
        principal = named(store, name) if name else None
        return Caller(principal or LOCAL_SERVER, "ui")

    def respond(message: str, history: list[dict[str, Any]] | None, session_id: str | None,
                request: gr.Request = None):
        session_id = session_id or uuid.uuid4().hex
        shown = 0.0
        for turn, kind in run_as(caller_of(request), answer_stream(service, message, history, session_id)):
            now = time.perf_counter()
            if kind in ("token", "tool_start", "user"):  # cheap updates: the chat and the status line only
                if kind == "token" and now - shown < TOKEN_REFRESH_S:
                    continue  # text arrives in chunks, not one browser update per token
                shown = now
                yield ("", turn.history, turn.status(), *([gr.skip()] * (RESULT_OUTPUTS + 5)), session_id)
            else:
                shown = now
                yield ("", *outputs_for(turn), session_id)

    def call_tool(tool: str, args: dict[str, Any], caller: Caller) -> tuple[dict[str, Any] | None, str | None]:
        """One tool call through the shared registry: (result, None) or (None, what went wrong)."""
        try:
            envelope = service.registry.call(tool, args, caller)
        except Exception as exc:  # noqa: BLE001 - the registry returns errors as data; this is a last guard
            log.exception("%s failed", tool)
            return None, friendly_exception(exc)
        return (envelope.result or {}, None) if envelope.ok else (None, error_text(envelope.error))

    def turn_page(results: AnswerResults | None, step: int, request: gr.Request = None):
        """Another page of the answer's list: find_customers again with the next or previous `offset`."""
        return requery(results, results.page_call(step) if results else None, caller_of(request))

    def sort_rows(header: str, results: AnswerResults | None, request: gr.Request = None):
        """A header click on a list longer than its page (the page's script sends "header|time"): find_customers
        again, every matching row ranked by that column, from the first row."""
        return requery(results, results.sort_call((header or "").rsplit("|", 1)[0]) if results else None,
                       caller_of(request))

    def requery(results: AnswerResults | None, page: dict[str, Any] | None, caller: Caller):
        """The answer's list from find_customers again (another page, another ranking): the results column."""
        if page is None:
            return (*([gr.skip()] * RESULT_OUTPUTS), results)
        result, problem = call_tool(page["tool"], page["args"], caller)
        if problem:
            return (gr.update(value=f"The next rows could not be fetched: {problem}"),
                    *([gr.skip()] * (RESULT_OUTPUTS - 1)), results)
        results.replace_rows(page["tool"], page["args"], result)
        return (*results_updates(results), results)

    def pager(step: int):
        def page(results: AnswerResults | None, request: gr.Request = None):
            return turn_page(results, step, request)
        return page

    def export_audience(args: dict[str, Any] | None, request: gr.Request = None):
        """Write the current answer's audience with the export_audience tool (the same one the agent calls)."""
        if not args:
            return gr.update(visible=False), gr.update(), "There is no audience in this answer to export."
        result, problem = call_tool("export_audience", args, caller_of(request))
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

    # Gradio 6 takes the page's CSS and <head> at launch(), not in Blocks(): the wiring's launch passes these.
    demo = gr.Blocks(title="ValueDesk", fill_width=True)
    demo.valuedesk_page = {"css": CSS, "head": HEAD}
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
            # In the page but never shown: a header click on a paged list asks for all rows ranked by it.
            sort_request = gr.Textbox(visible="hidden", elem_id="vd-sort-request")
            sort_go = gr.Button("Rank all rows", visible="hidden", elem_id="vd-sort-go")

        view = [chat, status, *results_view, download, export_btn, export_note, audience, results_state]
        chat_io = dict(fn=respond, inputs=[box, chat, session], outputs=[box, *view, session], show_progress="hidden")
        box.submit(**chat_io).then(None, js=SCROLL_JS)
        send.click(**chat_io).then(None, js=SCROLL_JS)
        for button in example_buttons:
            button.click(lambda q: q, inputs=button, outputs=box, queue=False).then(**chat_io).then(None, js=SCROLL_JS)
        for button, step in ((results_view[4], -1), (results_view[5], 1)):
            button.click(pager(step), inputs=results_state,
                         outputs=[*results_view, results_state])
        sort_go.click(sort_rows, inputs=[sort_request, results_state], outputs=[*results_view, results_state])
        export_btn.click(export_audience, inputs=audience, outputs=[download, export_btn, export_note])
        new.click(new_chat, inputs=session, outputs=[box, *view, session])
        chat.clear(new_chat, inputs=session, outputs=[box, *view, session])
        demo.load(lambda: (uuid.uuid4().hex, panel_text()), outputs=[session, backend])
        if index_status is not None:
            demo.load(index_line, outputs=[index_note, index_timer], show_progress="hidden")
            index_timer.tick(index_line, outputs=[index_note, index_timer], show_progress="hidden")
    demo.valuedesk_allowed_paths = [str(settings.exports_path)]
    return demo


if __name__ == "__main__":
    from valuedesk.bootstrap import main

    sys.exit(main())
