"""The answer stage: the reply written from templates over the tool results, so every number in it is
a figure of a result (see `templates`), plus what became of file targets the request named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.planner import templates
from agent.planner.plan import Plan
from predictor.settings import Settings


def write_answer(plan: Plan, traces: list[dict[str, Any]], settings: Settings) -> tuple[str, str]:
    """(answer text, kind) from the tool results; kind is "error" when a tool could not run at all."""
    parts, kind = [], "answer"
    for trace in traces:
        if trace.get("error"):
            err = trace["error"]
            parts.append(f"I could not get that from {trace['name']}: {err.get('message')}"
                         + (f" {err.get('hint')}" if err.get("hint") else ""))
            if err.get("code") in ("not_built", "index_unavailable", "internal_error"):
                kind = "error"
            continue
        result = trace["result"]
        if trace["name"] == "export_audience" and isinstance(result, dict):
            parts.append(export_text(result, trace.get("arguments") or {}, settings))
            continue
        render = getattr(templates, trace["name"], None)
        parts.append(render(result, trace.get("arguments") or {}, settings) if render
                     else json.dumps(result)[:2000])
    if plan.variant == "campaign_for_one":
        detail = next((t["result"] for t in traces if t.get("name") == "get_customer" and t.get("result")), None)
        if detail:
            parts.append(one_customer_campaign_text(detail))
    if plan.dropped:
        parts.append(dropped_text(plan.dropped, traces))
    if plan.note:
        parts.append(plan.note)
    return "\n\n".join(parts), kind


def export_text(result: dict[str, Any], args: dict[str, Any], settings: Settings) -> str:
    """The export answer, naming the file relative to the data directory (never the server's absolute
    path) and saying when it expires."""
    shown = {**result, "path": result.get("file") or Path(str(result.get("path") or "")).name}
    text = templates.export_audience(shown, args, settings)
    expires = str(result.get("expires_at") or "")
    if expires:
        when = expires[:16].replace("T", " ")
        text += f" It is kept until about {when} UTC; older exports are deleted when a new one is written."
    return text


def one_customer_campaign_text(detail: dict[str, Any]) -> str:
    """Why a campaign asked for one customer is answered with their detail, and how to plan for a group:
    a campaign plan chooses customers from an audience within a budget, so one customer's plan is their
    next best action, one contact the budget does not limit. No figure: the detail above holds them."""
    nba = detail.get("next_best_action") or {}
    action = (f"their next best action ({templates.campaign_label(nba['campaign'])}, above): one contact, which the budget does not limit"
              if nba.get("campaign") else "their next best action, and none has a positive expected net value for them")
    stage = detail.get("lifecycle")
    like = " ".join(x for x in (detail.get("tier"), "customers") if x) + (f" in the {stage} stage" if stage else "")
    return (f"A campaign plan chooses customers from an audience within a budget, so for this one customer the "
            f"campaign is {action}. To spend the budget on customers like them, ask for a campaign for {like}, or "
            "name another audience.")


def dropped_text(targets: list[str], traces: list[dict[str, Any]]) -> str:
    """What became of the paths and file names the request gave: never used, and said so."""
    shown = " or ".join(targets[:3]) + (" (and the others named)" if len(targets) > 3 else "")
    written = next((t["result"] for t in traces if t.get("name") == "export_audience" and t.get("result")), None)
    if written:
        return (f"I can't write to {shown}: exports are always written under the data directory's exports folder "
                f"with a name I choose, so this one is {written.get('file') or 'in that folder'}. Nothing was "
                "written anywhere else or sent anywhere.")
    return (f"I can't write to {shown}: exports are only ever written under the data directory's exports folder, "
            "with a name I choose. Nothing was written there or anywhere else for this request.")
