"""How agent replies, tool results and the backend's state read to a person: pure text, markdown and
table helpers shared by the screens (ui.py) and anything else that shows an answer. No I/O, no state."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from predictor.customers.audience import TIERS
from predictor.figures import GLOSSARY, name, pct

TIER_ORDER = list(TIERS)  # best first, as predictor.customers.audience orders them

# Columns of the customer table, in display order; a tool result may carry any subset.
CUSTOMER_COLUMNS = [
    "customer_id", "tier", "lifecycle", "segment", "country", "predicted_value", "churn_risk", "value_at_risk",
    "customer_value", "historical_value", "orders", "recency_days", "last_order", "score",
]
CAMPAIGN_COLUMNS = [
    "name", "goal", "channel", "offer_text", "audience_size", "control_group_size", "cost",
    "expected_incremental_revenue", "expected_net_value", "roi",
]


EXAMPLES = (
    "who are my at-risk top customers?",
    "why is customer 14911 flagged?",
    "plan a win-back campaign for lapsed customers with a £2,000 budget",
    "plan campaigns for my Gold and Platinum customers with a £2,000 budget",
    "how are my customers spread across tiers?",
    "export my at-risk customers as a CSV",
    "how good is the model?",
)

# Tools whose arguments describe an audience export_audience can write (search hits are not a filter).
AUDIENCE_TOOLS = {"find_customers": "filter", "segment_summary": "filter", "recommend_campaigns": "campaigns"}


def event_parts(event: Any) -> tuple[str, dict[str, Any]]:
    """(type, data) of an AgentEvent, or of the same thing as a dict."""
    if isinstance(event, dict):
        return str(event.get("type")), dict(event.get("data") or {})
    data = getattr(event, "data", None)
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    return str(getattr(event, "type", "")), dict(data or {})


def as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return dict(value) if isinstance(value, dict) else {}


def json_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n```"


def result_summary(name: str, result: dict[str, Any]) -> str:
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


def error_text(error: Any) -> str:
    err = as_dict(error) if not isinstance(error, str) else {"message": error}
    text = err.get("message") or "the tool failed"
    if err.get("code"):
        text = f"{text} ({err['code']})"
    if err.get("hint"):
        text += f"\n\n*What to do:* {err['hint']}"
    return text


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
    """The customer table as shown: amounts rounded, churn risk written as every answer writes it
    (predictor.figures.pct: "under 1%", never "0%"). The numbers behind the shown churn risk travel in
    `attrs["churn_risk"]` for the charts (`scatter_frame`)."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=["customer_id"])
    cols = [c for c in CUSTOMER_COLUMNS if c in frame and frame[c].notna().any()]
    frame = frame[cols].copy()
    for col in frame.columns:
        if col == "score":
            frame[col] = pd.to_numeric(frame[col], errors="coerce").round(3)
        elif col in ("predicted_value", "value_at_risk", "customer_value", "historical_value", "recency_days"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").round(2)
    if "churn_risk" in frame:
        churn = pd.to_numeric(frame["churn_risk"], errors="coerce")
        frame["churn_risk"] = churn.map(pct)
        frame.attrs["churn_risk"] = churn.tolist()  # a plain list: attrs are compared and copied by pandas
    return frame


def glossary_markdown(columns: Iterable[str]) -> str:
    """What each shown column means, from the one glossary the answers use (predictor.figures), for a
    legend under a table: "- churn_risk (churn risk): Chance that ..."."""
    lines = [f"- `{c}` ({GLOSSARY[c].name}): {GLOSSARY[c].meaning}" for c in columns if c in GLOSSARY]
    return "\n".join(lines)


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


def tier_frame(customers: pd.DataFrame, tier_segments: list[dict[str, Any]]) -> pd.DataFrame:
    """Customers per tier: from a segment summary grouped by tier when there is one, else counted."""
    if tier_segments:
        return pd.DataFrame({"tier": [g["group"] for g in tier_segments],
                             "customers": [int(g["customers"]) for g in tier_segments]})
    if customers.empty or "tier" not in customers:
        return pd.DataFrame(columns=["tier", "customers"])
    counts = customers["tier"].dropna().value_counts()
    tiers = [t for t in TIER_ORDER if t in counts.index] + [t for t in counts.index if t not in TIER_ORDER]
    return pd.DataFrame({"tier": tiers, "customers": [int(counts[t]) for t in tiers]})


def scatter_frame(customers: pd.DataFrame) -> pd.DataFrame:
    """Churn risk against predicted value, from the numbers behind the shown table (`customer_frame`)."""
    needed = ["customer_id", "churn_risk", "predicted_value"]
    if customers.empty or any(c not in customers for c in needed):
        return pd.DataFrame(columns=needed + ["tier"])
    cols = needed + (["tier"] if "tier" in customers else [])
    frame = customers[cols].copy()
    numbers = customers.attrs.get("churn_risk")
    frame["churn_risk"] = numbers if numbers is not None and len(numbers) == len(frame) else \
        pd.to_numeric(frame["churn_risk"], errors="coerce")
    frame.attrs = {}
    return frame.dropna(subset=["churn_risk", "predicted_value"])


def campaign_chart_frame(campaigns: list[dict[str, Any]]) -> pd.DataFrame:
    """Cost, expected incremental revenue and expected net value, one bar each, split by campaign."""
    measures = {key: name(key).capitalize() for key in ("cost", "expected_incremental_revenue", "expected_net_value")}
    rows = [{"measure": label, "amount": float(c[key]), "campaign": str(c.get("name"))}
            for c in campaigns for key, label in measures.items() if c.get(key) is not None]
    return pd.DataFrame(rows, columns=["measure", "amount", "campaign"])


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


def state_dict(state: Any) -> dict[str, Any]:
    if state is not None and hasattr(state, "as_dict"):
        return state.as_dict()
    return as_dict(state)


def index_markdown(state: Any) -> str:
    """One line about profile search while it is being built (a predictor.search.jobs.IndexState or its dict)."""
    state = state_dict(state)
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
