"""How predicted value spreads within each tier, shown with a tier-spread answer: one box per tier, from the
P10 to the P90 customer (whiskers), the middle half (P25 to P75, the box) and the median (the line).

Tiers differ a hundredfold in value (a Platinum customer's median is worth many Bronze ones), so one shared
scale would flatten every tier but the top one into a line: each tier is drawn on its own value axis, from
£0 to a round figure above its P90, with its ticks in £. Drawn as a small inline SVG (Gradio's native
plots have no box plot), in the tier colours of every other chart. Every figure is segment_summary's
`predicted_value_quantiles`; a build or a tool result without them draws nothing. No I/O, no state.
"""

from __future__ import annotations

from html import escape
from typing import Any

from predictor.figures import money
from agent.display_charts import TIER_COLOURS, TIER_ORDER, axis_top

# viewBox width, margins and one tier's row, in SVG units; the right margin holds half of the last tick's
# label ("£100,000" is centred on the axis end).
WIDTH, LEFT, RIGHT, TOP, ROW = 480, 78, 34, 6, 62
BOX_H, QUANTILES = 16, ("p10", "p25", "p50", "p75", "p90")


def _tick_text(tick: float, step: float, currency: str) -> str:
    return f"{currency}{tick:,.0f}" if step >= 1 else f"{currency}{tick:,.2f}"


def _median_text(value: float, currency: str) -> str:
    """The median's label: whole pounds from £10 up (pence beside pounds-wide boxes read as noise)."""
    return f"{currency}{value:,.0f}" if value >= 10 else money(value, currency)


def spread_groups(groups: list[dict[str, Any]], group_by: str | None) -> list[dict[str, Any]]:
    """The tiers that carry quantiles, best tier first; none unless the summary is by tier."""
    if group_by != "tier":
        return []
    order = {t: i for i, t in enumerate(TIER_ORDER)}
    rows = [g for g in groups if isinstance(g.get("predicted_value_quantiles"), dict)
            and all(g["predicted_value_quantiles"].get(q) is not None for q in QUANTILES)]
    return sorted(rows, key=lambda g: order.get(str(g["group"]), len(order)))


def _row(i: int, group: dict[str, Any], currency: str) -> str:
    q = {k: float(group["predicted_value_quantiles"][k]) for k in QUANTILES}
    high, step = axis_top(q["p90"])
    plot_w, y0 = WIDTH - LEFT - RIGHT, TOP + i * ROW
    mid, base = y0 + 22, y0 + 40  # the box's centre line and the axis under it

    def x(value: float) -> float:
        return round(LEFT + plot_w * max(value, 0.0) / high, 2)

    tier, colour = escape(str(group["group"])), TIER_COLOURS.get(str(group["group"]), "#4f5d95")
    ticks = [round(k * step, 6) for k in range(int(round(high / step)) + 1)]
    parts = [f"<text x='{LEFT - 8}' y='{mid + 4}' text-anchor='end' font-weight='600'>{tier}</text>",
             f"<g class='vd-axis' aria-label='X-axis titled &quot;Predicted value ({escape(currency)}), {tier}&quot; "
             f"for a linear scale with values from 0 to {high:,.0f}'>"]
    for tick in ticks:
        parts.append(f"<line x1='{x(tick)}' x2='{x(tick)}' y1='{y0 + 8}' y2='{base}' stroke='currentColor' "
                     f"stroke-opacity='{0.6 if tick == 0 else 0.15}' data-tick='{tick:g}'/>"
                     f"<text x='{x(tick)}' y='{base + 12}' text-anchor='middle'>"
                     f"{escape(_tick_text(tick, step, currency))}</text>")
    parts.append("</g>")
    tip = (f"{tier}: half of the customers between {money(q['p25'], currency)} and {money(q['p75'], currency)}, "
           f"median {money(q['p50'], currency)}; 80% between {money(q['p10'], currency)} and "
           f"{money(q['p90'], currency)}")
    data = " ".join(f"data-{k}='{q[k]}'" for k in QUANTILES)
    parts.append(
        f"<g class='vd-spread-box' data-tier='{tier}' data-axis-top='{high}' {data}><title>{escape(tip)}</title>"
        f"<line class='vd-whisker' x1='{x(q['p10'])}' x2='{x(q['p90'])}' y1='{mid}' y2='{mid}' stroke='{colour}' "
        f"stroke-width='2'/>"
        + "".join(f"<line x1='{x(q[k])}' x2='{x(q[k])}' y1='{mid - 6}' y2='{mid + 6}' stroke='{colour}' "
                  f"stroke-width='2'/>" for k in ("p10", "p90"))
        + f"<rect class='vd-box' x='{x(q['p25'])}' y='{mid - BOX_H / 2}' width='{round(x(q['p75']) - x(q['p25']), 2)}' "
          f"height='{BOX_H}' fill='{colour}' fill-opacity='0.85' stroke='{colour}'/>"
          f"<line class='vd-median' x1='{x(q['p50'])}' x2='{x(q['p50'])}' y1='{mid - BOX_H / 2 - 2}' "
          f"y2='{mid + BOX_H / 2 + 2}' stroke='currentColor' stroke-width='2.5'/>"
          f"<text class='vd-spread-label' x='{x(q['p50'])}' y='{mid - BOX_H / 2 - 4}' text-anchor='middle'>"
          f"median {escape(_median_text(q['p50'], currency))}</text></g>")
    return "".join(parts)


def spread_chart(groups: list[dict[str, Any]], group_by: str | None, currency: str = "£") -> str:
    """The per-tier spread of predicted value as HTML (an SVG and its caption); "" without quantiles."""
    rows = spread_groups(groups, group_by)
    if not rows:
        return ""
    height = TOP + ROW * len(rows) + 4
    body = "".join(_row(i, g, currency) for i, g in enumerate(rows))
    caption = ("Box: the middle half of each tier's customers (P25 to P75), line: the median, whiskers: P10 to "
               f"P90. Each tier has its own scale from {currency}0.")
    return (f"<figure class='vd-spread'><div class='vd-lift-title'>Predicted value per customer, by tier "
            f"({escape(currency)})</div><svg viewBox='0 0 {WIDTH} {height}' role='img' font-size='11' "
            f"fill='currentColor' aria-label='Spread of predicted value per customer, by tier'>{body}</svg>"
            f"<figcaption>{escape(caption)}</figcaption></figure>")
