"""The follow-up stage: questions that point back at the previous answer ("them", "only the gold ones",
"the second one", "make that fifty", "same for Spain", "and in Germany?", "what about Gold?") reuse and
amend its call: the audience always, the intent too ("draft a campaign for them" after an at-risk list
plans a retention or win-back campaign for that audience). A question with its own subject and no word
pointing back stands on its own."""

from __future__ import annotations

import re
from typing import Any

from agent.planner.intent import explicit_intent
from agent.planner.plan import Plan, call_plan
from agent.planner.vocabulary import FILTER_KEYS, slots_filled

# Words that point back at the previous answer's customers or call ("them", "those", "the same", "the
# gold ones", "instead", "make it 40"): with one, a question amends the previous call.
BACK_REFERENCE = re.compile(r"\b(them|they|their|those|these|him|his|her|of them|the same|same ones|ones|instead|as well|"
                            r"that (?:list|audience|group|segment|campaign|plan|one|export|file|result)|"
                            r"this (?:list|audience|group|segment)|make (?:it|that)|"
                            r"(?:export|download|save|list|show|split|break down|plan for) it)\b|^(?:same|only)\b|"
                            r"\bonly\W*$")
# Words for the one customer of a detail answer ("what about his churn risk?").
ONE_CUSTOMER_REFERENCE = re.compile(r"\b(his|her|him|he|she|their|them|they|it|this customer|that customer|"
                                    r"this client|that client)\b")
# After a question about the model, "and at picking out the big spenders?" asks how good it is at that too.
SKILL_CONTINUATION = re.compile(r"^\W*(?:and|but|what about|how about|also|is it|and is it)?\s*"
                                r"(?:any good |good |better )?(?:at|in|for) (?:picking|predicting|spotting|finding|"
                                r"telling|identifying|ranking|forecasting|estimating|guessing|catching|flagging|sorting|"
                                r"separating)\b")
# "Which tier would that put them in?", "what segment is he in?": one customer's value of a dimension,
# which their detail or score holds, not a breakdown of everyone.
ONE_VALUE_QUESTION = re.compile(r"\b(?:which|what) (?:tier|segment|rfm segment|stage|lifecycle stage)\b(?!s)")
# Openings that continue the previous question ("and in Germany?", "what about Gold?", "now by country"):
# a follow-up unless the question names its own customers ("and how many customers are lapsed?").
# A what-if ("what if we only had £50 for it?", "suppose the budget were 2k") changes the last answer's terms.
CONTINUATION = re.compile(r"^(?:and|but|or|what about|how about|now|ok|okay|so|then|also|plus|just|what if|and if|"
                          r"suppose|supposing|let'?s say|say we|say the|imagine|in that case)\b")
# A continuation that only restates the audience ("what about just the Silver customers?", "and only the German
# clients?", "how about the Platinum ones"): the previous question again, for them.
RESTATED_AUDIENCE = re.compile(r"^(?:and |but |so |ok |okay |then )?(?:(?:what|how) about |only |just )(?:just |only )?"
                               r"(?:the |our |my )?(?:[\w'-]+ ){0,3}(?:customers|clients|ones|buyers|shoppers|accounts)"
                               r"(?: then| instead| only| please)?\W*$")
OWN_SUBJECT = re.compile(r"\b(customers|clients|shoppers|buyers|people|accounts|audience|everyone|everybody|"
                         r"customer base)\b")
REQUEST_VERB = re.compile(r"^(?:please |pls |can you |could you )?(?:list|show|display|give|get|find|who|which|what|how|"
                          r"tell|export|plan|draft|break|count|rank|score|recommend|suggest|compare|summari[sz]e|search|"
                          r"put|save|download)\b")
STRONG_REFERENCE = re.compile(r"\b(of them|them|those ones|these ones|the same ones|that list|that audience|"
                              r"as before|the usual|we discussed|like last time|same like)\b")
# Openings that start a new subject ("Separately - who are ...", "new question: ..."): never a follow-up.
NEW_SUBJECT = re.compile(r"^\W*(?:separately|unrelated|new question|different question|another question|"
                         r"on another note|on a different note|changing (?:the )?subject|different topic)\b")
# Every customer as the subject ("export all customers instead", "what about everyone?"): no earlier filter.
ALL_CUSTOMERS = re.compile(r"\b(?:all (?:the |our |my )?|every |the whole |the entire |our whole |our entire )"
                           r"(?:customers?|clients?|buyers?|shoppers?|customer base|base)\b|\b(?:everyone|everybody)\b")
# A follow-up to a scoring that adds orders to the same customer's history ("what if they also ordered
# ...", "and another £50 on ..."); other orders in a follow-up are a new history ("now one who ordered ...").
ADDS_ORDERS = re.compile(r"\b(also|another|add\w*|more|too|as well|plus|extra|again|they|them|their|he|she|his|her|"
                         r"same)\b|^\W*and\b")
REPLACES_ORDERS = re.compile(r"\b(instead|only|different|other|new (?:customer|client|buyer)|start over)\b")
# Tools whose answers hold an audience a later "export it" / "download the list" means.
AUDIENCE_TOOLS = ("find_customers", "segment_summary", "recommend_campaigns", "export_audience")
# The next rows of the previous list ("show me the next 20", "20 more", "another 10", "the next page", "more of
# them", "keep going"): the same call past the rows already shown. Not a time ("the next 30 days") or a tier.
NOT_ROWS = r"(?!\s?(?:%|percent|days?|weeks?|months?|years?|quarters?|orders?|£|" + r"pounds?|quids?|euros?|dollars?))"
NEXT_PAGE = re.compile(r"\b(?:the )?next (\d{1,3})\b" + NOT_ROWS + r"|\b(\d{1,3}) more\b" + NOT_ROWS
                       + r"|\banother (\d{1,3})\b" + NOT_ROWS + r"|\bnext (?:page|batch|lot|set|bunch|few|ones|rows|"
                       r"results|names)\b|\bmore (?:of them|of those|rows|results|names)\b|^\W*(?:show |give me )?"
                       r"(?:some )?more(?: please)?\W*$|\bkeep (?:going|them coming)\b|\bpage (?:2|two)\b")
# How many rows a list shows when it names no count (tools.models.DEFAULT_LIMIT).
DEFAULT_ROWS = 20
ORDINALS = {"first": 0, "top": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
            "fifth": 4, "5th": 4, "last": -1, "bottom": -1}


def merge_follow_up(text: str, slots: dict[str, Any], previous: dict[str, Any]) -> Plan | None:
    """The previous turn's call amended by this question's slots, or None when it cannot be reused."""
    prev = Plan.from_dict(previous["plan"])
    if prev.kind != "answer" or not prev.calls:
        return None
    prev_args = dict(prev.calls[0]["args"])
    explicit = explicit_intent(text, slots)
    # "and what about 17850?" after a customer lookup
    if slots.get("customer_id") and explicit in (None, "get_customer"):
        return Plan("get_customer", calls=[{"name": "get_customer", "args": {"customer_id": slots["customer_id"]}}])
    if prev.intent == "model_report" and SKILL_CONTINUATION.search(text):
        return Plan("model_report", calls=[{"name": "model_report", "args": {}}])
    target = explicit or prev.intent
    if slots.get("orders"):
        target = "score_customer"  # an order history is scored, whatever the previous answer was
    if target == "export_audience" and explicit is None:
        target = "find_customers"  # an export is made only when asked for; "which of them ..." is a list
    if prev.intent in ("get_customer", "score_customer") and ONE_CUSTOMER_REFERENCE.search(text) and (
            target in ("get_customer", "recommend_campaigns", "find_customers", "score_customer")
            or target == "segment_summary" and ONE_VALUE_QUESTION.search(text)):
        return _one_customer_again(text, slots, prev.intent, prev_args, target)
    if target == "get_customer" and not slots.get("customer_id"):
        return None
    if target == "score_customer":
        return _score_follow_up(text, slots, prev_args)
    args = {k: v for k, v in prev_args.items() if k in FILTER_KEYS}
    args.update({k: slots[k] for k in FILTER_KEYS if k in slots})
    if target == prev.intent:
        # keep the previous call's own options (goal, budget, sort, grouping, query) unless restated
        for k, v in prev_args.items():
            if k not in FILTER_KEYS and k != "offset":  # a refined list starts at its first row again
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


def next_page(text: str, slots: dict[str, Any], previous: dict[str, Any]) -> Plan | None:
    """"Show me the next 20" after a list: its call again, its sort and filters kept, starting after the rows
    already shown (the previous offset plus the rows it returned); the count asked for, else the same count."""
    m = NEXT_PAGE.search(text)
    prev = Plan.from_dict(previous.get("plan") or {"intent": ""})
    if not m or prev.kind != "answer" or len(prev.calls) != 1 or prev.calls[0]["name"] != "find_customers":
        return None
    args = dict(prev.calls[0]["args"])
    shown = rows_returned(previous) or args.get("limit") or DEFAULT_ROWS
    args["offset"] = int(args.get("offset") or 0) + shown
    count = slots.get("limit") or next((int(g) for g in m.groups() if g), None)
    if count:
        args["limit"] = count
    return call_plan("find_customers", args)


def rows_returned(previous: dict[str, Any]) -> int:
    """How many customers the previous answer listed (0 when its results are not at hand)."""
    for result in previous.get("results") or []:
        if isinstance(result, dict) and isinstance(result.get("customers"), list):
            return int(result.get("returned") or len(result["customers"]))
    return 0


def _one_customer_again(text: str, slots: dict[str, Any], intent: str, prev_args: dict[str, Any],
                        target: str) -> Plan | None:
    """"What about his churn risk?", "what should we offer them?", "draft a campaign for them with £2k" after
    one customer's detail or score: that customer again (the detail holds the churn risk and the next best
    action, which is the campaign for one customer). A campaign asked for gets its answer in those words."""
    if intent == "score_customer":
        return _score_follow_up(text, slots, prev_args)
    if not prev_args.get("customer_id"):
        return None
    campaign = target == "recommend_campaigns" and bool(slots.get("budget") or re.search(r"\bcampaigns?\b", text))
    return Plan("get_customer", calls=[{"name": "get_customer", "args": {"customer_id": prev_args["customer_id"]}}],
                variant="campaign_for_one" if campaign else "")


def _score_follow_up(text: str, slots: dict[str, Any], prev_args: dict[str, Any]) -> Plan | None:
    """The previous scoring again: with the orders the question adds ("what if they also ordered £400 on
    ..."), or with its orders only when it says they replace the history."""
    before = list(prev_args.get("orders") or [])
    new = list(slots.get("orders") or [])
    if not before and not new:
        return None
    adds = ADDS_ORDERS.search(text) and not REPLACES_ORDERS.search(text)
    orders = before + [o for o in new if o not in before] if adds or not new else new
    return Plan("score_customer", calls=[{"name": "score_customer", "args": {"orders": orders}}])


def exports_previous_audience(text: str, slots: dict[str, Any], previous: dict[str, Any]) -> bool:
    """"Can I download the target list?", "pop that into a CSV": an export that names no audience of its
    own, right after an answer about one, exports that audience."""
    prev = (previous or {}).get("plan") or {}
    return (explicit_intent(text, slots) == "export_audience" and prev.get("kind") == "answer"
            and prev.get("intent") in AUDIENCE_TOOLS and bool(prev.get("calls"))
            and not any(k in slots for k in FILTER_KEYS) and not OWN_SUBJECT.search(text))


def pending_intent(previous: dict[str, Any] | None) -> str | None:
    """The tool a clarifying question was about ("export" -> "which customers should I export?"), whose
    audience the next answer gives ("the at-risk ones in Germany")."""
    prev = (previous or {}).get("plan") or {}
    if prev.get("kind") == "clarify" and prev.get("intent") in ("export_audience", "recommend_campaigns"):
        return prev["intent"]
    return None


def is_follow_up(text: str, slots: dict[str, Any]) -> bool:
    """Whether the question refers back to the previous answer. A standalone question (its own subject or
    request verb, no word pointing back) never inherits the previous turn's filter."""
    if NEW_SUBJECT.search(text) or ALL_CUSTOMERS.search(text):
        return False
    if BACK_REFERENCE.search(text) or RESTATED_AUDIENCE.search(text):
        return True
    own_subject = bool(OWN_SUBJECT.search(text))
    if CONTINUATION.search(text) and not own_subject:
        return True
    words = re.findall(r"[a-z']+", text)
    # Short fragments ("in France?", "gold only", "by country", "top 10") refine the last question.
    return (len(words) <= 5 and (slots_filled(slots) or bool(slots.get("customer_id"))) and not own_subject
            and not REQUEST_VERB.search(text))


# Time words that hold a pointing word ("these days", "in those days"): no reference to an earlier answer.
TIME_DEICTIC = re.compile(r"\b(?:these|those) (?:days|times)\b|\bthese (?:weeks|months)\b")


def without_time_words(text: str) -> str:
    return TIME_DEICTIC.sub(" ", text)


def needs_previous(text: str) -> bool:
    return bool(re.search(r"\b(them|they|those|these|it|that one|the same|same like|as before|the usual|"
                          r"we discussed|like last time)\b", text))


def dangling_reference(text: str) -> bool:
    """'which of them are in Germany?' points back; 'German customers ... split them', 'Platinum customer how
    many, and total revenue of them' and 'Who in Belgium ...? Rank them by value at risk.' point inside: at a
    word for customers, or at the question of an earlier sentence of the same message."""
    m = STRONG_REFERENCE.search(text)
    if not m:
        return False
    before = text[: m.start()]
    earlier_question = re.search(r"\b(?:who|whom|which)\b[^.?!;]*[.?!;]\s", before)
    return not earlier_question and not re.search(
        r"\b(customers?|clients?|buyers?|shoppers?|people|accounts?|vips?|spenders|members|regulars|ones)\b", before)


def ordinal_ref(text: str) -> int | None:
    """The place in the previous list a question points at ("the second one", "number 3", "the last one")."""
    m = re.search(r"\b(?:the )?(first|second|third|fourth|fifth|1st|2nd|3rd|4th|5th|last|top|bottom) "
                  r"(?:one|1|customer|client|guy|person|account|row|entry|result|line|name|"
                  r"of (?:them|those|these|the list|that list)|(?:on|in) (?:the|that|this) list)\b", text)
    if m:
        return ORDINALS[m.group(1)]
    m = re.search(r"\bnumber (\d{1,2})\b", text)
    return int(m.group(1)) - 1 if m else None


# Several rows of the previous list ("compare the first two", "the top 3 ones", "the first and third",
# "number 1 and number 4"): each one's detail.
FIRST_ROWS = re.compile(r"\b(?:first|top) ([2-5])(?: (ones?|of (?:them|those|these|the list)|(?:on|in|from) (?:the|that|this) "
                        r"list))?\W*$")
# What asks for rows' details, not a shorter list ("compare the first two", "tell me more about the top 3").
DETAIL_ASK = re.compile(r"\b(?:compare|contrast|details?|profiles?|tell me (?:more )?about|more about|more on|"
                        r"(?:closer )?look at|dig into|drill into|open)\b")
ROW_PAIR = re.compile(r"\b(?:the )?(first|second|third|fourth|fifth|1st|2nd|3rd|4th|5th) (?:one |customer |client )?and "
                      r"(?:the )?(first|second|third|fourth|fifth|1st|2nd|3rd|4th|5th|last)\b|"
                      r"\bnumbers? (\d{1,2}) and (?:number )?(\d{1,2})\b")


def ordinal_refs(text: str) -> list[int] | None:
    """The places in the previous list a question points at when it points at several, or None."""
    m = FIRST_ROWS.search(text)
    if m and (m.group(2) or DETAIL_ASK.search(text)):
        return list(range(int(m.group(1))))
    m = ROW_PAIR.search(text)
    if m and m.group(1):
        return [ORDINALS[m.group(1)], ORDINALS[m.group(2)]]
    if m:
        return [int(m.group(3)) - 1, int(m.group(4)) - 1]
    return None


def customer_at(previous: dict[str, Any], index: int) -> str | None:
    for result in previous.get("results") or []:
        if not isinstance(result, dict):
            continue
        rows = result.get("customers") or result.get("hits") or []
        if rows and -len(rows) <= index < len(rows):
            return str(rows[index].get("customer_id"))
    return None
