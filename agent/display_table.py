"""Tool rows as the tables a marketer reads: human column names with units, one glossary line per figure,
money and percentages written the way every answer writes them (predictor.figures), and the columns
that fit the question first.

The tables keep the tool's numbers underneath and only format what is shown (a pandas Styler: Gradio
sends the formatted text as each cell's display value), so a click on a header sorts £8,108 above
£912 and 42% above 9%, numerically. No I/O, no state; every number is a tool result's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from predictor.customers.tiers import AT_RISK_STAGES
from predictor.figures import GLOSSARY, money, name, pct, plural, roi
from tools.functions.campaigns import campaign_label

MONEY_COLUMNS = ("predicted_value", "value_at_risk", "customer_value", "historical_value", "revenue_12m",
                 "cost", "expected_incremental_revenue", "expected_net_value")
SHARE_COLUMNS = ("churn_risk", "mean_churn_risk", "share", "roi")
PLAIN_NAMES = {"customer_id": "Customer", "tier": "Tier", "lifecycle": "Lifecycle", "segment": "Segment",
               "country": "Country", "last_order": "Last order", "score": "Match", "orders": "Orders",
               "recency_days": "Days since last order", "name": "Campaign", "goal": "Goal", "channel": "Channel",
               "offer_text": "Offer", "audience_size": "Customers contacted", "control_group_size": "Control group",
               "roi": "ROI (% of cost)", "group": "Group", "customers": "Customers"}

# The columns each kind of question reads first; the rest follow, and columns a row set lacks drop out.
# An at-risk list leads with who, how likely they are to go, what is at stake and when they last ordered.
CUSTOMER_LEADS = {
    "at_risk": ["customer_id", "churn_risk", "value_at_risk", "last_order", "lifecycle", "tier"],
    "predicted_value": ["customer_id", "tier", "predicted_value", "churn_risk", "last_order", "lifecycle"],
    "customer_value": ["customer_id", "tier", "customer_value", "predicted_value", "churn_risk", "last_order"],
    "historical_value": ["customer_id", "tier", "historical_value", "orders", "last_order", "predicted_value"],
    "search": ["customer_id", "score", "tier", "lifecycle", "predicted_value", "churn_risk", "last_order"],
}
CUSTOMER_REST = ["tier", "lifecycle", "churn_risk", "value_at_risk", "predicted_value", "last_order", "orders",
                 "segment", "country"]
CAMPAIGN_COLUMNS = ["name", "goal", "channel", "offer_text", "audience_size", "control_group_size", "cost",
                    "expected_incremental_revenue", "expected_net_value", "roi"]


def column_label(column: str, currency: str = "£") -> str:
    """The header a marketer reads: the glossary's name, capitalised, with its unit."""
    label = PLAIN_NAMES.get(column) or name(column).capitalize()
    if column in MONEY_COLUMNS:
        return f"{label} ({currency})"
    if column in SHARE_COLUMNS and column != "roi":
        return f"{label} (%)"
    return label


def playbook_label(campaign_id: Any) -> str:
    """A playbook id as the recommend_campaigns tool labels it (tools.functions.campaigns.campaign_label, on
    predictor.campaigns.wording): welcome_second_order -> "Welcome second order", win_back -> "Win-back"."""
    return campaign_label(campaign_id)


def customer_focus(tool: str, args: dict[str, Any] | None, result: dict[str, Any] | None = None) -> str:
    """Which question a customer list answers, for its column order: at risk, a ranking, or a search."""
    args, result = args or {}, result or {}
    if tool == "search_profiles":
        return "search"
    sort_by = args.get("sort_by") or result.get("sort_by") or "value_at_risk"
    stages = {str(s).lower() for s in args.get("lifecycle") or []}
    if args.get("at_risk") or (stages and stages <= set(AT_RISK_STAGES)) or sort_by in ("value_at_risk", "churn_risk"):
        return "at_risk"
    return sort_by if sort_by in CUSTOMER_LEADS else "at_risk"


@dataclass
class TableView:
    """One table as shown: `frame` holds the tool's numbers under human headers, `styler` the same frame
    with each cell's text formatted (what gr.Dataframe takes), `columns` the tool's column ids."""

    frame: pd.DataFrame
    styler: Any
    columns: list[str] = field(default_factory=list)
    currency: str = "£"

    @property
    def empty(self) -> bool:
        return self.frame.empty

    def value(self) -> Any:
        return self.frame if self.frame.empty else self.styler


def _formatter(column: str, currency: str):
    if column in MONEY_COLUMNS:
        return lambda v: money(v, currency) if pd.notna(v) else ""
    if column == "roi":
        return lambda v: roi(v) if pd.notna(v) else ""
    if column in SHARE_COLUMNS:
        return lambda v: pct(v) if pd.notna(v) else ""
    if column in ("recency_days", "orders", "audience_size", "control_group_size"):
        return lambda v: f"{v:,.0f}" if pd.notna(v) else ""
    if column == "score":
        return lambda v: f"{v:.2f}" if pd.notna(v) else ""
    return lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def table_view(frame: pd.DataFrame, columns: list[str], currency: str) -> TableView:
    """`frame` (tool column ids, tool numbers) as a TableView: the numeric columns stay numbers (so they
    sort as numbers) and each is shown through its predictor.figures format."""
    frame = frame[columns].copy()
    for col in columns:
        if col in MONEY_COLUMNS or col in SHARE_COLUMNS or col in ("recency_days", "orders", "score",
                                                                  "audience_size", "control_group_size"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    if "recency_days" in frame:  # whole days: a fraction of a day since the last order means nothing here
        frame["recency_days"] = frame["recency_days"].round(0)
    if "last_order" in frame:
        frame["last_order"] = frame["last_order"].astype(str).str[:10]
    labels = {c: column_label(c, currency) for c in columns}
    shown = frame.rename(columns=labels)
    styler = shown.style.format({labels[c]: _formatter(c, currency) for c in columns}).hide(axis="index")
    return TableView(frame=shown, styler=styler, columns=list(columns), currency=currency)


def customer_table(rows: Iterable[dict[str, Any]], focus: str = "at_risk", currency: str = "£") -> TableView:
    """The customer rows of an answer, the columns that fit its question first (`customer_focus`)."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return TableView(frame=pd.DataFrame(), styler=None, currency=currency)
    if "recency_days" in frame and "last_order" not in frame:
        rest = [*CUSTOMER_REST, "recency_days"]
    else:
        rest = CUSTOMER_REST
    order = list(dict.fromkeys([*CUSTOMER_LEADS.get(focus, CUSTOMER_LEADS["at_risk"]), *rest]))
    columns = [c for c in order if c in frame and frame[c].notna().any()]
    return table_view(frame, columns, currency)


def campaign_table(campaigns: list[dict[str, Any]], currency: str = "£") -> TableView:
    """The campaign plan: playbook names in words, money in the data's currency, ROI as a % of cost."""
    frame = pd.DataFrame(campaigns)
    if frame.empty:
        return TableView(frame=pd.DataFrame(), styler=None, currency=currency)
    frame["name"] = frame["name"].map(playbook_label)
    for col in ("goal", "channel"):
        if col in frame:
            frame[col] = frame[col].map(lambda g: playbook_label(g) if g else "")
    columns = [c for c in CAMPAIGN_COLUMNS if c in frame and frame[c].notna().any()]
    return table_view(frame, columns, currency)


def glossary_caption(columns: Iterable[str], currency: str = "£") -> str:
    """One line per figure shown: its header and the one meaning predictor.figures gives it."""
    lines = [f"**{column_label(c, currency)}**: {GLOSSARY[c].meaning}" for c in columns if c in GLOSSARY]
    return "  \n".join(lines)


def table_summary(shown: int, total: int | None, noun: str = "customer", ranked_by: str | None = None,
                  horizon_days: int | None = None, first: int = 1) -> str:
    """The line above a table: how many rows match and which of them are shown (`first` is the first
    shown row's place in the whole list, 1-based), in words."""
    total = shown if total is None else total
    if total > shown and first == 1:
        text = f"**{plural(total, noun)} match**; the first {shown:,} are shown"
    elif total > shown and shown:
        text = f"**{plural(total, noun)} match**; rows {first:,} to {first + shown - 1:,} are shown"
    elif total > shown:
        text = f"**{plural(total, noun)} match**; none from row {first:,} on"
    else:
        text = f"**{plural(total, noun)}**" + (" match" if noun == "customer" else "")
    if ranked_by:
        text += f", ranked by {name(ranked_by)}"
    # A list longer than its page is ranked again by the tool (every matching row), on the columns it ranks by.
    text += f". Click a £ or % column's header to rank all {total:,} by it." if total > shown else \
        ". Click a column header to sort."
    if horizon_days:
        text += f" Predicted value and churn risk cover the next {horizon_days} days."
    return text
