"""Semantic answer checks: does an answer mean what the marketer meant? Applied to every turn, whatever
the case expects, so a set written before a rule existed is still held to it.

* `at_risk_answer`: when the user asks about at-risk customers ("at risk", "at-risk", "slipping
  away"; not "value at risk", "revenue at risk", "not at risk", the RFM segment "At Risk" or the
  lifecycle stage named as such, "in the at risk stage") and the turn called find_customers or
  export_audience, every customer row those calls returned has `at_risk` true, and no customer id the
  answer shows belongs to a row (of any tool output of the turn) with `at_risk` false. The rule
  itself is not re-derived here: the rows carry it (the `at_risk` column, predictor.customers.tiers
  `flag_at_risk`), so a row without the field fails and says so. A follow-up that refers back ("which of
  them are in Germany?") to an at-risk turn is held to the same rule.
* `campaign_non_empty`: when the turn called recommend_campaigns with a goal, or the user named a goal
  or a playbook of the catalogue ("win-back", "reactivation", "cross-sell", ...), at least one call's
  plan has a campaign with audience_size > 0. Calls rejected as invalid arguments (a negative budget)
  are not plans; whether the agent should have refused is the kind check's business.

Each check returns its problems (empty = passed), or None when it does not apply to the turn.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from agent.eval.references import Call

AT_RISK = "at_risk_answer"
CAMPAIGN = "campaign_non_empty"
CHECKS = (AT_RISK, CAMPAIGN)
ROW_TOOLS = ("find_customers", "export_audience")
MAX_IDS_SHOWN = 5

# The product's words for the at-risk question (README: "who is slipping away"; UI: "at-risk top customers").
_AT_RISK_PHRASE = re.compile(r"(?<![A-Za-z])at[\s_-]*risk(?![A-Za-z])|\bslipping\s+away\b", re.I)
# An occurrence that is about money, not customers: "value at risk", "revenue we have at risk", "£ at risk"
# (a few words may stand between, but no preposition: "sales from at-risk customers" is about customers).
_MONEY_BEFORE = re.compile(r"(?:\bvalue|\brevenue|\bmoney|\bspend|\bsales|\bincome|\bprofit|\bpounds|[£$€])"
                           r"(?:[\s_-]+(?!(?:for|from|of|among|with|in|to|on|by|per|across)\b)[\w']+){0,3}[\s_-]*$", re.I)
# "...high value at risk of churning": the customers' risk, whatever stands before it.
_CUSTOMER_RISK_AFTER = re.compile(r"\s+of\s+(?:churn|leav|lapsing|losing|going|being\s+lost)", re.I)
_NEGATION_BEFORE = re.compile(r"(?:\bnot|n't|\bno\s+longer|\bnever|\bnone)(?:\s+[\w']+)?\s+$", re.I)
# The phrase naming a value of another column: the RFM segment "At Risk" or the lifecycle stage "at risk"
# ("the At Risk segment", "RFM At Risk", "in the at risk stage", "lifecycle: at risk").
_COLUMN_BEFORE = re.compile(r"\b(?:segments?|rfm|stages?|lifecycle)\s*(?:named|called|is|=|:)?\s*['\"\u2018\u201c]?$",
                            re.I)
_COLUMN_AFTER = re.compile(r"['\"\u2019\u201d]?\s+(?:rfm\s+|lifecycle\s+)?(?:segment|stage)", re.I)
_QUOTES = "'\"\u2018\u2019\u201c\u201d"
_REFERS_BACK = re.compile(r"\b(?:them|those|these|they|same)\b", re.I)
# Single words too common to mean a goal on their own ("keep it short", "welcome").
_GENERIC_ALIASES = {"keep", "win", "welcome"}


# ---------------------------------------------------------------- does the turn ask about at-risk customers?


def _occurrence_is_other_meaning(text: str, start: int, end: int) -> bool:
    """An at-risk phrase used for money, negated, or naming the RFM segment "At Risk" or the lifecycle
    stage "at risk" (what the user asked for by name is a column's value, not the at-risk definition)."""
    before, after = text[max(0, start - 40):start], text[end:end + 30]
    if _NEGATION_BEFORE.search(before):
        return True
    if _MONEY_BEFORE.search(before) and not _CUSTOMER_RISK_AFTER.match(after):
        return True
    quoted = before[-1:] in _QUOTES and after[:1] in _QUOTES
    names_a_column_value = _COLUMN_BEFORE.search(before) or _COLUMN_AFTER.match(after)
    # Mid-sentence title case ("... the At Risk and Can't Lose Them customers") is the segment's name.
    prefix = text[:start].rstrip()
    title_case = text[start:end] == "At Risk" and bool(prefix) and prefix[-1] not in ".!?:"
    return bool(quoted or names_a_column_value or title_case)


def at_risk_mention(message: str) -> bool | None:
    """True when the message asks about at-risk customers, False when it names the phrase only in
    another meaning (value at risk, not at risk, the "At Risk" segment), None when it has no such phrase."""
    found = list(_AT_RISK_PHRASE.finditer(message))
    if not found:
        return None
    return any(not _occurrence_is_other_meaning(message, m.start(), m.end()) for m in found)


def asks_about_at_risk(message: str, earlier_messages: list[str] | None = None) -> bool:
    """Does this turn ask about at-risk customers, by its own words or by referring back ("them",
    "those") to a turn that did?"""
    context = False
    for text in [*(earlier_messages or []), message]:
        mention = at_risk_mention(text)
        context = mention if mention is not None else (context and bool(_REFERS_BACK.search(text)))
    return context


# ---------------------------------------------------------------- the at-risk check


def _flag(value: Any) -> bool | None:
    """A row's at_risk value: a bool, or the text a CSV preview holds ("True", "false", "1")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "0", "no"}:
        return False
    return None


def _rows(call: Call) -> list[dict[str, Any]]:
    """The customer rows a call returned: find_customers' customers, an export's preview rows."""
    if call.error or not isinstance(call.result, dict):
        return []
    rows = call.result.get("customers") if call.name == "find_customers" else call.result.get("preview")
    return [r for r in rows or [] if isinstance(r, dict)]


def _customer_flags(value: Any, out: dict[str, bool | None]) -> None:
    """Every customer id in a tool result with its at_risk flag (rows, a customer's detail)."""
    if isinstance(value, dict):
        if "customer_id" in value and "at_risk" in value:
            out.setdefault(str(value["customer_id"]), _flag(value["at_risk"]))
        for v in value.values():
            _customer_flags(v, out)
    elif isinstance(value, list):
        for v in value:
            _customer_flags(v, out)


def _ids_text(ids: list[str]) -> str:
    more = f" (+{len(ids) - MAX_IDS_SHOWN} more)" if len(ids) > MAX_IDS_SHOWN else ""
    return ", ".join(ids[:MAX_IDS_SHOWN]) + more


def _row_problems(call: Call) -> list[str]:
    rows = _rows(call)
    missing = [str(r.get("customer_id", "?")) for r in rows if _flag(r.get("at_risk")) is None]
    not_at_risk = [str(r.get("customer_id", "?")) for r in rows if _flag(r.get("at_risk")) is False]
    problems = []
    if missing:
        problems.append(f"{call.name} rows carry no at_risk field, so they cannot be checked against the "
                        f"at-risk definition (customers {_ids_text(missing)})")
    if not_at_risk:
        problems.append(f"{call.name} returned customers that are not at risk (at_risk false) for an at-risk "
                        f"question: {_ids_text(not_at_risk)}")
    return problems


def check_at_risk_answer(user: str, answer: str, calls: list[Call],
                         earlier_messages: list[str] | None = None) -> list[str] | None:
    """Problems of an at-risk answer (see the module docstring); None when the check does not apply."""
    row_calls = [c for c in calls if c.name in ROW_TOOLS]
    if not row_calls or not asks_about_at_risk(user, earlier_messages):
        return None
    problems = [p for c in row_calls for p in _row_problems(c)]
    flags: dict[str, bool | None] = {}
    for call in calls:
        if not call.error:
            _customer_flags(call.result, flags)
    listed = [cid for cid, flag in flags.items() if flag is False
              and re.search(rf"(?<![A-Za-z0-9]){re.escape(cid)}(?![A-Za-z0-9])", answer)]
    if listed:
        problems.append(f"the answer lists customers that are not at risk: {_ids_text(listed)}")
    return problems


# ---------------------------------------------------------------- the non-empty campaign check


def _words(text: str) -> str:
    return " " + re.sub(r"[\s_\-]+", " ", text.lower()).strip() + " "


@functools.cache
def goal_phrases() -> tuple[str, ...]:
    """The goals, their aliases and the packaged catalogue's playbook names, as words ("win back")."""
    from predictor.campaigns.catalogue import GOAL_ALIASES, GOALS, load_catalogue

    names = {*GOALS, *(a for a in GOAL_ALIASES if a not in _GENERIC_ALIASES),
             *(p.name for p in load_catalogue().playbooks)}
    return tuple(sorted({_words(n).strip() for n in names}))


def names_a_goal(message: str) -> bool:
    """Does the message name a campaign goal or playbook ("win-back", "reactivation", "vip retention")?"""
    text = _words(message)
    return any(f" {phrase} " in text for phrase in goal_phrases())


def _invalid_arguments(call: Call) -> bool:
    return isinstance(call.error, dict) and call.error.get("code") == "invalid_arguments"


def _plan_problem(call: Call) -> str | None:
    goal = call.arguments.get("goal")
    label = f"recommend_campaigns (goal {goal})" if goal else "recommend_campaigns"
    if call.error:
        message = call.error.get("message") if isinstance(call.error, dict) else call.error
        return f"{label} returned no plan: {str(message)[:200]}"
    campaigns = (call.result or {}).get("campaigns") or [] if isinstance(call.result, dict) else []
    if not any((c.get("audience_size") or 0) > 0 for c in campaigns if isinstance(c, dict)):
        return f"{label} returned {len(campaigns)} campaign(s), none with customers in its audience"
    return None


def check_campaign_non_empty(user: str, calls: list[Call]) -> list[str] | None:
    """Problems of a campaign answer for a named goal or playbook; None when the check does not apply."""
    plans = [c for c in calls if c.name == "recommend_campaigns" and not _invalid_arguments(c)]
    if not plans or not (any(c.arguments.get("goal") for c in plans) or names_a_goal(user)):
        return None
    problems = [_plan_problem(c) for c in plans]
    if any(p is None for p in problems):
        return []  # one non-empty plan is an answer (an agent may retry a wider audience)
    return [p for p in problems if p]


def semantic_checks(user: str, answer: str, calls: list[Call],
                    earlier_messages: list[str] | None = None) -> dict[str, list[str]]:
    """Check name -> problems, for the checks that apply to this turn."""
    outcomes = {AT_RISK: check_at_risk_answer(user, answer, calls, earlier_messages),
                CAMPAIGN: check_campaign_non_empty(user, calls)}
    return {name: problems for name, problems in outcomes.items() if problems is not None}
