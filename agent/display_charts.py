"""The charts shown with an answer, as plain frames for Gradio's native plots, and the one colour per tier.

Every chart starts its value axis at zero (a bar that starts at 4 hides the tier with 4 customers), puts
£ or % in its axis titles and formats, colours tiers the same way everywhere (`TIER_COLOURS`), and only
plots what a tool returned: customers per tier and value per tier or segment from segment_summary,
churn risk against predicted value for a customer list (two customers or more: one is a card, not a
chart), and a campaign plan's cost against its expected incremental revenue. No I/O, no state.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from predictor.customers.audience import TIERS
from predictor.figures import money, name, pct
from agent.display_table import playbook_label

TIER_ORDER = list(TIERS)  # best first, as predictor.customers.audience orders them
# One colour per tier, in every chart (the legend colours match the tier's name: platinum, gold, silver, bronze).
TIER_COLOURS = {"Platinum": "#4f5d95", "Gold": "#d4a514", "Silver": "#9aa3ad", "Bronze": "#b0642a"}
# The segment-summary measures a value chart stacks by group, in the order a marketer reads them.
VALUE_MEASURES = ("revenue_12m", "predicted_value", "value_at_risk")
CAMPAIGN_MEASURES = ("cost", "expected_incremental_revenue")
MAX_GROUPS = 10  # a value chart over 38 countries is unreadable: the biggest groups, as the tool ranked them


def measure_label(column: str) -> str:
    return name(column).capitalize()


def axis_top(high: float) -> tuple[float, float]:
    """(top, step) of a value axis from zero that holds `high` with a little room: round steps (1, 2, 2.5
    or 5 times a power of ten), at most five of them."""
    if not high or high <= 0 or not math.isfinite(high):
        return 1.0, 0.25
    raw = high * 1.05 / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return step * math.ceil(high * 1.05 / step - 1e-9), step


def tier_counts(groups: list[dict[str, Any]]) -> pd.DataFrame:
    """Customers per tier from a segment_summary grouped by tier, in tier order."""
    rows = [{"tier": str(g["group"]), "customers": int(g["customers"])} for g in groups]
    frame = pd.DataFrame(rows, columns=["tier", "customers"])
    order = {t: i for i, t in enumerate(TIER_ORDER)}
    return frame.sort_values("tier", key=lambda s: s.map(lambda t: order.get(t, len(order)))).reset_index(drop=True)


def value_by_group(groups: list[dict[str, Any]], currency: str = "£") -> pd.DataFrame:
    """Revenue over the last year, predicted value and value at risk, one stacked bar per measure and one
    slice per group (tier or segment), from a segment_summary's groups."""
    rows = [{"measure": measure_label(key), "amount": float(g[key]), "group": str(g["group"]),
             "shown": money(g[key], currency)}
            for g in groups[:MAX_GROUPS] for key in VALUE_MEASURES if g.get(key) is not None]
    return pd.DataFrame(rows, columns=["measure", "amount", "group", "shown"])


def risk_value_points(rows: list[dict[str, Any]], currency: str = "£") -> pd.DataFrame:
    """Churn risk (0 to 1, drawn as %) against predicted value, one point per listed customer, coloured by
    tier; empty for fewer than two customers (one customer is a card)."""
    points = [{"customer": str(r.get("customer_id")), "tier": str(r.get("tier") or "n/a"),
               "churn_risk": float(r["churn_risk"]), "predicted_value": float(r["predicted_value"]),
               "shown": f"{pct(r['churn_risk'])} churn risk, {money(r['predicted_value'], currency)}"}
              for r in rows if r.get("churn_risk") is not None and r.get("predicted_value") is not None]
    if len(points) < 2:
        return pd.DataFrame(columns=["customer", "tier", "churn_risk", "predicted_value", "shown"])
    return pd.DataFrame(points)


def value_axis(frame: pd.DataFrame, column: str) -> list[float]:
    """[0, top] of a money axis over `frame[column]`: from zero, with room above the highest value (Vega's
    own domain can end exactly at the top point and clip it)."""
    high = float(frame[column].max()) if not frame.empty else 0.0
    return [0.0, float(axis_top(high)[0])]


def campaign_value(campaigns: list[dict[str, Any]], currency: str = "£") -> pd.DataFrame:
    """Cost against expected incremental revenue: one bar per measure, one slice per campaign (in words)."""
    rows = [{"measure": measure_label(key), "amount": float(c[key]), "campaign": playbook_label(c.get("name")),
             "shown": money(c[key], currency)}
            for c in campaigns for key in CAMPAIGN_MEASURES if c.get(key) is not None]
    return pd.DataFrame(rows, columns=["measure", "amount", "campaign", "shown"])


def group_colours(groups: list[dict[str, Any]]) -> dict[str, str] | None:
    """The tier colours when the groups are tiers (so a tier is the same colour in every chart)."""
    names = {str(g.get("group")) for g in groups}
    return dict(TIER_COLOURS) if names and names <= set(TIER_COLOURS) else None
