"""What one answer's tool results show besides its text: the customer list (with how many match and a
pager through every matching row), the customer card, the segment and campaign figures, the model's lift
chart, and the answer text itself, tidied for a screen that shows the table next to it.

`AnswerResults` collects tool results as their tool_end events arrive (ui.py feeds them in); the
functions below turn it into the views. No I/O; every number is a tool result's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, get_args

from predictor.figures import money, name, pct
from agent.display_charts import (
    campaign_value, group_colours, risk_value_points, tier_counts, value_axis, value_by_group,
)
from agent.display_health import health_card
from agent.display_lift import lift_chart
from agent.display_spread import spread_chart
from agent.display_table import (
    campaign_table, column_label, playbook_label, customer_focus, customer_table, glossary_caption, plural,
    table_summary,
)
from tools.models import SortKey

LIST_TOOLS = ("find_customers", "search_profiles")
# The status line while a tool runs: what it does, in words (the tool's name follows in brackets).
TOOL_PROGRESS = {
    "find_customers": "Looking up customers", "get_customer": "Reading the customer's record",
    "segment_summary": "Adding up your segments", "search_profiles": "Searching customer profiles",
    "recommend_campaigns": "Planning campaigns", "export_audience": "Writing the audience file",
    "score_customer": "Scoring the order history", "model_report": "Reading the model report",
    "model_health": "Checking the model's health",
}
PAGED_TOOL = "find_customers"  # pages with `offset`; search_profiles returns its best hits only
PAGE_SIZE = 20  # find_customers' default limit: a page when the answer's call named none
RANKABLE = get_args(SortKey)  # the columns find_customers ranks every matching row by (its `sort_by`)


@dataclass
class AnswerResults:
    """The tool results behind one answer, kept as the tools returned them."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # customer id -> merged row
    list_call: dict[str, Any] | None = None  # {"tool", "args", "total", "shown", "sort_by", "horizon_days"}
    detail: dict[str, Any] | None = None  # a get_customer result
    groups: list[dict[str, Any]] = field(default_factory=list)
    group_by: str | None = None
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    lift: list[dict[str, Any]] = field(default_factory=list)  # model_report's validation.lift_by_decile
    validation: dict[str, Any] | None = None  # model_report's held-out window (cutoff, label_days)
    health: dict[str, Any] | None = None  # a model_health result
    currency: str = "£"

    def collect(self, tool: str, args: dict[str, Any], result: dict[str, Any]) -> None:
        self.currency = str(result.get("currency") or self.currency)
        if tool in LIST_TOOLS:
            rows = list(result.get("customers") or result.get("hits") or [])
            self.list_call = {"tool": tool, "args": dict(args or {}), "shown": result.get("returned", len(rows)),
                              "total": result.get("total_matching", len(rows)),
                              "offset": int((args or {}).get("offset") or 0),
                              "sort_by": result.get("sort_by"), "horizon_days": result.get("horizon_days"),
                              "focus": customer_focus(tool, args, result)}
            for row in rows:
                self.rows.setdefault(str(row.get("customer_id")), {}).update(row)
        elif tool == "get_customer" and result.get("customer_id"):
            self.detail = result
            self.rows.setdefault(str(result["customer_id"]), {}).update(result)
        elif tool == "segment_summary":
            self.groups, self.group_by = list(result.get("groups") or []), result.get("group_by")
        elif tool == "recommend_campaigns":
            self.campaigns = list(result.get("campaigns") or [])
        elif tool == "model_report":  # a build made before the lift was recorded has none: no chart
            self.validation = dict(result.get("validation") or {})
            self.lift = list(self.validation.get("lift_by_decile") or [])
        elif tool == "model_health" and result.get("model"):
            self.health = result

    def replace_rows(self, tool: str, args: dict[str, Any], result: dict[str, Any]) -> None:
        """A pager call's result: the same list, another page of its rows."""
        self.rows.clear()
        self.collect(tool, args, result)

    @property
    def customer_rows(self) -> list[dict[str, Any]]:
        return list(self.rows.values())

    def sort_call(self, header: str) -> dict[str, Any] | None:
        """find_customers again, ranked by the column under `header` (as the table heads it), from the first
        row: a header click on a list longer than one page ranks every matching row, not the page on screen.
        None when the list does not page or find_customers does not rank by that column."""
        call = self.list_call
        if not call or call["tool"] != PAGED_TOOL or (call["total"] <= call["shown"] and not call["offset"]):
            return None
        column = next((c for c in RANKABLE if column_label(c, self.currency) == header.strip()), None)
        if column is None:
            return None
        size = int(call["args"].get("limit") or PAGE_SIZE)
        return {"tool": PAGED_TOOL, "args": {**call["args"], "sort_by": column, "limit": size, "offset": 0}}

    def page_call(self, step: int) -> dict[str, Any] | None:
        """find_customers again for the next (`step` 1) or previous (-1) page of the same list, in the same
        order (its `offset`); None at either end or for a list that does not page."""
        call = self.list_call
        if not call or call["tool"] != PAGED_TOOL:
            return None
        size, offset = int(call["args"].get("limit") or PAGE_SIZE), call["offset"]
        start = offset + size if step > 0 else max(0, offset - size)
        if (step > 0 and start >= call["total"]) or (step < 0 and offset == 0):
            return None
        return {"tool": PAGED_TOOL, "args": {**call["args"], "limit": size, "offset": start}}


def pager_line(results: AnswerResults) -> str:
    """"Rows 21-40 of 931" for a list longer than one page, else ""."""
    call = results.list_call
    if not call or call["tool"] != PAGED_TOOL or (call["total"] <= call["shown"] and not call["offset"]):
        return ""
    if not call["shown"]:
        return f"No rows from row {call['offset'] + 1:,} on; {call['total']:,} in all"
    return f"Rows {call['offset'] + 1:,}–{call['offset'] + call['shown']:,} of {call['total']:,}"


def list_summary(results: AnswerResults) -> str:
    call = results.list_call
    if not call:
        return ""
    noun = "profile" if call["tool"] == "search_profiles" else "customer"
    total = call["total"] if call["tool"] == "find_customers" else None
    ranked = call["sort_by"] if call["tool"] == "find_customers" else None
    return table_summary(call["shown"], total, noun, ranked, call.get("horizon_days"), first=call["offset"] + 1)


def customer_card(row: dict[str, Any], currency: str = "£") -> str:
    """One customer as a card: who, then the figures a marketer acts on, then the next best action."""
    who = " · ".join(str(row[k]) for k in ("tier", "lifecycle", "segment", "country") if row.get(k))
    figures = [(name("predicted_value"), money(row.get("predicted_value"), currency)),
               (name("churn_risk"), pct(row.get("churn_risk"))),
               (name("value_at_risk"), money(row.get("value_at_risk"), currency)),
               (name("historical_value"), money(row.get("historical_value"), currency)),
               ("orders", f"{int(row['orders']):,}" if row.get("orders") is not None else None),
               ("last order", row.get("last_order"))]
    cells = [f"<div class='vd-fig'><span>{label.capitalize()}</span><b>{value}</b></div>"
             for label, value in figures if value not in (None, "n/a")]
    card = f"<div class='vd-card'><h3>Customer {row.get('customer_id')}</h3><p>{who}</p>" \
           f"<div class='vd-figs'>{''.join(cells)}</div>"
    action = row.get("next_best_action") or {}
    if action.get("campaign"):
        extra = f", expected net value {money(action['expected_net_value'], currency)}" \
            if action.get("expected_net_value") is not None else ""
        card += f"<p><b>Next best action:</b> {playbook_label(action['campaign'])}" \
                f"{' (' + action['offer'] + ')' if action.get('offer') else ''}{extra}</p>"
    return card + "</div>"


def progress_line(tool: str | None, done: bool = False, seconds: float | None = None, tools: int = 0,
                  failed: bool = False) -> str:
    """The status line under the chat: what is happening now, or how the answer went."""
    if failed:
        return "Stopped: the answer could not be completed (see the message above)."
    if done:
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        return f"Answered{took}" + (f" from {plural(tools, 'tool call')}." if tools else ".")
    if tool is None:
        return "Thinking…"
    return f"{TOOL_PROGRESS.get(tool, 'Working')}… ({tool.replace('_', ' ')})"


def unverified_note(unverified: Any) -> list[dict[str, Any]]:
    """A chat message listing the figures of an answer that appear in no tool result (none when all do)."""
    figures = [str(u) for u in unverified or []]
    if not figures:
        return []
    return [{"role": "assistant", "metadata": {"title": "Unverified figures", "status": "done"},
             "content": "These figures in the answer appear in no tool result, so treat them with care: "
                        + ", ".join(figures)}]


_LISTED = re.compile(r"^\s*(\d+)\.\s+(?:Customer\s+)?(\S+?)[\s(:,]")
_TABLE_LINE = re.compile(r"^\s*\|.*\|\s*$")


def answer_for_screen(text: str, shown_ids: set[str]) -> str:
    """The answer text next to its table: a numbered list of the customers the table shows keeps its first
    line (the top customer) and points to the table for the rest; a markdown table the screen already
    shows is dropped; "1 customers" reads "1 customer". (Campaigns are named in words by the answer's own
    templates, from the tool's `label`: the screen does not rewrite them.)"""
    lines, out, listed = text.splitlines(), [], 0
    for line in lines:
        match = _LISTED.match(line)
        if shown_ids and match and match.group(2).strip("():,") in shown_ids:
            listed += 1
            if listed == 1:
                out.append(line)
            continue
        if shown_ids and _TABLE_LINE.match(line):
            continue
        out.append(line)
    if listed > 1:
        first = next(i for i, line in enumerate(out) if _LISTED.match(line))
        out.insert(first + 1, f"…and {plural(listed - 1, 'more customer')} in the table.")
    text = "\n".join(out)
    return re.sub(r"(?<![\d.,])1 (customer|row|order)s\b", r"1 \1", text)


def results_panels(results: AnswerResults) -> list[dict[str, Any]]:
    """What the results column shows for one answer, one dict of component settings per panel, in the
    screen's order: summary line, customer card, customer table, pager (line, previous, next), campaign
    table, customers per tier, predicted value's spread per tier, value by tier or segment, churn risk vs
    value, campaign cost vs revenue, the model's lift chart, the model-health card, glossary."""
    rows, currency = results.customer_rows, results.currency
    single = len(rows) == 1  # one customer is a card, never a one-point chart or a one-row table
    customers = customer_table([] if single else rows, (results.list_call or {}).get("focus", "at_risk"), currency)
    campaigns = campaign_table(results.campaigns, currency)
    pages, back, forward = pager_line(results), results.page_call(-1), results.page_call(1)
    glossary = glossary_caption(dict.fromkeys([*customers.columns, *campaigns.columns]), currency)
    tiers = tier_counts(results.groups if results.group_by == "tier" else [])
    values = value_by_group(results.groups, currency)
    spread = spread_chart(results.groups, results.group_by, currency)
    points, spend = risk_value_points(rows, currency), campaign_value(results.campaigns, currency)
    group_word = (results.group_by or "group").replace("segment", "RFM segment")
    return [
        {"value": "" if single else list_summary(results), "visible": bool(results.list_call and not single)},
        {"value": customer_card(results.detail or rows[0], currency) if single else "", "visible": single},
        {"value": customers.value(), "visible": not customers.empty},
        {"value": pages, "visible": bool(pages)},
        {"visible": bool(pages), "interactive": back is not None},
        {"visible": bool(pages), "interactive": forward is not None},
        {"value": campaigns.value(), "visible": not campaigns.empty},
        {"value": tiers, "visible": not tiers.empty},
        {"value": spread, "visible": bool(spread)},
        {"value": values, "visible": not values.empty, "color_map": group_colours(results.groups),
         "label": f"Value by {group_word} ({currency})"},
        {"value": points, "visible": not points.empty, "y_lim": value_axis(points, "predicted_value")},
        {"value": spend, "visible": not spend.empty},
        {"value": lift_chart(results.lift, results.validation, currency), "visible": bool(results.lift)},
        {"value": health_card(results.health, currency) if results.health else "", "visible": bool(results.health)},
        {"value": glossary, "visible": bool(glossary)},
    ]
