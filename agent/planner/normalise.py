"""The normalise stage: lower case, plain quotes, typo repair against the words the planner knows and
the words of the data's product names (rapidfuzz), and numbers in words or shorthand as digits ("top
fifty" -> 50, "£1.5k" -> 1500)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent.planner.dates import MONTH_NAMES
from agent.planner.facts import PlannerFacts
from agent.planner.numbers import numbers_to_digits
from agent.planner.vocabulary import (COMMON, COUNTRY_ALIASES, EVERYDAY_WORD, EVERYDAY_WORDS, FOREIGN_COUNTRY,
                                      FOREIGN_COUNTRY_NAMES, english_words, read_jargon)

# Domain words no intent example may happen to use, known so typo repair never "corrects" them.
DOMAIN_WORDS = ("customers customer clients client csv export download campaign budget churn risk value "
                "valuable predicted segment segments country countries lifecycle tier tiers lapsed lapsing "
                "reactivate retention recommend offer spend revenue orders ordered bought purchased "
                "platinum model accuracy quarter month months weeks days year highest lowest most show list "
                "which where what when why who about should buyers shoppers vip vips").split()


# The verbs a request opens with before "me": a near miss of one ("shoe me", "sho me", "gve me") is that verb,
# even when the miss is itself an English word, which typo repair leaves alone.
REQUEST_VERBS = ("show", "give", "find", "tell", "list", "pull")
OPENING_VERB = re.compile(r"^((?:please |pls |can you |could you |would you |hi,? |hello,? )?)([a-z]{2,6}) me\b")
# "I'd like to see ..." is a wish, never a liking for a product ("like" is a word of the product search).
WISH = re.compile(r"\b(i|we)(?:'d| would) like\b")


def everyday_words(low: str) -> str:
    """Everyday words as the planner's own (vocabulary.EVERYDAY_WORDS), a wish as "want", a country in its own
    or a neighbour's language in English ("Deutschland" -> "germany"), and a near miss
    of the opening request verb as that verb."""
    from rapidfuzz import fuzz, process

    low = EVERYDAY_WORD.sub(lambda m: EVERYDAY_WORDS[m.group(1)], WISH.sub(r"\1 want", low))
    low = FOREIGN_COUNTRY.sub(lambda m: FOREIGN_COUNTRY_NAMES[m.group(1)].lower(), low)
    m = OPENING_VERB.match(low)
    if m and m.group(2) not in REQUEST_VERBS:
        hit = process.extractOne(m.group(2), REQUEST_VERBS, scorer=fuzz.ratio, score_cutoff=75)
        if hit:
            low = m.group(1) + hit[0] + low[m.end(2):]
    return low


# What a ranking or a grouping is "by" (a figure of the customers or a dimension), never something bought.
FIGURE_OR_DIMENSION = (r"(?:value|spend|spent|revenue|sales|churn|risk|likel|predict|future|expected|forecast|lifetime|"
                       r"histor|total|customer|tier|countr|segment|lifecycle|stage|rfm|market|nation|recen|orders?\b)")


class Normaliser:
    """Normalises questions against the intent examples' words and the data facts' names."""

    def __init__(self, example_words: Iterable[str], facts: PlannerFacts, product_examples: Iterable[str] = ()):
        """`example_words`: the words of the intent examples; `product_examples`: those of the product
        search examples among them (product words, not the planner's own)."""
        self._example_words = set(example_words)
        self._product_examples = set(product_examples)
        self._facts = facts
        self._own: frozenset[str] | None = None
        self._vocab: list[str] | None = None
        self._products: list[str] | None = None

    def own_words(self) -> frozenset[str]:
        """The planner's own words: intent examples (bar the product ones), domain words, the data's
        country, tier, stage and segment names, aliases and month names."""
        if self._own is None:
            facts = self._facts
            words = (self._example_words - self._product_examples) | set(DOMAIN_WORDS) | set(COUNTRY_ALIASES)
            for name in [*facts.countries(), *facts.segments, *facts.tiers, *facts.lifecycle_stages]:
                words.update(name.lower().replace("'", "").split())
            words.update(MONTH_NAMES)
            self._own = frozenset(w for w in words if len(w) >= 3)
        return self._own

    def vocab(self) -> list[str]:
        """The words typo repair corrects towards first (three letters or more), sorted."""
        if self._vocab is None:
            self._vocab = sorted(self.own_words() | {w for w in self._product_examples if len(w) >= 3})
        return self._vocab

    def product_vocab(self) -> list[str]:
        """The data's product words, which typo repair tries when no word of the planner is near."""
        if self._products is None:
            self._products = sorted(w for w in self._facts.product_terms() if len(w) >= 4)
        return self._products

    def __call__(self, text: str) -> str:
        from rapidfuzz import fuzz, process

        text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
        vocab = self.vocab()
        known = set(vocab)
        english = english_words()
        products = self._facts.product_terms()

        def fix(m: re.Match) -> str:
            word = m.group(0)
            # Only words that are neither ours nor English are typos ("custmers", "frnace"); a real
            # word ("spent", "march") is never "corrected" into a nearby one.
            if len(word) < 4 or "'" in word or word in known or word in COMMON or word in english or \
                    word in products:
                return word
            if word.endswith("s") and (word[:-1] in known or word[:-1] in english):
                return word  # the plural of a word we know ("forecasts") is no typo of another word
            hit = process.extractOne(word, vocab, scorer=fuzz.ratio, score_cutoff=75)
            if hit is None:
                hit = process.extractOne(word, self.product_vocab(), scorer=fuzz.ratio, score_cutoff=85)
            return hit[0] if hit else word

        low = read_jargon(re.sub(r"[a-z]+(?:'[a-z]+)?", fix, everyday_words(text.lower())))
        # "who by candles" is a frequent misspelling of "buy" that no word list catches; "customers by
        # value" / "by country" is a ranking or a grouping, and stays "by".
        # "by how much they will spend", "by what they spent": a ranking too.
        low = re.sub(r"\b(who|that|which|customers|clients|people)\s+by\b(?!\s+(?:how|what)\b)(?!\s+(?:the |their )?"
                     + FIGURE_OR_DIMENSION + r")", r"\1 buy", low)
        return numbers_to_digits(low)
