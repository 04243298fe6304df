"""The plan: what the planner decided for one question (tool calls, a clarifying question or a refusal),
and how an intent and its slots become the tool call."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.planner.texts import CLARIFY_CUSTOMER, CLARIFY_EXPORT, CLARIFY_ORDERS, CLARIFY_VAGUE, NOTE_INJECTION
from agent.planner.vocabulary import FILTER_KEYS, GONE_SEGMENTS, SLIPPING_SEGMENTS, TOP_TIERS

# A question that is only a word for customers ("customers", "our clients"): neither which nor what about them.
BARE_CUSTOMERS = re.compile(r"^\W*(?:(?:my|our|the)\s+)?(?:customers|clients|shoppers|buyers|accounts|people)\W*$")
# Only a vague ask about customers ("I need some info on customers", "any data about our clients?"): no
# list, breakdown or plan is named, and no audience, so it is asked back rather than guessed.
VAGUE_ABOUT_CUSTOMERS = re.compile(
    r"^\W*(?:(?:i|we)(?:'d like|(?: really)? (?:need|want|would like|am after|are after|am looking for|"
    r"are looking for))|give me|get me|can (?:i|we) (?:get|have)|can you give me|tell me|looking for)?\s*"
    r"(?:some|more|a bit of|any|the)?\s*(?:info\w*|data|details|insights?|stuff|something|numbers|figures|analysis|"
    r"facts|intel)\s+(?:on|about|for|regarding|re|of|around)\s+(?:my |our |the )?"
    r"(?:customers|clients|shoppers|buyers|accounts|people)(?: please)?\W*$")
# Words that say an export is of customers, all of them when no filter is named ("export all customers",
# "download the customer base"); without one ("export", "download a csv") it is asked who.
WHOLE_AUDIENCE = re.compile(r"\b(customers?|clients?|buyers|shoppers|accounts|people|everyone|everybody|everything|"
                            r"all|whole|entire|base|audience|segment|tier)\b")
# A summary's dimensions and the filter argument of each.
SUMMARY_DIMENSIONS = (("country", "countries"), ("tier", "tiers"), ("segment", "segments"), ("lifecycle", "lifecycle"))
# Names given as examples of every value ("Champions, Loyal, the lot", "Gold, Silver and so on").
ALL_OF_THEM = re.compile(r"\b(?:the lot|the rest|and so on|etc|et cetera|all of them|every one|each of them|"
                         r"the whole lot|all the (?:segments|tiers|stages|countries)|"
                         r"every (?:segment|tier|stage|country))\b")
# The options each tool takes besides the audience filter (FILTER_KEYS).
TOOL_OPTIONS = {"find_customers": {"sort_by", "limit", "offset"}, "segment_summary": {"group_by"},
                "search_profiles": {"query", "limit"}, "recommend_campaigns": {"goal", "budget"},
                "export_audience": {"goal", "budget", "source", "sort_by", "max_rows", "campaign"}}


@dataclass
class Plan:
    intent: str
    kind: str = "answer"  # answer | clarify | refuse
    calls: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "args"}]
    text: str = ""  # clarify/refuse/help text, or a note added to the answer
    note: str = ""
    # Paths, file names and addresses the request asked to write to, which no tool can honour: the
    # answer says so (exports always go to the data directory's exports folder under their own name).
    dropped: list[str] = field(default_factory=list)
    # The request the calls stand in for, when it is not theirs: "campaign_for_one" (a campaign asked for
    # one customer, answered with their detail and next best action, and said so).
    variant: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Plan":
        return cls(**{k: d[k] for k in ("intent", "kind", "calls", "text", "note", "dropped", "variant") if k in d})


def call_plan(tool: str, args: dict[str, Any], note: str = "") -> Plan:
    """A plan of one call to `tool` with the arguments it takes; a campaign with no goal stated gets the
    goal its audience implies (see audience_goal)."""
    if tool == "recommend_campaigns" and not args.get("goal"):
        goal = audience_goal(args)
        if goal:
            args = {**args, "goal": goal}
    return Plan(tool, calls=[{"name": tool, "args": args_for(tool, args)}], note=note)


def audience_goal(args: dict[str, Any]) -> str | None:
    """The campaign goal an audience implies when the question states none: customers at risk (the
    at_risk filter, the at-risk or lapsing stages, a churn threshold, the RFM segments that are slipping)
    are kept: VIP retention for the top tiers, win-back for the rest; lapsed, hibernating or lost
    customers are won back. Any other audience: None (the campaign planner picks per customer)."""
    stages = set(args.get("lifecycle") or [])
    segments = set(args.get("segments") or [])
    tiers = set(args.get("tiers") or [])
    slipping = (args.get("at_risk") is True or stages & {"at risk", "lapsing"} or args.get("min_churn_risk")
                or segments & SLIPPING_SEGMENTS)
    if slipping:
        return "retain" if tiers and tiers <= set(TOP_TIERS) else "win_back"
    if (stages and stages <= {"lapsed"}) or (segments and segments <= GONE_SEGMENTS):
        return "win_back"
    return None


def args_for(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Keep only the arguments this tool takes."""
    allowed = set(FILTER_KEYS) | TOOL_OPTIONS.get(tool, set())
    out = {k: v for k, v in args.items() if k in allowed and v is not None}
    if tool == "export_audience" and "limit" in args and "max_rows" not in out:
        out["max_rows"] = args["limit"]
    if tool == "search_profiles" and "query" not in out:
        out["query"] = "customers"
    if tool == "get_customer":
        return {"customer_id": args.get("customer_id")}
    return out


def summary_args(args: dict[str, Any], text: str) -> dict[str, Any]:
    """A summary's grouping from what the question compares or asks a share of:
    - a share of one value ("what share of revenue do Platinum customers bring in?") is that value's row
      among all of its dimension: grouped by it, not filtered on it (a filter would make it 100%);
    - two or more values compared ("compare Germany and France") are grouped by their dimension;
    - values given as examples of all ("segment counts: Champions, Loyal, the lot") filter nothing."""
    args = dict(args)
    share = re.search(r"\b(share|proportion|percentage|what part|fraction|how many of)\b", text)
    if share and not args.get("group_by"):
        named = [group for group, key in SUMMARY_DIMENSIONS if len(args.get(key) or []) == 1]
        if len(named) == 1:
            args["group_by"] = named[0]
    if re.search(r"\b(compar\w*|versus|vs\.?|against|side by side)\b", text) and not args.get("group_by"):
        many = [group for group, key in SUMMARY_DIMENSIONS if len(args.get(key) or []) >= 2]
        if many:
            args["group_by"] = many[0]
    key = dict(SUMMARY_DIMENSIONS).get(args.get("group_by") or "")
    if key and key in args and (share and len(args[key]) == 1 or ALL_OF_THEM.search(text)):
        args.pop(key)
    return args


def build_plan(intent: str, slots: dict[str, Any], text: str, injected: bool) -> Plan:
    """The plan for a new question (not a follow-up) whose intent and slots are known."""
    note = NOTE_INJECTION if injected else ""
    if intent == "get_customer":
        if not slots.get("customer_id"):
            return Plan(intent, "clarify", text=CLARIFY_CUSTOMER)
        return Plan(intent, calls=[{"name": "get_customer", "args": {"customer_id": slots["customer_id"]}}],
                    note=note)
    if intent == "score_customer":
        if not slots.get("orders"):
            return Plan(intent, "clarify", text=CLARIFY_ORDERS)
        return Plan(intent, calls=[{"name": "score_customer", "args": {"orders": slots["orders"]}}], note=note)
    if intent in ("model_report", "model_health"):
        return Plan(intent, calls=[{"name": intent, "args": {}}], note=note)
    if intent == "search_profiles" and not slots.get("query"):
        intent = "find_customers"
    args = {k: slots[k] for k in FILTER_KEYS if k in slots}
    for k in ("limit", "sort_by", "group_by", "goal", "budget", "query"):
        if k in slots and slots[k] is not None:
            args[k] = slots[k]
    if intent == "segment_summary":
        args = summary_args(args, text)
    if (BARE_CUSTOMERS.match(text) or VAGUE_ABOUT_CUSTOMERS.match(text)) and not set(args) - {"query"}:
        return Plan(intent, "clarify", text=CLARIFY_VAGUE)  # "clients": neither which nor what about them
    if intent == "find_customers" and not args:
        if not re.search(r"\b(customers?|clients?|accounts?|shoppers?|buyers?)\b", text):
            return Plan(intent, "clarify", text=CLARIFY_VAGUE)
    if intent == "export_audience" and not args and not WHOLE_AUDIENCE.search(text):
        return Plan(intent, "clarify", text=CLARIFY_EXPORT)  # "export", "download a csv": of whom?
    return call_plan(intent, args, note)
