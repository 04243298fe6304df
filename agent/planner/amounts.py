"""Money slots: predicted-value bands and campaign budgets, signed and with exponents, and the reason
in words when an amount cannot be used (negative, zero, not finite, over the planner's limit)."""

from __future__ import annotations

import math
import re
from typing import Any

from agent.planner.facts import PlannerFacts
from agent.planner.numbers import in_words
from agent.planner.vocabulary import BOUND_WORDS, MONEY_UNIT, is_lower_bound

# Amounts: digits with an optional exponent ("1e308" is a number, not "1"); a sign written before
# them ("minus 500", "-£500", "£-500") is kept, so a negative amount is refused, never made positive.
AMOUNT = r"(\d+(?:\.\d+)?(?:e[+-]?\d+)?)"
SIGN = r"(?:(?:minus|negative)\s+|-)?"
SIGN_BEFORE = re.compile(r"(?:\b(?:minus|negative)\s+(?:£|\$|€)?\s?|(?<![\w-])-(?:£|\$|€)?|(?:£|\$|€)\s?-)$")
MONEY = SIGN + r"(?:£|\$|€)?\s?-?" + AMOUNT + r"\s?" + MONEY_UNIT + "?"
VALUE_CONTEXT = r"(?:spend|value|worth|predicted|expected)"
# Where a budget is written, most specific first.
BUDGET = [
    # "a budget of 500", "what if the budget were 2k", "say the budget is only 300"
    re.compile(r"budget (?:of |(?:is|was|were|would be|will be|becomes|be|at)(?: only| just)? |=|:)?\s*" + SIGN
               + r"(?:£|\$|€)?\s?-?" + AMOUNT),
    re.compile(r"(?:£|\$|€)\s?-?" + AMOUNT + r"\s*(?:of )?(?:marketing |promo )?budget"),
    re.compile(r"\b" + AMOUNT + r"\s?" + MONEY_UNIT + r"\b"),
    re.compile(r"(?:with|have|spend|for|of|got|use)\s(?:only |just |about )?" + SIGN + r"(?:£|\$|€)\s?-?" + AMOUNT),
    re.compile(r"(?:£|\$|€)\s?-?" + AMOUNT),
]
# A bare number is a budget only where the words around it say so ("a 1000 budget", "1000 to spend"),
# or after a spending verb in campaign talk ("we can put 2000 into it"): elsewhere it is a count, an id
# or a threshold.
LOOSE_BUDGET = [
    re.compile(r"\b" + SIGN + AMOUNT + r"\s?(?:pound |euro |dollar )?(?:marketing |promo |campaign )?budget\b"),
    re.compile(r"\b" + SIGN + AMOUNT + r"\s(?:to spend|to play with|to invest|at our disposal)\b"),
    # "we have 1500 to get new customers back", "I've got 800 for it": what we have for a purpose is money
    re.compile(r"\b(?:we|i)(?:'ve| have|'ve got| have got| got)\s(?:only |just |about |around |roughly )?"
               + SIGN + AMOUNT + r"\s(?:to|for)\b(?!\s?\d)"),
    # "bring back the customers who left, we have 1200": what we have, ending the clause
    re.compile(r"\b(?:we|i)(?:'ve| have|'ve got| have got| got| can spend| can use| could spend)\s(?:only |just |about |"
               r"around |roughly )?" + SIGN + AMOUNT + r"(?=\s*(?:$|[,.;!?]|(?:budget|in total|total|max|maximum)\b))"),
]
SPEND_VERB_BUDGET = re.compile(r"\b(?:spend|put|invest|allocate|afford|use)\s(?:up to |about |around |only |just )?" + SIGN + AMOUNT
               + r"\b(?!\s?(?:%|percent|customers|clients|days|weeks|months|years))")
# "we've got 500 to win them back", "I have 300 for it" (not "who have 5 to 10 orders"), in campaign talk.
HAVE_BUDGET = re.compile(r"\b(?:have|got)\s(?:only |just |about |around )?" + SIGN + AMOUNT + r"\s(?:to|for)\b(?!\s?\d)")
# After a campaign plan, an amount on its own is its new budget ("with 3000 instead", "what about 500?").
FOLLOW_UP_BUDGET = re.compile(r"^(?:and |but |ok |okay |so |now )?(?:(?:what|how) about |with |try |make it |make that |"
                              r"use |for |what if |if |say |let'?s say |suppose )?(?:only |just )?" + SIGN + AMOUNT + r"(?: instead| then| please)?\W*$")
# A what-if in campaign talk ("what if we only had 1k?", "suppose we spent 800 instead", "and if we put £300 in"):
# the amount is the budget.
NOT_MONEY_AFTER = r"(?!\s?(?:%|percent|customers|clients|people|orders?|days|weeks|months|years|rows|of them)\b)"
WHAT_IF_BUDGET = re.compile(r"\b(?:if|suppose|supposing|say|imagine|assume|assuming)\b[^.?!]{0,25}?\b(?:had|have|got|get|"
                            r"spend|spent|use|used|put|gave|give|allocat\w*|invest\w*|could spend|can spend)\s"
                            r"(?:it |them |in |only |just |about |around |roughly |a total of )*" + SIGN
                            + r"(?:£|\$|€)?\s?-?" + AMOUNT + r"\b" + NOT_MONEY_AFTER)
# A terse campaign request typed on a phone ("reactivation campaign uk 2500", "retention vip 3000"): a number
# standing on its own is the budget, unless it counts rows ("top 50"), dates a time ("since 2011") or is an id.
TERSE_WORDS = 10
TERSE_BUDGET = re.compile(r"(?<![\w£$€.,-])(?<!top )(?<!first )(?<!best )(?<!max )(?<!in )(?<!since )(?<!from )"
                          r"(?<!before )(?<!after )(?<!of )" + AMOUNT + r"(?![\w%.,])" + NOT_MONEY_AFTER)
CAMPAIGN_TALK = re.compile(r"campaign|promo|promotion|budget|win.?back|reactivat|retention|retain|offer|discount|"
                           r"voucher|cross-?sell|upsell|upgrade|bring\w*(?: \w+){0,3} back|come back|\bplan\b")


def signed_amount(text: str, match: re.Match, group: int) -> float:
    """The amount a money match captured, with the sign written before it ("minus 500" is -500)."""
    value = float(match.group(group))  # inf for "1e999": refused as not finite, never clamped
    return -value if SIGN_BEFORE.search(text[:match.start(group)]) else value


def money_slots(text: str, raw: str, facts: PlannerFacts, campaign: bool = False) -> dict[str, Any]:
    """min_value / max_value, budget, and `problems`: why a stated amount cannot be used. `campaign`: the
    question follows a campaign plan, so a bare amount ("with 3000 instead") is its budget."""
    slots = _value_band(text)
    problems: list[str] = []
    for key in ("min_value", "max_value"):
        value = slots.get(key)
        if value is not None and not (math.isfinite(value) and value >= 0):
            problems.append("I can't filter on that predicted value: "
                            + ("it is negative, and predicted values are never below zero."
                               if value < 0 else "it is not a finite amount."))
            slots.pop(key)
    budget = next((m for m in (p.search(text) for p in BUDGET) if m), None)
    if budget is None:
        budget = next((m for m in (p.search(text) for p in LOOSE_BUDGET) if m), None)
    if budget is None and (campaign or CAMPAIGN_TALK.search(text)):
        budget = SPEND_VERB_BUDGET.search(text) or HAVE_BUDGET.search(text) or WHAT_IF_BUDGET.search(text)
    if budget is None and CAMPAIGN_TALK.search(text) and len(text.split()) <= TERSE_WORDS:
        budget = _terse_budget(text, facts)
    if budget is None and campaign:
        budget = FOLLOW_UP_BUDGET.search(text)
    if budget and not ("min_value" in slots or "max_value" in slots):
        value = signed_amount(text, budget, 1)
        problem = budget_problem(value, budget.group(1), raw, facts)
        if problem:
            problems.append(problem)
        else:
            slots["budget"] = value
    if problems:
        slots["problems"] = problems
    return slots


def _terse_budget(text: str, facts: PlannerFacts) -> re.Match | None:
    """The one number of a terse campaign request that can be money (100 or more, no customer id)."""
    found = [m for m in TERSE_BUDGET.finditer(text) if float(m.group(1)) >= 100 and not facts.is_customer_id(m.group(1))]
    return found[0] if len(found) == 1 else None


def _value_band(text: str) -> dict[str, float]:
    """A predicted-value filter: "between X and Y", "from X to Y", "spend over X", "value under X"."""
    # "between £500 and £1000", "from 500 to 1000 pounds"; a churn range right before is no money
    band = re.search(r"\b(?:between " + MONEY + r" and|from " + MONEY + r" (?:to|up to|-)) " + MONEY, text)
    churn_before = band and re.search(r"churn|risk", text[max(0, band.start() - 25):band.start()])
    if band and re.search(VALUE_CONTEXT, text) and not churn_before:
        low, high = (1, 3) if band.group(1) is not None else (2, 3)
        return {"min_value": signed_amount(text, band, low), "max_value": signed_amount(text, band, high)}
    m = re.search(VALUE_CONTEXT + r"[^.?!]{0,30}?\b(" + BOUND_WORDS + r")\s*" + MONEY, text)
    if m and not re.search(r"churn|risk", text[max(0, m.start() - 5):m.end()]):
        key = "min_value" if is_lower_bound(m.group(1)) else "max_value"
        return {key: signed_amount(text, m, 2)}
    return {}


def budget_problem(value: float, token: str, raw: str, facts: PlannerFacts) -> str | None:
    """Why a budget the message states cannot be used, in words (no figure the user did not write)."""
    cur = facts.currency_symbol
    written = re.search(r"(?<![\d.])" + re.escape(token) + r"(?![\d.])", raw, flags=re.I)
    shown = f"a budget of {'-' if value < 0 else ''}{cur}{token}" if written else "that budget"
    if math.isfinite(value) and 0 < value <= facts.max_budget:
        return None
    if value < 0:
        why = "it is negative, and a budget has to be a positive amount"
    elif value == 0:
        why = "a budget of zero pays for no contact at all"
    else:
        why = f"it is more than the largest budget I plan with, {in_words(facts.max_budget)}"
    return (f"I can't plan with {shown}: {why}. I have not changed it into another amount; give the "
            "budget as a positive amount (for example 'a budget of five thousand pounds'), or leave it "
            "out to plan without a limit.")
