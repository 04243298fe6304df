"""Country slots: the data's own country names, aliases and demonyms, typos of them, "outside X", and
countries named explicitly that the data does not have (passed on, so the tool refuses them by name)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from agent.planner.facts import PlannerFacts
from agent.planner.vocabulary import COMMON, COUNTRY_ALIASES, FOREIGN_COUNTRY_NAMES

# A country given explicitly ("in country 'X'", "country: X", "from country Atlantis"): a value that
# names no country in the data is passed on, so the tool refuses it by name instead of it being
# dropped and the audience silently becoming everyone.
COUNTRY_VALUE = [
    re.compile(r"\bcountr(?:y|ies)\b\s*(?:(?:is|are|=|:|named|called|equals?)\s*)?"
               r"(?P<q>['\"])(?P<v>[^'\"]{1,100})(?P=q)", re.I),
    re.compile(r"\bcountr(?:y|ies)(?:\s*[=:]\s*|\s+(?:is\s+|named\s+|called\s+)?)"
               r"(?P<v>(?:~|\.{1,2})?[/\\][^\s,;?!'\"]*)", re.I),
    re.compile(r"\b[Cc]ountr(?:y|ies)(?::| is| =| named| called| of)? ?(?P<v>[A-Z][\w'.-]*(?: [A-Z][\w'.-]*)*)"),
    # a place the customers are in, capitalised as a name is ("top customers in Narnia", "buyers from Atlantis")
    re.compile(r"\b(?:customers|clients|buyers|shoppers|accounts|people|ones|everyone)\b(?: [\w'-]+){0,3}? "
               r"(?:in|from)\s+(?:[Tt]he\s+)?(?P<v>[A-Z][a-z]{2,}(?: [A-Z][a-z]{2,})?)\b"),
]
# The pattern above only takes names (capitalised words); these are names of tools and channels, not places.
NOT_PLACES = set("excel csv klaviyo mailchimp hubspot salesforce shopify amazon ebay etsy google facebook instagram "
                 "tiktok twitter linkedin email newsletter slack crm".split())


def countries_in(text: str, raw: str, facts: PlannerFacts) -> list[str]:
    """The countries the (normalised) text names: the data's, and countries it lacks named in full; `raw`
    keeps the case that tells "US" from "us"."""
    from rapidfuzz import fuzz, process

    known = facts.countries()
    lower = {c.lower(): c for c in known}
    found = [canonical for pattern, canonical in _country_patterns(tuple(known)) if pattern.search(text)]
    if _names_us(raw) and (not known or "USA" in known):
        found.append("USA")
    if not found and known:
        # typos the vocabulary pass missed ("frnace"): fuzzy match words after "in/from/of"
        for word in re.findall(r"\b(?:in|from|of|for)\s+(?:the\s+)?([a-z]{4,})\b", text):
            hit = process.extractOne(word, list(lower), scorer=fuzz.ratio, score_cutoff=80)
            if hit:
                found.append(lower[hit[0]])
    out = list(dict.fromkeys(found))
    if re.search(r"\b(outside|except|excluding|other than|non[- ])\s?(?:the\s)?", text) and out and known:
        excluded = set(out)
        return [c for c in known if c not in excluded and c not in ("Unspecified",)]
    return out


@functools.lru_cache(maxsize=8)
def _country_patterns(known: tuple[str, ...]) -> list[tuple[re.Pattern, str]]:
    """(pattern, country) for every name a country goes by, longest first: the data's countries, their
    aliases and demonyms, and countries the data lacks named in full ("the Netherlands"), which are passed
    on so the tool says so by name (their demonyms and aliases, "dutch", are left alone)."""
    lower = {c.lower(): c for c in known}
    in_full = {c.lower(): c for c in COUNTRY_ALIASES.values()}
    out = []
    for name, canonical in sorted({**in_full, **COUNTRY_ALIASES, **lower}.items(), key=lambda kv: -len(kv[0])):
        if name == "us" or (known and canonical not in known and name != canonical.lower()):
            continue
        out.append((re.compile(r"(?<![\w.])" + re.escape(name) + r"(?![\w])"), canonical))
    return out


def _names_us(raw: str) -> bool:
    """"US" as a word of its own (not inside "CUSTOMERS"); in a message written all in capitals, where
    "US" is as likely "us", only "U.S." or "US" after "in"/"from"/"the" names the country."""
    if not re.search(r"[a-z]", raw):
        return bool(re.search(r"(?<![A-Z])U\.S\.(?![A-Z])|\b(?:IN|FROM|THE) US\b", raw))
    return bool(re.search(r"(?<![A-Za-z])(US|U\.S\.)(?![A-Za-z])", raw))


def unknown_countries(message: str, facts: PlannerFacts, vocab: Iterable[str]) -> list[str]:
    """Countries the message names explicitly ("in country 'X'") that match no country of the data,
    an alias or (as a typo) one of them: passed on as they are, so the tool names them in its refusal.
    `vocab`: the planner's words, which an unquoted value is not ("by country Instead")."""
    from rapidfuzz import fuzz, process

    known = facts.countries()
    if not known:
        return []
    lower = {c.lower() for c in known} | set(COUNTRY_ALIASES) | set(FOREIGN_COUNTRY_NAMES)
    words = set(vocab) | COMMON
    out: list[str] = []
    for i, pattern in enumerate(COUNTRY_VALUE):
        for m in pattern.finditer(message):
            value = m.group("v").strip().rstrip(".,;:!?")
            norm = value.lower()
            if not value or norm in lower or norm in ("us", "u.s.") or norm in out:
                continue
            if i >= 2 and (norm in words or set(norm.split()) & (words | NOT_PLACES | facts.product_terms())):
                continue  # an unquoted value that is one of our words, a product's or a tool's is no place
            if process.extractOne(norm, list(lower), scorer=fuzz.ratio, score_cutoff=80):
                continue  # a typo of a known country, which countries_in repairs
            out.append(value[:100])
    return out
