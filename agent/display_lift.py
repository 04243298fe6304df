"""The model's lift chart, shown beside a model_report answer: how much of the held-out window's revenue
each tenth of customers brought, the tenths ranked by the model's predicted value (highest first).

Drawn as a small inline SVG (Gradio's native bar plot has no reference line, and a lift chart reads
against one): one bar per decile with its share of the revenue, a value axis from zero (or below, when a
decile's returns outweigh its orders) in %, a dashed line at 10% (what picking at random brings), and a
one-line caption in words. Every figure is model_report's `validation.lift_by_decile`; a build made
before that field existed has none, and then no chart is drawn. No I/O, no state.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from predictor.figures import money, pct

RANDOM_SHARE = 0.1  # ten deciles: a random tenth of the customers brings a tenth of the revenue
BAR_COLOUR, RANDOM_COLOUR = "#4f5d95", "#b0642a"
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 480, 250, 46, 12, 14, 48  # viewBox and margins, in SVG units


def window_words(validation: dict[str, Any] | None) -> str:
    """The held-out window in words: "the 131 days after 2011-07-31"."""
    validation = validation or {}
    if validation.get("label_days") and validation.get("cutoff"):
        return f"the {validation['label_days']} days after {str(validation['cutoff'])[:10]}"
    return "the validation window"


def lift_caption(lift: list[dict[str, Any]], validation: dict[str, Any] | None = None) -> str:
    """The chart's one line: what the model's top tenth brought, against what a random tenth would."""
    if not lift:
        return ""
    top = lift[0]
    return (f"The 10% of customers the model ranks highest brought {pct(top['revenue_share'])} of the revenue of "
            f"{window_words(validation)}, {float(top['lift']):.1f} times what a random 10% would bring.")


def _axis(shares: list[float]) -> tuple[float, float, float]:
    """(low, high, step) of the value axis: from zero (lower only for a negative share), whole steps."""
    step = 0.1 if max(shares) <= 0.6 else 0.2
    high = step * math.ceil(max(max(shares), RANDOM_SHARE) / step - 1e-9)
    low = step * math.floor(min(0.0, min(shares)) / step + 1e-9)
    return round(low, 4), round(high, 4), step


def lift_chart(lift: list[dict[str, Any]], validation: dict[str, Any] | None = None, currency: str = "£") -> str:
    """The lift chart as HTML (an SVG and its caption); "" when the model report carries no lift."""
    if not lift:
        return ""
    shares = [float(row["revenue_share"]) for row in lift]
    low, high, step = _axis(shares)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y(value: float) -> float:
        return round(TOP + plot_h * (high - value) / (high - low), 2)

    ticks = [round(low + i * step, 4) for i in range(int(round((high - low) / step)) + 1)]
    parts = [f"<g class='vd-axis' aria-label='Y-axis titled &quot;Share of the revenue&quot; for a linear scale "
             f"with values from {low * 100:.0f}% to {high * 100:.0f}%'>"]
    for tick in ticks:
        parts.append(f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y(tick)}' y2='{y(tick)}' stroke='currentColor' "
                     f"stroke-opacity='{0.6 if tick == 0 else 0.15}' data-tick='{tick:g}'/>"
                     f"<text x='{LEFT - 6}' y='{y(tick) + 4}' text-anchor='end'>{tick * 100:.0f}%</text>")
    parts.append(f"<text transform='translate(12 {TOP + plot_h / 2}) rotate(-90)' text-anchor='middle'>"
                 "Share of the revenue (%)</text></g>")
    ref = y(RANDOM_SHARE)  # drawn before the bars, so a bar near 10% covers the line, not the other way
    parts.append(f"<line class='vd-lift-random' x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{ref}' y2='{ref}' "
                 f"stroke='{RANDOM_COLOUR}' stroke-width='2' stroke-dasharray='6 4' data-share='{RANDOM_SHARE}'/>"
                 f"<text x='{WIDTH - RIGHT}' y='{ref - 5}' text-anchor='end' fill='{RANDOM_COLOUR}'>"
                 "Random pick: 10% per decile</text>"
                 f"<text x='{LEFT + plot_w / 2}' y='{HEIGHT - 8}' text-anchor='middle'>"
                 "Customers in tenths by predicted value (1 = the model's top 10%)</text>")
    band = plot_w / len(lift)
    for i, (row, share) in enumerate(zip(lift, shares)):
        x = round(LEFT + i * band + band * 0.15, 2)
        top, bottom = y(max(share, 0.0)), y(min(share, 0.0))
        tip = (f"Decile {row['decile']}: {pct(share)} of the revenue, mean spend "
               f"{money(row['mean_spend'], currency)}, {float(row['lift']):.1f}× a random pick")
        parts.append(f"<rect class='vd-lift-bar' x='{x}' y='{top}' width='{round(band * 0.7, 2)}' "
                     f"height='{round(bottom - top, 2)}' fill='{BAR_COLOUR}' data-decile='{row['decile']}' "
                     f"data-share='{share}' data-mean-spend='{row['mean_spend']}' data-lift='{row['lift']}'>"
                     f"<title>{escape(tip)}</title></rect>"
                     f"<text class='vd-lift-label' x='{x + band * 0.35}' y='{top - 3}' text-anchor='middle'>{pct(share)}</text>"
                     f"<text x='{x + band * 0.35}' y='{TOP + plot_h + 16}' text-anchor='middle'>{row['decile']}</text>")
    caption = escape(lift_caption(lift, validation))
    return (f"<figure class='vd-lift'><div class='vd-lift-title'>How the model ranks: share of the revenue of "
            f"{escape(window_words(validation))}, per tenth of customers</div>"
            f"<svg viewBox='0 0 {WIDTH} {HEIGHT}' role='img' font-size='11' "
            f"fill='currentColor' aria-label='{caption}'>{''.join(parts)}</svg>"
            f"<figcaption>{caption}</figcaption></figure>")
