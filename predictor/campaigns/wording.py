"""Audiences, playbook rules and filter steps in a marketer's words ("lapsed Gold customers", "the
win-back playbook is for customers who are at risk, lapsing or lapsed"), for the explanations of an
empty plan. Only words: which customers match is the audience engine's business."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from predictor.campaigns.catalogue import Playbook
from predictor.customers.audience import CustomerFilter
from predictor.figures import plural

# How a playbook's identifier reads in a sentence, where a hyphen is the usual spelling.
_HYPHENATED = {"win back": "win-back", "cross sell": "cross-sell", "up sell": "upsell"}
# The value each bound of a rule or filter is about.
_VALUE_LABELS = {"customer_value": "customer value", "predicted_value": "predicted value",
                 "value_at_risk": "value at risk", "revenue_12m": "12-month revenue"}


def either(names: Sequence[str], joiner: str = "or") -> str:
    """'Gold', 'Platinum or Gold', 'at risk, lapsing or lapsed'."""
    names = [str(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {joiner} {names[-1]}"


def playbook_label(playbook: Playbook | str) -> str:
    """'win-back', 'vip retention', 'welcome second order'."""
    text = (playbook.name if isinstance(playbook, Playbook) else str(playbook)).replace("_", " ")
    for plain, hyphenated in _HYPHENATED.items():
        text = text.replace(plain, hyphenated)
    return text


def customers_word(n: int) -> str:
    return plural(n, "customer")


def _pct(value: float) -> str:
    return f"{value:.0%}" if value >= 0.01 or value == 0 else f"{value:.1%}"


def _bound_words(low: float | None, high: float | None, render) -> str | None:
    if low is not None and high is not None:
        return f"between {render(low)} and {render(high)}"
    if low is not None:
        return f"of at least {render(low)}"
    if high is not None:
        return f"of at most {render(high)}"
    return None


def describe_customers(spec: Mapping[str, Any], *, currency: str = "", singular: bool = False,
                       value_field: str = "predicted_value") -> str:
    """A noun phrase for the customers a filter or rule selects: 'lapsed Gold customers', 'at-risk
    Platinum or Gold customers in France', 'customers who are at risk, lapsing or lapsed'."""
    before, after = [], []
    if spec.get("at_risk") is True:
        before.append("at-risk")
    stages = spec.get("lifecycle") or []
    if len(stages) == 1 and " " not in stages[0]:
        before.append(stages[0])
    elif stages:
        after.append(f"who {'is' if singular else 'are'} {either(stages)}")
    if spec.get("tiers"):
        before.append(either(spec["tiers"]))
    if spec.get("at_risk") is False:
        after.append(f"who {'is' if singular else 'are'} not at risk")
    if spec.get("segments"):
        segments = spec["segments"]
        after.append(f"in the RFM segment{'s' if len(segments) > 1 else ''} {either(segments)}")
    if spec.get("countries"):
        after.append(f"in {either(spec['countries'])}")
    churn = _bound_words(spec.get("min_churn_risk"), spec.get("max_churn_risk"), _pct)
    if churn:
        after.append(f"with churn risk {churn}")
    value = _bound_words(spec.get("min_value"), spec.get("max_value"), lambda v: f"{currency}{v:,.0f}")
    if value:
        after.append(f"with {_VALUE_LABELS.get(value_field, value_field)} {value}")
    recency = _bound_words(spec.get("min_recency_days"), spec.get("max_recency_days"), lambda v: f"{v:g} days")
    if recency:
        after.append(f"whose last order was {recency.replace('of ', '')} ago")
    if spec.get("max_gap_to_next_tier"):
        after.append(f"within {spec['max_gap_to_next_tier']:.0%} of the next tier's threshold")
    noun = "customer" if singular else "customers"
    return " ".join([*before, noun]) + ("" if not after else " " + ", ".join(after))


def filter_spec(flt: CustomerFilter | None) -> dict[str, Any]:
    return {} if flt is None else {k: v for k, v in flt.model_dump().items() if v is not None}


def rule_spec(playbook: Playbook) -> dict[str, Any]:
    """A playbook's eligibility in the keys `describe_customers` reads."""
    rule = playbook.eligibility
    return {"tiers": rule.tiers, "lifecycle": rule.lifecycle, "segments": rule.segments, "at_risk": rule.at_risk,
            "min_churn_risk": rule.min_churn_risk, "max_churn_risk": rule.max_churn_risk,
            "min_value": rule.min_value, "max_value": rule.max_value,
            "max_gap_to_next_tier": rule.max_gap_to_next_tier}


def rule_words(playbook: Playbook, currency: str = "") -> str:
    """'the win-back playbook is for customers who are at risk, lapsing or lapsed'."""
    who = describe_customers(rule_spec(playbook), currency=currency,
                             value_field=playbook.eligibility.value_field)
    return f"the {playbook_label(playbook)} playbook is for {who}"


def audience_words(flt: CustomerFilter | None, n: int, *, currency: str = "") -> str:
    """How many customers the marketer's audience holds, in words: '2 customers are lapsed Gold
    customers', '1 customer is a lapsed Gold customer', 'the whole customer base of 4,333 customers'."""
    spec = filter_spec(flt)
    if not spec:
        return f"the whole customer base of {customers_word(n)}"
    if n == 1:
        return f"only 1 customer is {article(describe_customers(spec, currency=currency, singular=True))}"
    return f"{'only ' if n < 10 else ''}{customers_word(n)} are {describe_customers(spec, currency=currency)}"


def article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def step_words(field: str, value: Any, *, currency: str = "") -> str:
    """One filter step as a predicate of customers ('are lapsed', 'are in France', 'have churn risk of at
    least 50%'), for the trail that says which step emptied an audience."""
    if field == "at_risk":
        return "are at risk" if value else "are not at risk"
    if field in ("tiers", "lifecycle"):
        return f"are {either(value)}"
    if field == "segments":
        return f"are in the RFM segment{'s' if len(value) > 1 else ''} {either(value)}"
    if field == "countries":
        return f"are in {either(value)}"
    bound = "at least" if field.startswith("min_") else "at most"
    if field.endswith("churn_risk"):
        return f"have churn risk of {bound} {_pct(value)}"
    if field.endswith("_value"):
        return f"have predicted value of {bound} {currency}{value:,.0f}"
    return f"last ordered {bound} {value:g} days ago"


def trail_words(total: int, steps: Sequence[tuple[str, Any, int]], *, currency: str = "") -> str:
    """'of 4,333 customers, 43 are Platinum and none of them are in Germany': the counts left after each
    filter step, the last one the step that emptied the audience."""
    parts = [f"of {customers_word(total)}"]
    for i, (field, value, left) in enumerate(steps):
        words = step_words(field, value, currency=currency)
        count = "none of them" if left == 0 else (f"{left:,}" if i == 0 else f"{left:,} of them")
        parts.append(f"{count} {words}")
    return either(parts, "and") if len(parts) > 2 else " ".join(parts[:1]) + ", " + parts[1]


# The goals as a marketer names a campaign: "a win-back campaign".
GOAL_WORDS = {"retain": "retention", "win_back": "win-back", "reactivate": "reactivation", "grow": "growth",
              "upgrade": "tier-upgrade"}


def campaign_words(goal: str | None, playbooks: Sequence[str] | None = None) -> str:
    """'a win-back campaign', 'a vip retention campaign' (one playbook asked by name), 'a campaign'."""
    if goal:
        noun = GOAL_WORDS.get(goal, playbook_label(goal))
    elif playbooks:
        noun = either([playbook_label(p) for p in playbooks])
    else:
        return "a campaign"
    return article(f"{noun} campaign")


def unworthy_words(flt: CustomerFilter | None, n: int, outcomes: Sequence[tuple[Playbook, int, float, float]],
                   currency: str = "") -> tuple[str, str]:
    """(step, reason) for an audience that no playbook can target with positive expected net value.

    `outcomes` holds, per playbook: (playbook, customers its rule admits, and for the best of them the
    expected gain and cost). The step is "rule" when no playbook admits anyone, else "value"."""
    head = audience_words(flt, n, currency=currency)
    head = head[:1].upper() + head[1:]
    them = "that customer" if n == 1 else "none of them"
    if all(eligible == 0 for _, eligible, _, _ in outcomes):
        if len(outcomes) == 1:
            verb = "is not" if n == 1 else "is"
            return "rule", f"{head}, but {rule_words(outcomes[0][0], currency)}, and {them} {verb}"
        rules = "; ".join(rule_words(p, currency) for p, _, _, _ in outcomes)
        fits = "that customer fits none" if n == 1 else "none of them fits any"
        return "rule", f"{head}, but {fits} of the playbooks asked for: {rules}"
    parts = []
    for p, eligible, gain, cost in outcomes:
        if eligible == 0:
            parts.append(f"{rule_words(p, currency)}, and {them} {'is not' if n == 1 else 'is'}")
            continue
        if n == 1:
            who = f"that customer fits the {playbook_label(p)} playbook, but is not"
        elif eligible == 1:
            who = f"1 of them fits the {playbook_label(p)} playbook, but is not"
        else:
            who = (f"{'all ' if eligible == n else ''}{eligible:,} of them fit the {playbook_label(p)} playbook, "
                   "but none of them is")
        parts.append(f"{who} worth the offer: the best expected gain is {currency}{gain:,.2f} "
                     f"(uplift x value gained) against an expected cost of {currency}{cost:,.2f} "
                     "(offer and contact) for that customer")
    return "value", f"{head}; " + "; ".join(parts)
