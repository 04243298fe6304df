"""The planner: a question goes through the stages in order (guard, normalise, slots, intent,
follow-up, then a tool call, a clarifying question or a refusal), and the tool results through the
answer stage. One `Planner` per tool registry serves the whole process (`get_planner`)."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

from agent.planner.answer import write_answer
from agent.planner.entities import EntityResolver
from agent.planner.facts import PlannerFacts, RegistryFacts
from agent.planner.follow_up import (STRONG_REFERENCE, customer_at, dangling_reference, exports_previous_audience,
                                     is_follow_up, merge_follow_up, needs_previous, next_page, ordinal_ref,
                                     ordinal_refs, pending_intent,
                                     without_time_words)
from agent.planner.guard import file_targets, read_quotes, refusal, strip_injection
from agent.planner.intent import IntentModel, choose_intent, explicit_intent
from agent.planner.normalise import Normaliser
from agent.planner.plan import Plan, build_plan
from agent.planner.slots import SlotReader
from agent.planner.texts import (CAPABILITIES, CLARIFY_CLOSEST, CLARIFY_NO_ROW, CLARIFY_REFERENCE, CLARIFY_VAGUE,
                                 GREETING, HELP, OUT_OF_SCOPE)
from agent.planner.vocabulary import DOMAIN, DOMAIN_STRONG, FILTER_KEYS, UNSERVED_SUBJECT, slots_filled
from predictor.settings import Settings


class Planner:
    """Question -> Plan, and Plan + tool results -> answer text."""

    def __init__(self, settings: Settings, facts: PlannerFacts, *, intent_model: IntentModel | None = None):
        self.settings = settings
        self.facts = facts
        self.intents = intent_model or IntentModel(settings)
        self.normalise = Normaliser(self.intents.vocab, facts, self.intents.product_words)
        self.slots = SlotReader(facts, self.normalise.vocab, EntityResolver(facts, self.normalise.own_words))

    @classmethod
    def for_registry(cls, settings: Settings, registry: Any, *, intent_model: IntentModel | None = None) -> Planner:
        """A planner over the facts of the tool registry's customers table."""
        return cls(settings, RegistryFacts(registry, settings.currency_symbol), intent_model=intent_model)

    def plan(self, message: str, history: list[dict[str, Any]]) -> Plan:
        """`history`: earlier turns' plans and results, newest last ({"plan": Plan dict, "results": [...]})."""
        original, _ = strip_injection(message.strip(), "")  # quotes kept: they delimit names and paths
        plan = self._plan(message, history, original)
        if plan.kind == "answer" and plan.calls:
            plan.dropped = file_targets(original, exclude=self.slots.unknown_countries(original))
        return plan

    def answer(self, plan: Plan, traces: list[dict[str, Any]]) -> tuple[str, str]:
        """(answer text, kind) from the tool results."""
        return write_answer(plan, traces, self.settings)

    def _plan(self, message: str, history: list[dict[str, Any]], original: str) -> Plan:
        raw, quoted = read_quotes(message)
        # Instructions hidden in the question (fake system tags, "ignore previous ...") are not obeyed;
        # the legitimate request around them is still answered.
        clean, injected = strip_injection(raw, quoted)
        text = self.normalise(clean)
        refused = refusal(raw, clean, text, injected, self.normalise)
        if refused is not None:
            return refused
        scores = self.intents.scores(text) if text.strip() else {}
        previous = history[-1] if history else None
        slots = self.slots.read(text, raw, quoted, original, after_campaign=_was_campaign(previous))
        intent, confidence = choose_intent(text, scores, slots)
        if slots.get("problems") and (intent != "out_of_scope" or DOMAIN.search(text)):
            # An amount that cannot be used (negative, zero, absurd) is refused with the reason; planning
            # without it or with another amount would answer a question the user did not ask.
            return Plan(intent, "refuse", text=" ".join(slots["problems"]))
        # Names that hold a pointing word ("Can't Lose Them") and time words ("these days") are left out of
        # the reference checks.
        ref_text = without_time_words(self.slots.entities.mask(text, slots.get("segments") or []))
        if previous:
            follow_up = _follow_up_plan(text, ref_text, slots, intent, previous)
            if follow_up is not None:
                return follow_up
        unserved = unserved_subject(text, intent, slots)
        if unserved:
            return Plan(intent, "clarify", text=closest_question(unserved, scores))
        plan = _new_question_plan(text, ref_text, slots, intent, confidence, bool(previous), injected)
        if plan.kind == "clarify" and plan.text == CLARIFY_VAGUE and DOMAIN_STRONG.search(text):
            # In scope but not mapped to one tool: ask back, naming the closest things it can do.
            return Plan(intent, "clarify", text=closest_question("", scores))
        return plan


def _was_campaign(previous: dict[str, Any] | None) -> bool:
    """Whether the previous answer was a campaign plan."""
    if not previous:
        return False
    calls = (previous.get("plan") or {}).get("calls") or []
    return any(c.get("name") == "recommend_campaigns" for c in calls)


def unserved_subject(text: str, intent: str, slots: dict[str, Any]) -> str:
    """What an in-scope question asks about that no tool returns ("which products sell best", "the best
    weekday to email"), or ""."""
    m = UNSERVED_SUBJECT.search(text)
    if not m or slots.get("customer_id") or slots.get("orders"):
        return ""
    in_scope = intent != "out_of_scope" or DOMAIN.search(text) or re.search(
        r"\b(products?|sell\w*|sales|shop|store|emails?|marketing|newsletter)\b", text)
    return m.group(0) if in_scope else ""


def closest_question(subject: str, scores: dict[str, float], count: int = 3) -> str:
    """The clarifying question naming the `count` tools nearest the question (by its example scores)."""
    ranked = sorted((k for k in scores if k in CAPABILITIES), key=lambda k: -scores[k])
    for default in ("find_customers", "segment_summary", "recommend_campaigns"):
        if default not in ranked:
            ranked.append(default)
    options = [CAPABILITIES[k] for k in ranked[:count]]
    listed = "; ".join(options[:-1]) + "; or " + options[-1]
    what = f"“{subject}”" if subject else "that"
    return CLARIFY_CLOSEST.format(what=what, options=listed)


def _follow_up_plan(text: str, ref_text: str, slots: dict[str, Any], intent: str,
                    previous: dict[str, Any]) -> Plan | None:
    """A plan that reuses the previous answer ("the second one", "only the gold ones"), or None.
    `ref_text`: the question without names that hold pointing words."""
    pending = pending_intent(previous)
    if pending and explicit_intent(text, slots) in (None, pending) and any(k in slots for k in FILTER_KEYS):
        # the answer to "which customers should I export?": that export, for the customers it names
        return build_plan(pending, slots, text, False)
    if exports_previous_audience(text, slots, previous):
        return merge_follow_up(text, slots, previous)
    page = next_page(text, slots, previous)
    if page is not None:
        return page
    several = ordinal_refs(ref_text) if not slots.get("customer_id") else None
    if several:
        ids = [customer_at(previous, i) for i in several]
        if all(ids):
            return Plan("get_customer", calls=[{"name": "get_customer", "args": {"customer_id": c}} for c in ids])
        return Plan("get_customer", "clarify", text=CLARIFY_NO_ROW)
    ordinal = ordinal_ref(ref_text)
    if ordinal is not None and not slots.get("customer_id"):
        cid = customer_at(previous, ordinal)
        if cid:
            return Plan("get_customer", calls=[{"name": "get_customer", "args": {"customer_id": cid}}])
        return Plan("get_customer", "clarify", text=CLARIFY_NO_ROW)
    short_refinement = slots_filled(slots) and len(text.split()) <= 6
    if is_follow_up(ref_text, slots) and (intent != "out_of_scope" or short_refinement):
        return merge_follow_up(text, slots, previous)
    return None


def _new_question_plan(text: str, ref_text: str, slots: dict[str, Any], intent: str, confidence: float,
                       has_previous: bool, injected: bool) -> Plan:
    """The plan for a question that stands on its own: a tool call, or a clarifying question or refusal
    when it points at nothing, is off-topic or too vague."""
    # "these scores", "is it accurate": a question about the model points at no earlier answer
    unresolved = needs_previous(ref_text) and not (slots.get("orders") or slots.get("customer_id")) and (
        intent not in ("model_report", "model_health"))
    if unresolved and not has_previous and (not slots_filled(slots) or dangling_reference(ref_text)) and not (
            confidence >= 0.55 and DOMAIN_STRONG.search(text) and not STRONG_REFERENCE.search(ref_text)) and not (
            intent == "out_of_scope" and confidence >= 0.6):
        return Plan(intent, "clarify", text=CLARIFY_REFERENCE)
    if intent == "out_of_scope":
        if confidence < 0.42 and re.search(r"\b(show|list|give|find|get|ones|those|these|them|it|same)\b", text):
            return Plan(intent, "clarify", text=CLARIFY_VAGUE)
        return Plan("out_of_scope", "refuse", text=OUT_OF_SCOPE)
    if intent in ("help", "greeting"):
        if confidence >= 0.5:
            return Plan(intent, "answer", text=HELP if intent == "help" else GREETING)
        return Plan(intent, "clarify", text=CLARIFY_REFERENCE if needs_previous(ref_text) else CLARIFY_VAGUE)
    grounded_in_domain = DOMAIN.search(text) or slots_filled(slots) or slots.get("customer_id") or confidence >= 0.6
    if confidence < 0.32 or not grounded_in_domain:
        return Plan(intent, "clarify", text=CLARIFY_VAGUE)
    return build_plan(intent, slots, text, injected)


# Bounded, and every entry holds its registry (through the planner's facts), so a cached registry's id
# is never reused by another object while the entry lives.
_planners: OrderedDict[tuple[tuple[str, str], int], Planner] = OrderedDict()
_planners_lock = threading.Lock()
_PLANNERS_KEPT = 8


def get_planner(settings: Settings, registry: Any = None) -> Planner:
    """The planner of these settings (equal settings share it) and this tool registry (the registry of
    the settings when none is given); the 8 most recently used are kept."""
    from tools.registry import PerSettings, get_registry

    if registry is None:
        registry = get_registry(settings)
    key = (PerSettings.key(settings), id(registry))
    with _planners_lock:
        planner = _planners.get(key)
        if planner is None:
            planner = _planners[key] = Planner.for_registry(settings, registry)
            while len(_planners) > _PLANNERS_KEPT:
                _planners.popitem(last=False)
        _planners.move_to_end(key)
        return planner
