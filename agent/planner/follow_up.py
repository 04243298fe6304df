"""The follow-up stage: questions that point back at the previous answer ("them", "only the gold ones",
"the second one", "make that fifty", "what about Spain instead") reuse and amend its call."""

from __future__ import annotations

import re
from typing import Any

from agent.planner.intent import explicit_intent
from agent.planner.plan import Plan, call_plan
from agent.planner.vocabulary import FILTER_KEYS, slots_filled

REFERENCE = re.compile(r"\b(them|they|those|these|that list|that audience|that|the same|same ones|ones|"
                       r"this list|this audience|instead|only|also|just)\b|^(and|but|what about|how about|now|ok|so)\b")
STRONG_REFERENCE = re.compile(r"\b(of them|them|those ones|these ones|the same ones|that list|that audience|"
                              r"as before|the usual|we discussed|like last time|same like)\b")
ORDINALS = {"first": 0, "top": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
            "fifth": 4, "5th": 4, "last": -1, "bottom": -1}


def merge_follow_up(text: str, slots: dict[str, Any], previous: dict[str, Any]) -> Plan | None:
    """The previous turn's call amended by this question's slots, or None when it cannot be reused."""
    prev = Plan.from_dict(previous["plan"])
    if prev.kind != "answer" or not prev.calls:
        return None
    prev_args = dict(prev.calls[0]["args"])
    explicit = explicit_intent(text)
    # "and what about 17850?" after a customer lookup
    if slots.get("customer_id") and explicit in (None, "get_customer"):
        return Plan("get_customer", calls=[{"name": "get_customer", "args": {"customer_id": slots["customer_id"]}}])
    target = explicit or prev.intent
    if target == "get_customer" and not slots.get("customer_id"):
        return None
    args = {k: v for k, v in prev_args.items() if k in FILTER_KEYS}
    args.update({k: slots[k] for k in FILTER_KEYS if k in slots})
    if target == prev.intent:
        # keep the previous call's own options (goal, budget, sort, grouping, query) unless restated
        for k, v in prev_args.items():
            if k not in FILTER_KEYS:
                args.setdefault(k, v)
    elif target == "export_audience" and prev.intent == "recommend_campaigns":
        for k in ("goal", "budget"):
            if k in prev_args:
                args[k] = prev_args[k]
        args["source"] = "campaigns"
    for k in ("limit", "sort_by", "group_by", "goal", "budget"):
        if k in slots:
            args[k] = slots[k]
    if target == "search_profiles" and slots.get("query") and explicit == "search_profiles":
        args["query"] = slots["query"]
    return call_plan(target, args)


def is_follow_up(text: str, slots: dict[str, Any]) -> bool:
    if REFERENCE.search(text):
        return True
    words = re.findall(r"[a-z']+", text)
    # Short fragments ("in France?", "gold only", "by country instead") refine the last question.
    return len(words) <= 5 and (slots_filled(slots) or bool(slots.get("customer_id")))


def needs_previous(text: str) -> bool:
    return bool(re.search(r"\b(them|they|those|these|it|that one|the same|same like|as before|the usual|"
                          r"we discussed|like last time)\b", text))


def dangling_reference(text: str) -> bool:
    """'which of them are in Germany?' points back; 'German customers ... split them' points inside."""
    m = STRONG_REFERENCE.search(text)
    return bool(m) and not re.search(r"\b(customers|clients|buyers|shoppers|people|accounts)\b", text[: m.start()])


def ordinal_ref(text: str) -> int | None:
    """The place in the previous list a question points at ("the second one", "number 3", "the last one")."""
    m = re.search(r"\b(?:the )?(first|second|third|fourth|fifth|1st|2nd|3rd|4th|5th|last|top|bottom) "
                  r"(?:one|1|customer|client|guy|person|account|of them|on the list)\b", text)
    if m:
        return ORDINALS[m.group(1)]
    m = re.search(r"\bnumber (\d{1,2})\b", text)
    return int(m.group(1)) - 1 if m else None


def customer_at(previous: dict[str, Any], index: int) -> str | None:
    for result in previous.get("results") or []:
        if not isinstance(result, dict):
            continue
        rows = result.get("customers") or result.get("hits") or []
        if rows and -len(rows) <= index < len(rows):
            return str(rows[index].get("customer_id"))
    return None
