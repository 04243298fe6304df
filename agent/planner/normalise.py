"""The normalise stage: lower case, plain quotes, typo repair against the words the planner knows
(rapidfuzz), and numbers in words or shorthand as digits ("top fifty" -> 50, "£1.5k" -> 1500)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent.planner.facts import PlannerFacts
from agent.planner.numbers import numbers_to_digits
from agent.planner.vocabulary import COMMON, COUNTRY_ALIASES, MONTHS, english_words

# Domain words no intent example may happen to use, known so typo repair never "corrects" them.
DOMAIN_WORDS = ("customers customer clients client csv export download campaign budget churn risk value "
                "valuable predicted segment segments country countries lifecycle tier tiers lapsed lapsing "
                "reactivate retention recommend offer spend revenue orders ordered bought purchased "
                "platinum model accuracy quarter month months weeks days year highest lowest most show list "
                "which where what when why who about should candles candle lanterns children toys "
                "christmas decorations france germany belgium switzerland netherlands").split()


class Normaliser:
    """Normalises questions against the intent examples' words and the data facts' names."""

    def __init__(self, example_words: Iterable[str], facts: PlannerFacts):
        self._example_words = set(example_words)
        self._facts = facts
        self._vocab: list[str] | None = None

    def vocab(self) -> list[str]:
        """The words typo repair corrects towards (three letters or more), sorted."""
        if self._vocab is None:
            facts = self._facts
            words = set(self._example_words)
            for c in facts.countries():
                words.update(c.lower().split())
            words.update(COUNTRY_ALIASES)
            words.update(w for s in facts.segments for w in s.lower().replace("'", "").split())
            words.update(t.lower() for t in facts.tiers)
            words.update(w for s in facts.lifecycle_stages for w in s.split())
            words.update(DOMAIN_WORDS)
            words.update(m for m in MONTHS if len(m) > 3)
            self._vocab = sorted(w for w in words if len(w) >= 3)
        return self._vocab

    def __call__(self, text: str) -> str:
        from rapidfuzz import fuzz, process

        text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
        vocab = self.vocab()
        known = set(vocab)
        english = english_words()

        def fix(m: re.Match) -> str:
            word = m.group(0)
            # Only words that are neither ours nor English are typos ("custmers", "frnace"); a real
            # word ("spent", "march") is never "corrected" into a nearby one.
            if len(word) < 4 or "'" in word or word in known or word in COMMON or word in english:
                return word
            hit = process.extractOne(word, vocab, scorer=fuzz.ratio, score_cutoff=75)
            return hit[0] if hit else word

        low = re.sub(r"[a-z]+(?:'[a-z]+)?", fix, text.lower())
        # "who by candles" is a frequent misspelling of "buy" that no word list catches.
        low = re.sub(r"\b(who|that|which|customers|clients|people)\s+by\b", r"\1 buy", low)
        return numbers_to_digits(low)
