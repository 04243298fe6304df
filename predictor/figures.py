"""The figures a marketer reads: one name and one meaning per figure, and one way to write each kind.

The glossary (`GLOSSARY`) is where a figure gets its name; answer texts, the UI's tables, profile texts,
driver phrases and tool results all take names from here, so "lifetime revenue" never turns into
"lifetime spend" two lines later for the same column. The formatters (`pct`, `money`, `duration`,
`times`) are the only way any of them writes a percentage, an amount, a span of days or a ratio.

Formatted figures stay checkable: each one is a rounding of the value it came from (the grounding
checks accept roundings), and "under 1%" / "over 99%" are only written for values that round to them
or lie beyond them.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple


class Figure(NamedTuple):
    name: str  # what every text calls the figure
    meaning: str  # one sentence a marketer can read


GLOSSARY: dict[str, Figure] = {
    "historical_value": Figure("lifetime revenue", "Net revenue over the customer's whole history: orders less "
                                                   "cancellations and returns."),
    "monetary_total": Figure("gross lifetime spend", "Everything the customer ordered over their whole history, "
                                                     "before cancellations and returns are taken off."),
    # Names carry no digits: a name is not a figure, and the grounding checks would read "12" as one.
    "revenue_12m": Figure("revenue over the last year", "Net revenue over the 12 months up to the scoring date."),
    "predicted_value": Figure("predicted value", "Spend the model expects over the coming horizon, already "
                                                 "weighted by the chance that the customer orders at all."),
    "value_p10": Figure("low end of the likely range", "Spend over the coming horizon that the customer is "
                                                       "expected to beat nine times in ten."),
    "value_p90": Figure("high end of the likely range", "Spend over the coming horizon that the customer is "
                                                        "expected to beat only one time in ten."),
    "customer_value": Figure("customer value", "Revenue over the last 12 months plus predicted value: what tiers "
                                               "rank customers by."),
    "churn_risk": Figure("churn risk", "Chance that the customer places no order over the coming horizon."),
    "mean_churn_risk": Figure("average churn risk", "Churn risk averaged over the customers of a group."),
    "value_if_retained": Figure("value if retained", "What the customer would spend over the coming horizon if "
                                                     "they do order again."),
    "value_at_risk": Figure("value at risk", "Churn risk x value if retained: the spend lost if the customer does "
                                             "not order again, weighted by how likely that is."),
    "at_risk": Figure("at risk", "Overdue against their own ordering rhythm (lifecycle at risk or lapsing) and "
                                 "churn risk at or above the population's lowest quarter."),
    "aov": Figure("average order", "Gross lifetime spend divided by the number of orders."),
    "spend_90d": Figure("recent spend", "What the customer ordered in the 90 days up to the scoring "
                                                     "date, before cancellations."),
    "orders": Figure("orders", "Distinct orders placed."),
    "recency_days": Figure("days since the last order", "Days from the last order to the scoring date."),
    "mean_gap_days": Figure("usual gap between orders", "Average days between the customer's purchase days."),
    "share": Figure("share of customers", "The group's customers as a share of the customers counted."),
    "cost": Figure("cost", "What contacting the audience and the offer cost."),
    "expected_incremental_revenue": Figure("expected incremental revenue", "Revenue the campaign is expected to "
                                                                           "add beyond what the audience would "
                                                                           "spend anyway."),
    "expected_net_value": Figure("expected net value", "Expected incremental revenue less cost."),
    "roi": Figure("ROI", "Expected net value as a percentage of the campaign's cost."),
}


def name(column: str) -> str:
    """The one name texts use for a column (the column id with spaces when the glossary lacks it)."""
    figure = GLOSSARY.get(column)
    return figure.name if figure else column.replace("_", " ")


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def pct(value: Any) -> str:
    """A 0..1 share or probability as a whole percentage; "under 1%" and "over 99%" at the ends, so a
    small risk never reads as "0%" and a near-certain one never as "100%". Exact 0 and 1 stay as they are."""
    v = _number(value)
    if v is None:
        return "n/a"
    if 0 < v < 0.01:
        return "under 1%"
    if 0.99 < v < 1:
        return "over 99%"
    return f"{v * 100:.0f}%"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """"1 customer", "217 customers", "1,204 customers"."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"


def roi(value: Any) -> str:
    """ROI (expected net value over cost) as a percentage of the cost with separators: 11.4 -> "1,140%"
    (a share of cost, not a probability, so no "over 99%" cap)."""
    v = _number(value)
    return "n/a" if v is None else f"{v * 100:,.0f}%"


def money(value: Any, currency: str) -> str:
    """An amount: pence below 1,000 (£784.58), whole units from 1,000 (£1,569); negatives lead with "-"."""
    v = _number(value)
    if v is None:
        return "n/a"
    sign = "-" if v < 0 else ""
    return f"{sign}{currency}{abs(v):,.0f}" if abs(v) >= 1000 else f"{sign}{currency}{abs(v):,.2f}"


def whole_money(value: Any, currency: str) -> str:
    """An amount in whole units (£5,313), for sentences that quote many amounts at once."""
    v = _number(value)
    if v is None:
        return "n/a"
    return f"{'-' if v < 0 else ''}{currency}{abs(v):,.0f}"


def duration(days: Any) -> str:
    """A span of days as a marketer says it: days up to two weeks, then weeks, months, years."""
    d = _number(days)
    if d is None:
        return "an unknown time"
    d = abs(d)
    if d < 1.5:
        return "1 day" if d >= 0.5 else "less than a day"
    if d < 14:
        return f"{d:.0f} days"
    if d < 60:
        return f"{d / 7:.0f} weeks"
    if d < 548:
        months = round(d / 30.44)
        return "1 month" if months == 1 else f"{months} months"
    return f"{d / 365.25:.1f} years"


def rhythm(gap_days: Any) -> str:
    """How often someone orders, from their usual gap: "every 3 weeks", "several times a week"."""
    gap = _number(gap_days)
    if gap is None:
        return "with no rhythm yet"
    if gap < 2:
        return "almost daily"
    if gap < 5:
        return "several times a week"
    return f"every {duration(gap)}"


def times(ratio: Any) -> str:
    """A ratio as a marketer reads it: "3.4x", and "over 10x" beyond that (a bigger ratio only says the
    base was tiny)."""
    r = _number(ratio)
    if r is None:
        return "n/a"
    return "over 10x" if r >= 10 else f"{r:.1f}x"


def value_at_risk_explained(row: dict[str, Any], currency: str) -> str | None:
    """Why value at risk exceeds predicted value, with the figures, for a customer where it does (else None).

    Value at risk is churn risk x value if retained, and value if retained is the spend *if* they order
    again; predicted value is the expected spend, already weighted by the chance that they order at all.
    So for a likely churner the loss at stake can be larger than what the model expects them to spend."""
    at_risk, predicted = _number(row.get("value_at_risk")), _number(row.get("predicted_value"))
    churn, retained = _number(row.get("churn_risk")), _number(row.get("value_if_retained"))
    if None in (at_risk, predicted, churn, retained) or at_risk <= predicted:
        return None
    horizon = _number(row.get("horizon_days"))
    over = f" over the next {horizon:.0f} days" if horizon else ""
    return (f"{name('value_at_risk').capitalize()} ({money(at_risk, currency)}) is above {name('predicted_value')} "
            f"({money(predicted, currency)}) because it is {name('churn_risk')} x {name('value_if_retained')} "
            f"({pct(churn)} x {money(retained, currency)}): {name('value_if_retained')} is what they would spend"
            f"{over} if they do order again, while {name('predicted_value')} is what the model expects them to "
            "spend, already weighted by the chance that they order at all.")


def currency_symbol(code_or_symbol: str) -> str:
    """The symbol money is written with: an ISO 4217 code ("USD", "eur") by CLDR's English symbol (Babel),
    or a symbol given as is ("$", "£", "CHF ")."""
    text = code_or_symbol.strip()
    if len(text) == 3 and text.isalpha():
        from babel.numbers import get_currency_name, get_currency_symbol

        code = text.upper()
        if get_currency_name(code, locale="en") == code:  # CLDR knows no such currency
            raise ValueError(f"Unknown currency code '{text}'; expected an ISO 4217 code such as GBP, USD or EUR, "
                             "or the symbol itself.")
        symbol = get_currency_symbol(code, locale="en")
        return symbol if symbol != code else f"{code} "
    if not text or len(text) > 4:
        raise ValueError(f"Currency '{code_or_symbol}' is neither an ISO 4217 code nor a short symbol.")
    return text
