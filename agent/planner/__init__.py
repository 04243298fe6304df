"""The offline planner: the `offline` backend, answering with no LLM, no GPU and no network.

A question goes through these stages, one module each:

- `guard`: requests to send data out, write or delete, hand over personal details or make figures up
  are refused; instructions hidden in a question are dropped and the rest is answered;
- `normalise`: lower case, typo repair against the words the planner knows, numbers in words and
  shorthand to digits (`numbers`: "top fifty" -> 50, "two thousand pounds" -> 2000, "£1.5k" -> 1500);
- `slots`: tiers, lifecycle stages, RFM segments, countries (`countries`: the data's own list, aliases
  and demonyms), churn thresholds, money (`amounts`: value bands, budgets), recency windows and order
  histories (`dates`), ranking, grouping, limits, campaign goal, customer ids, a search phrase;
- `intent`: nearest example utterances (prompts/intents.yaml, embedded once and cached) combined with
  keyword rules;
- `follow_up`: "them", "only the gold ones", "the first one", "make that fifty" reuse the previous
  turn's call;
- `plan`: the tool call, clarifying question or refusal; `answer`: the reply written from templates
  over the tool results (`templates`), so every number in it is grounded.

`pipeline.Planner` runs the stages over a `facts.PlannerFacts` (countries, as-of date, customer ids,
currency, the tier/segment/lifecycle vocabulary), never over the tools' internals. `chat_model`
wraps the planner as a LangChain chat model, so memory, streaming, tool traces and the grounding
check are the same as with an LLM.
"""

from agent.planner.chat_model import PlannerChatModel
from agent.planner.facts import PlannerFacts, RegistryFacts, StaticFacts
from agent.planner.intent import IntentModel
from agent.planner.numbers import numbers_to_digits, words_to_number
from agent.planner.pipeline import Planner, get_planner
from agent.planner.plan import Plan

__all__ = ["IntentModel", "Plan", "Planner", "PlannerChatModel", "PlannerFacts", "RegistryFacts", "StaticFacts",
           "get_planner", "numbers_to_digits", "words_to_number"]
