"""Entity values in a question resolved against the values the data has (the facts'): tiers, lifecycle
stages, RFM segments and product words, exactly or as typos (rapidfuzz), never as a nearby real word.

A name matches as written (case, apostrophes and a plural "s" aside: "cant lose them", "champions"), or
fuzzily: one word at least 90% alike that is no word the planner or English knows ("platnum",
"champoins"), or a run of as many words as the name has that is 90% alike ("needs attention"), or 85%
with a word nobody knows ("potental loyalists"). So "champagne" never becomes Champions.

Some names are everyday words that name a value only with a cue ("new", "active", "at risk", "loyal",
"lost"): those are read by the slot rules that know the cue (agent.planner.slots), not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from agent.planner.facts import PlannerFacts
from agent.planner.vocabulary import COMMON, STOP, english_words

# Names the slot rules read with their cue ("the at risk segment", "new customers", "loyal customers").
CUE_ONLY = {"segment": {"at risk", "new", "loyal", "lost"}, "lifecycle": {"at risk", "new", "active"}, "tier": set()}
# Contractions in names as questions also write them ("cannot lose them" for "Can't Lose Them").
CONTRACTIONS = {"cant": "cannot"}
# Words that say how much someone buys, not what: never a product mention on their own.
DEGREE = set("big bigger biggest large larger largest huge heavy heavier major main keen regular frequent real "
             "top best key good great most more many lot lots loads fans fan lovers lover collectors collector "
             "stock stocks up go goes going".split())


def plain(text: str) -> str:
    """Lower case, apostrophes dropped, "&" as "and", other punctuation as spaces: how names and questions
    are compared."""
    text = text.lower().replace("'", "").replace("’", "").replace("&", " and ")
    return " ".join(re.findall(r"[a-z0-9]+", text))


class EntityResolver:
    """Finds the data's tier, lifecycle and segment names and its product words in a (normalised) question."""

    def __init__(self, facts: PlannerFacts, known_words: Callable[[], Iterable[str]]):
        """`known_words`: the planner's own vocabulary (a word in it is never a typo of a name)."""
        self.facts = facts
        self._known_words = known_words
        self._known: frozenset[str] | None = None
        self._not_products: frozenset[str] | None = None

    def known(self) -> frozenset[str]:
        if self._known is None:
            self._known = frozenset(self._known_words()) | english_words() | COMMON
        return self._known

    def names(self, text: str, kind: str) -> list[str]:
        """The data's names of `kind` ("tier", "lifecycle", "segment") the text mentions, in text order."""
        values = {"tier": self.facts.tiers, "lifecycle": self.facts.lifecycle_stages,
                  "segment": self.facts.segments}[kind]
        skip = CUE_ONLY[kind]
        tokens = plain(text).split()
        found: list[tuple[int, str]] = []
        for name in values:
            key = plain(name)
            if key in skip:
                continue
            at = self._position(tokens, key.split())
            if at is not None:
                found.append((at, name))
        return [name for _, name in sorted(found)]

    def _position(self, tokens: list[str], words: list[str]) -> int | None:
        """Where the name's words stand in the tokens, as written or as a typo; None when absent."""
        from rapidfuzz import fuzz

        n = len(words)
        target = " ".join(words)
        known = self.known()
        for i in range(len(tokens) - n + 1):
            run = tokens[i:i + n]
            joined = " ".join(run)
            if joined == target or joined.rstrip("s") == target.rstrip("s"):
                return i
            if run[0][:1] != target[:1] or len(joined) < 5:
                continue
            score = fuzz.ratio(joined, target)
            if n == 1 and score >= 90 and run[0] not in known:
                return i
            # a run of several words that close to a name is that name ("needs attention"), typo or not; at
            # 85% only when a word that differs is no word anyone knows ("potental loyalists"): a real word
            # in its place is another phrase ("about to leave" is no "About to Sleep")
            if n > 1 and (score >= 90 or (score >= 85 and any(w not in known for w, t in zip(run, words) if w != t))):
                return i
        return None

    def mask(self, text: str, names: Iterable[str]) -> str:
        """The text without the names found in it, as written or as typos, so a word inside a name ("them"
        in "Can't Lose Them") is never read as pointing back at an earlier answer."""
        tokens = plain(text).split()
        masked = False
        for name in names:
            words = plain(name).split()
            at = self._position(tokens, words)
            if at is None:
                short = [CONTRACTIONS.get(w, w) for w in words]  # "cannot lose them"
                at = self._position(tokens, " ".join(short).split()) if short != words else None
                words = " ".join(short).split() if at is not None else words
            if at is not None:
                tokens[at:at + len(words)] = []
                masked = True
        return " ".join(tokens) if masked else text

    def product_mentions(self, text: str) -> list[str]:
        """The words of the text that name products of the data ("candle", "tea", "sets", "lanterns"):
        words of its product names or categories that are neither the planner's own words, stop words
        nor words of degree ("big", "top")."""
        terms = self.facts.product_terms()
        if not terms:
            return []
        if self._not_products is None:
            self._not_products = frozenset(self._known_words()) | STOP | COMMON | DEGREE
        return [w for w in re.findall(r"[a-z]+", plain(text)) if w in terms and w not in self._not_products]
