"""ValueDesk chat UI: a Gradio app around the agent service.

Run it with `python ui.py` (or `valuedesk ui`). On first run, when the customer tables are missing,
it builds them from the bundled data (`valuedesk build --no-index`, about a minute, with progress in
the terminal), then serves on 127.0.0.1:7860 while the profiles are embedded and indexed in a
background thread (progress in the side panel; profile search says it is still being built).

This module is an adapter only: it turns the agent's events (tool_start, tool_end, token, answer,
error) into chat messages, tables, charts and downloads. Every number on screen comes from a tool
result; the only tool it calls itself is `export_audience`, through the shared registry, to turn
an answer's audience into a CSV on request.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger("valuedesk.ui")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860

EXAMPLES = (
    "who are my at-risk top customers?",
    "why is customer 14911 flagged?",
    "plan a win-back campaign for lapsed gold customers with a £2,000 budget",
    "plan campaigns for my Gold and Platinum customers with a £2,000 budget",
    "how are my customers spread across tiers?",
    "export the at-risk Platinum customers as a CSV",
    "how good is the model?",
)

TIER_ORDER = ["Platinum", "Gold", "Silver", "Bronze"]

# Columns of the customer table, in display order; a tool result may carry any subset.
CUSTOMER_COLUMNS = [
    "customer_id", "tier", "lifecycle", "segment", "country", "predicted_value", "churn_risk", "value_at_risk",
    "customer_value", "historical_value", "orders", "recency_days", "last_order", "score",
]
CAMPAIGN_COLUMNS = [
    "name", "goal", "channel", "offer_text", "audience_size", "control_group_size", "cost",
    "expected_incremental_revenue", "expected_net_value", "roi",
]
# Tools whose arguments describe an audience export_audience can write (search hits are not a filter).
AUDIENCE_TOOLS = {"find_customers": "filter", "segment_summary": "filter", "recommend_campaigns": "campaigns"}


# --------------------------------------------------------------------------- events -> view state


def _event_parts(event: Any) -> tuple[str, dict[str, Any]]:
    """(type, data) of an AgentEvent, or of the same thing as a dict."""
    if isinstance(event, dict):
        return str(event.get("type")), dict(event.get("data") or {})
    data = getattr(event, "data", None)
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    return str(getattr(event, "type", "")), dict(data or {})


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return dict(value) if isinstance(value, dict) else {}


def _json_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n```"


def _result_summary(name: str, result: dict[str, Any]) -> str:
    """One line about a tool result, for the collapsed step (counts and headline fields, no new numbers)."""
    parts = []
    for key, value in result.items():
        if isinstance(value, list):
            parts.append(f"{key}: {len(value)}")
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool) and len(str(value)) <= 40:
            parts.append(f"{key}: {value}")
        if len(parts) >= 6:
            break
    return "; ".join(parts) or f"{name} returned no fields"


def _error_text(error: Any) -> str:
    err = _as_dict(error) if not isinstance(error, str) else {"message": error}
    text = err.get("message") or "the tool failed"
    if err.get("code"):
        text = f"{text} ({err['code']})"
    if err.get("hint"):
        text += f"\n\n*What to do:* {err['hint']}"
    return text


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
        kind, data = _event_parts(event)
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
            "content": "**Arguments**\n" + _json_block(data.get("arguments") or {}),
            "metadata": {"title": f"Tool: {name}", "id": f"tool-{self._n}", "status": "pending"},
        })
        self._steps.append((len(self.history) - 1, name))
        self._text = None  # text after a tool call is a new message below the step

    def _tool_end(self, data: dict[str, Any]) -> None:
        name = str(data.get("name") or "tool")
        args = data.get("arguments") or {}
        result = _as_dict(data.get("result"))
        error = data.get("error")
        seconds = float(data.get("duration_ms") or 0.0) / 1000.0
        step = next((s for s in self._steps if s[1] == name), None)
        if step is None:  # a backend that reports only the end of a call
            self._tool_start({"name": name, "arguments": args})
            step = self._steps[-1]
        self._steps.remove(step)
        pos = step[0]
        content = "**Arguments**\n" + _json_block(args)
        meta = dict(self.history[pos]["metadata"])
        meta.update(status="done", duration=round(seconds, 3))
        if error:
            meta["title"] = f"Tool: {name} (failed)"
            meta["log"] = str(_as_dict(error).get("code") or "error")
            content += "\n\n**Error:** " + _error_text(error)
        else:
            meta["log"] = _result_summary(name, result)
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
                self._tool_end(_as_dict(call))
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
        if self.segments and self.segment_group_by == "tier":
            return pd.DataFrame({"tier": [g["group"] for g in self.segments],
                                 "customers": [int(g["customers"]) for g in self.segments]})
        frame = self.customer_frame()
        if frame.empty or "tier" not in frame:
            return pd.DataFrame(columns=["tier", "customers"])
        counts = frame["tier"].dropna().value_counts()
        tiers = [t for t in TIER_ORDER if t in counts.index] + [t for t in counts.index if t not in TIER_ORDER]
        return pd.DataFrame({"tier": tiers, "customers": [int(counts[t]) for t in tiers]})

    def scatter_frame(self) -> pd.DataFrame:
        frame = self.customer_frame()
        needed = ["customer_id", "churn_risk", "predicted_value"]
        if frame.empty or any(c not in frame for c in needed):
            return pd.DataFrame(columns=needed + ["tier"])
        cols = needed + (["tier"] if "tier" in frame else [])
        return frame[cols].dropna(subset=["churn_risk", "predicted_value"])

    def campaign_chart_frame(self) -> pd.DataFrame:
        """Cost, expected incremental revenue and expected net value, one bar each, split by campaign."""
        measures = {"cost": "Cost", "expected_incremental_revenue": "Expected revenue",
                    "expected_net_value": "Expected net value"}
        rows = [{"measure": label, "amount": float(c[key]), "campaign": str(c.get("name"))}
                for c in self.campaigns for key, label in measures.items() if c.get(key) is not None]
        return pd.DataFrame(rows, columns=["measure", "amount", "campaign"])


def export_arguments(args: dict[str, Any], source: str) -> dict[str, Any]:
    """export_audience arguments for the audience another tool call described (its filter, goal, budget)."""
    from tools.models import ExportAudienceArgs

    allowed = set(ExportAudienceArgs.model_fields)
    out = {k: v for k, v in (args or {}).items() if k in allowed and v is not None}
    out["source"] = source
    if source == "filter":
        for key in ("goal", "budget", "campaign"):
            out.pop(key, None)
    return out


def customer_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=["customer_id"])
    cols = [c for c in CUSTOMER_COLUMNS if c in frame and frame[c].notna().any()]
    frame = frame[cols]
    for col in frame.columns:
        if col == "churn_risk" or col == "score":
            frame[col] = pd.to_numeric(frame[col], errors="coerce").round(3)
        elif col in ("predicted_value", "value_at_risk", "customer_value", "historical_value", "recency_days"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").round(2)
    return frame


def campaign_frame(campaigns: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(campaigns)
    if frame.empty:
        return pd.DataFrame(columns=["name"])
    frame = frame[[c for c in CAMPAIGN_COLUMNS if c in frame]]
    for col in ("cost", "expected_incremental_revenue", "expected_net_value"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").round(2)
    if "roi" in frame:
        frame["roi"] = pd.to_numeric(frame["roi"], errors="coerce").round(3)
    return frame


def friendly(message: str) -> str:
    message = message.strip() or "the assistant could not answer"
    return (f"Sorry, I couldn't answer that: {message}\n\n"
            "You can rephrase the question, try one of the examples, or start a new chat.")


def friendly_exception(exc: BaseException, backend: dict[str, Any] | None = None) -> str:
    """Words for an exception that escaped the agent service; the traceback goes to the log only."""
    from predictor.errors import ValueDeskError

    if isinstance(exc, ValueDeskError):
        return str(exc)
    name = type(exc).__name__
    backend = backend or {}
    remote = backend.get("backend") in ("vllm", "openai")
    if remote and ("Connection" in name or "Timeout" in name or isinstance(exc, (ConnectionError, TimeoutError))):
        where = backend.get("base_url") or "the configured endpoint"
        return (f"the language model at {where} is not answering ({name}). Check that it is running "
                "(`valuedesk serve-llm` for vLLM), or set VALUEDESK_LLM_BACKEND=offline to use the offline planner")
    return f"something went wrong while answering ({name}); the details are in the server log"


def backend_markdown(info: dict[str, Any] | None, error: str | None = None) -> str:
    if error:
        return f"**Backend:** unavailable ({error})"
    info = info or {}
    backend = info.get("backend") or "unknown"
    model = info.get("model")
    url = info.get("base_url")
    if backend == "offline":
        lines = ["**Answering:** offline planner. No LLM is answering: questions are matched to tools by rules, "
                 "and the reply is written from the tool results."]
    elif backend == "vllm":
        lines = [f"**Answering:** vLLM serving `{model or 'unknown model'}`" + (f" at {url}" if url else "")]
    elif backend == "openai":
        lines = [f"**Answering:** OpenAI-compatible endpoint {url or '(default)'}, model `{model or 'unknown'}`"]
    else:
        lines = [f"**Answering:** {backend}" + (f", model `{model}`" if model else "")]
    window = info.get("training_window")
    if isinstance(window, dict) and window:
        first, last = window.get("first_cutoff"), window.get("last_cutoff")
        span = f"cutoffs {first} to {last}" if first and last else ", ".join(f"{k} {v}" for k, v in window.items())
        if window.get("label_days"):
            span += f", each predicting the next {window['label_days']} days"
    else:
        span = str(window) if window else "unknown (no trained model found)"
    lines.append(f"**Model training window:** {span}")
    data_range = info.get("data_range")
    if isinstance(data_range, dict):
        data_range = (f"{data_range.get('start')} to {data_range.get('end')}"
                      if data_range.get("start") or data_range.get("end") else None)
    if data_range:
        lines.append(f"**Data:** {data_range}")
    return "\n\n".join(lines)


def _state_dict(state: Any) -> dict[str, Any]:
    if state is not None and hasattr(state, "as_dict"):
        return state.as_dict()
    return _as_dict(state)


def index_markdown(state: Any) -> str:
    """One line about profile search while it is being built (a predictor.search.jobs.IndexState or its dict)."""
    state = _state_dict(state)
    kind, done, total = state.get("state"), int(state.get("done") or 0), int(state.get("total") or 0)
    share = f"{done:,} of {total:,} profiles ({int(100 * done / total) if total else 0}%)"
    if kind == "embedding":
        text = f"indexing {share}" if total else "preparing to index the profiles"
        return f"**Profile search:** {text}; every other question answers now."
    if kind == "writing":
        return f"**Profile search:** writing {total:,} profiles to the index."
    if kind == "ready":
        return f"**Profile search:** ready ({total:,} profiles)." if total else "**Profile search:** ready."
    if kind == "interrupted":
        return f"**Profile search:** indexing stopped at {share}; restart the UI to resume it."
    if kind == "failed":
        return f"**Profile search:** indexing failed at {share} ({state.get('message')}); run `valuedesk build`."
    return ""


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


def build_app(service: Any = None, settings: Any = None, index_status: Any = None):
    """The Gradio Blocks app around `service` (an AgentService: stream, backend_info, reset).

    `index_status`, when given, is a callable returning the background indexing state (shown
    under the backend panel and refreshed every few seconds until the index is ready)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from predictor.settings import get_settings

    settings = settings or getattr(service, "settings", None) or get_settings()
    if service is None:
        from agent.service import get_agent_service

        service = get_agent_service(settings)

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
        state = _state_dict(state)
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
            registry = getattr(service, "registry", None)
            if registry is None:
                from tools.registry import get_registry

                registry = get_registry(settings)
            envelope = registry.call("export_audience", args)
        except Exception as exc:  # noqa: BLE001 - the registry returns errors as data; this is a last guard
            log.exception("export_audience failed")
            return gr.update(visible=False), gr.update(), f"The export did not work: {friendly_exception(exc)}."
        if not envelope.ok:
            return gr.update(visible=False), gr.update(), f"The export did not work: {_error_text(envelope.error)}"
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


def launch(demo, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **kwargs):
    """Serve the app; files under the data directory's exports folder may be downloaded."""
    allowed = list(getattr(demo, "valuedesk_allowed_paths", []))
    for path in allowed:
        Path(path).mkdir(parents=True, exist_ok=True)
    return demo.queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, allowed_paths=allowed, show_error=False, **kwargs)


# --------------------------------------------------------------------------- first run


def missing_artifacts(settings: Any, with_index: bool = True) -> list[str]:
    """What a first run still has to build: scores, customer tables, and (with a local index) the index."""
    missing = [p.name for p in (settings.scores_path, settings.customers_path) if not Path(p).exists()]
    if with_index and not settings.chroma_url:
        from predictor.layout import current_version

        # The serving build records the collection indexed for it; a chroma/ folder alone may be a run cut short.
        if not Path(settings.index_dir).exists() or not current_version(settings.data_dir).index_record():
            missing.append(Path(settings.index_dir).name + "/")
    return missing


def ensure_built(settings: Any, with_index: bool = True, progress: bool = True, background_index: bool = True) -> Any:
    """Build the data directory from the configured data when something is missing; None when complete.

    The customer tables come first and this returns as soon as they exist: embedding and indexing
    the profiles (minutes) go on in a background thread of this process (predictor.search.jobs),
    resuming whatever an earlier run left, while every other question already answers; profile
    search says it is still being built until then. `background_index=False` indexes here first
    (the old behaviour): when that fails, it says so and the app runs without profile search.
    """
    missing = missing_artifacts(settings, with_index)
    if not missing:
        return None
    from predictor.build import build
    from predictor.errors import ValueDeskError

    index_name = Path(settings.index_dir).name + "/"
    tables_missing = [m for m in missing if m != index_name]
    report = None
    if tables_missing or not background_index:
        print(f"First run: {', '.join(missing)} missing under {settings.data_dir}; building from "
              f"{settings.default_data} (about a minute; later runs start in seconds).", flush=True)
        try:
            report = build(settings, with_index=with_index and not background_index, progress=progress)
        except ValueDeskError as exc:
            if tables_missing:
                raise
            print(f"warning: the profile index could not be built ({exc}); starting without profile search.",
                  file=sys.stderr, flush=True)
            return None
        print(report.summary(), flush=True)
    if with_index and background_index:
        from predictor.search.jobs import start_index_job

        start_index_job(settings)
        print("Profile search: indexing the profiles in the background (progress in the UI's side panel); "
              "every other question answers now.", flush=True)
    return report


WARM_SESSION = "valuedesk-ui-warm-up"


def warm(service: Any) -> None:
    """Load the customer tables and the agent in the background, so the first question does not wait.

    With the offline planner, one local question also loads its intent embeddings (exported once per
    data directory); an LLM backend is not asked anything.
    """
    def run() -> None:
        try:
            registry = getattr(service, "registry", None)
            if registry is not None and hasattr(registry, "warm"):
                registry.warm()  # tables plus the caches the fast tools use (sort orders, row reader, planning frame)
            getattr(service, "graph", None)
            if (service.backend_info() or {}).get("backend") == "offline":
                service.chat("how are my customers spread across tiers?", WARM_SESSION)
                service.reset(WARM_SESSION)
        except Exception as exc:  # noqa: BLE001 - the first question reports whatever is really wrong
            log.info("warm-up incomplete: %s", exc)

    import threading

    threading.Thread(target=run, name="valuedesk-warm", daemon=True).start()


# --------------------------------------------------------------------------- command line


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--no-build", action="store_true",
                        help="do not build missing scores or index first (questions then report what is missing)")
    parser.add_argument("--no-index", action="store_true", help="build without the profile search index")


def _run(args: argparse.Namespace) -> int:
    from predictor.settings import get_settings

    settings = get_settings()
    if not args.no_build:
        ensure_built(settings, with_index=not args.no_index)
    from agent.service import get_agent_service
    from predictor.search.jobs import read_index_state

    service = get_agent_service(settings)
    demo = build_app(service=service, settings=settings, index_status=lambda: read_index_state(settings.data_dir))
    warm(service)
    print(f"ValueDesk UI on http://{args.host}:{args.port}", flush=True)
    launch(demo, args.host, args.port)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `valuedesk ui` subcommand (entry point `valuedesk.commands`: ui = "ui:register")."""
    p = sub.add_parser("ui", help="open the chat UI in the browser (builds the data on first run)",
                       description="Serve the ValueDesk chat UI on 127.0.0.1:7860. On first run, builds scores, "
                                   "customer tables and the profile index from the configured data.")
    _add_arguments(p)
    p.set_defaults(handler=_run)


def main(argv: list[str] | None = None) -> int:
    from predictor.errors import ValueDeskError

    parser = argparse.ArgumentParser(prog="python ui.py", description="ValueDesk chat UI.")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except ValueDeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
