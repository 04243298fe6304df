"""Mask personal data in the marketer's free text before it leaves for a hosted LLM, and put it back after.

Why: a marketer may paste an e-mail address, a phone number, a payment card or a person's name into a
question ("call me on +44 7700 900123 about customer 14911"). None of that is needed to plan or answer,
so it is replaced by stable placeholders (<EMAIL_1>, <PHONE_1>, <CARD_1>, <NAME_1>) before the text is
sent, and the placeholders in the model's answer are restored on our side (`unmask`).

What: Microsoft Presidio's recognizers, called directly (no AnalyzerEngine, no NLP engine, no spaCy
model, no network at run time):
- e-mail: EmailRecognizer; its top-level-domain check uses tldextract's bundled public-suffix snapshot
  (the stock check fetches the list from the network on first use). An unknown suffix keeps the
  pattern's score instead of dropping the match: masking errs on the side of privacy.
- phone: PhoneRecognizer (the `phonenumbers` library) for UK and US national formats and any
  international (+CC / 00CC) number, at its VALID leniency; a second, POSSIBLE-leniency pass keeps only
  numbers written with a trunk 0 or an international prefix and 10-15 digits (Ofcom's drama range
  07700 900xxx is possible but not "valid"). Numbers right after "order", "invoice", "customer", "id",
  "#" and the like are never phones.
- card: CreditCardRecognizer (Luhn-checked), plus Mastercard's 2221-2720 range that its pattern lacks.
- name: PatternRecognizer patterns on cues, since there is no NER model: "my name is X", "I'm X Y",
  "Mr/Mrs/Ms/Miss/Dr X", "customer called/named X", "Dear X,", "Regards, X" at a line's end,
  "contact/call/e-mail X Y at/on/about ...". Limits: a name without such a cue ("ask Priya to
  approve it", "Priya's customers") or written in lower case is not found; a capitalised non-name after
  a cue that is not in the stop list may be masked. A name found once is also masked where it recurs.
Overlapping detections are resolved by score, then length. The same value (e-mails case-insensitively,
phones and cards by their digits) gets the same placeholder within one text; ids, amounts, dates,
percentages and order numbers are left alone.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

PREFIX = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD", "PERSON": "NAME"}
PHONE_REGIONS = ("GB", "US")  # national formats; "+CC ..." and "00CC ..." numbers parse in any region
# Right before a number, these say it is an order, invoice, customer or stock reference, not a phone.
NOT_A_PHONE_BEFORE = re.compile(
    r"(?i)(?:\b(?:orders?|invoices?|inv|customers?|ids?|refs?|reference|sku|stock\s*codes?|tickets?|"
    r"no)\b\.?|#)\s*(?:no\.?|number|id|#)?\s*[:#]?\s*$")
LENIENT_PHONE = re.compile(r"^\(?(?:\+|0)")
MASTERCARD_2_SERIES = r"\b2(?:22[1-9]|2[3-9]\d|[3-6]\d{2}|7[01]\d|720)[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b"

# Capitalised words that follow the cues without being names.
STOP = ("Team|All|Everyone|Sir|Madam|Customers?|Clients?|Valued|Gold|Silver|Bronze|Platinum|VIP|"
        "Marketing|Sales|Support|Finance|Manager|Admin|The|This|That|A|An|Our|My|Your|Not|Looking|Going|"
        "Trying|Planning|Here|Back|Sure|Interested|Urgent|Important|Happy|Ready|Done|New|"
        "January|February|March|April|May|June|July|August|September|October|November|December|"
        "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Christmas|Black|"
        "UK|US|USA|EU|Germany|France|Spain|Belgium|Ireland|Europe|Mr|Mrs|Ms|Dr")
UPPER, LOWER = r"\p{Lu}", r"\p{Ll}+"  # any script's letters: Zofia, Müller, García
TOKEN = (rf"(?!(?:{STOP})\b)"  # O'Brien, Smith-Jones, McDonald, Priya
         rf"(?:{UPPER}['’]{UPPER}{LOWER}|{UPPER}{LOWER}(?:{UPPER}{LOWER})?(?:-{UPPER}{LOWER})?)")
NAME = rf"{TOKEN}(?:[ \t]+{TOKEN}){{0,2}}"
# The name must end a clause after a self-introduction ("I'm Priya Patel, ...", "I am Sam from ...").
AFTER_INTRO = r"(?=\s*(?:[,.;:!?)]|$)|\s+(?i:from|here|and|at|in|with|of|on)\b)"
AFTER_CONTACT = r"(?=\s+(?i:at|on|via|about|re|regarding|by|to|that|if|whether|asap)\b|\s*[,(])"
NAME_PATTERNS = (  # (name, regex, score); cue words match any case, the name must be capitalised
    ("my name is", rf"(?<=\b(?i:my\s+name\s+is|my\s+name's|name:)\s*){NAME}", 0.7),
    ("title", rf"(?<=\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+){NAME}", 0.7),
    ("customer called", rf"(?<=\b(?i:customer|client|shopper|buyer)\s+(?i:called|named)\s+){NAME}", 0.6),
    ("dear", rf"(?<=\b(?i:dear|hi|hello)\s+){NAME}(?=\s*[,!:\n]|\s*$)", 0.6),
    ("sign-off", rf"(?<=\b(?i:regards|thanks|thank\s+you|cheers|sincerely|best\s+wishes|best),?\s+)"
                 rf"{NAME}(?=[ \t]*[.!]?[ \t]*$)", 0.6),
    ("introduction", rf"(?<=\b(?i:I'm|I’m|I\s+am|this\s+is)\s+){NAME}{AFTER_INTRO}", 0.5),
    ("contact", rf"(?<=\b(?i:contact|call|ring|phone|e-?mail|message|text|ask|tell|remind|cc)\s+)"
                rf"{NAME}{AFTER_CONTACT}", 0.5),
)
PLACEHOLDER = re.compile(r"(?:<\s*|&lt;)?\b(EMAIL|PHONE|CARD|NAME)\\?[_-](\d+)\b(?:\s*>|&gt;)?", re.IGNORECASE)


@dataclass
class MaskResult:
    """The masked text and, for each placeholder in it, the original value it stands for."""

    text: str
    mapping: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Span:
    """One detection: a Presidio entity type and its character span in the text."""

    entity: str
    start: int
    end: int
    score: float


def _offline_email_check(extract):
    """Presidio's e-mail validation against the bundled suffix list: True for a known suffix, else
    None (keeps the pattern's score, so an address on an unknown domain is still masked)."""
    def validate_result(pattern_text: str) -> bool | None:
        return True if extract(pattern_text).fqdn else None
    return validate_result


def _build_recognizers() -> list:
    """Presidio recognizers, built once; importing presidio is the slow part (its package
    imports spaCy, and transformers where that is installed)."""
    import regex
    import tldextract
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer, PhoneRecognizer

    email = EmailRecognizer()
    email.validate_result = _offline_email_check(tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None))
    card = CreditCardRecognizer(patterns=[*CreditCardRecognizer.PATTERNS,
                                          Pattern("Mastercard 2-series", MASTERCARD_2_SERIES, 0.3)])
    phone = PhoneRecognizer(supported_regions=PHONE_REGIONS, leniency=1)
    possible_phone = PhoneRecognizer(supported_regions=("GB",), leniency=0, name="PossiblePhoneRecognizer")
    names = PatternRecognizer(supported_entity="PERSON", name="NameCueRecognizer",
                              patterns=[Pattern(n, rx, s) for n, rx, s in NAME_PATTERNS],
                              global_regex_flags=regex.MULTILINE)  # case-sensitive: names are capitalised
    return [email, card, phone, possible_phone, names]


def _keep(text: str, result, recognizer_name: str) -> bool:
    """Drops phone candidates that are references (order 12345678) or, from the lenient pass, not
    written like a phone number (a trunk 0 or an international prefix, 10-15 digits)."""
    if result.entity_type != "PHONE_NUMBER":
        return True
    if NOT_A_PHONE_BEFORE.search(text[max(0, result.start - 30):result.start]):
        return False
    if recognizer_name != "PossiblePhoneRecognizer":
        return True
    raw = text[result.start:result.end]
    return bool(LENIENT_PHONE.match(raw)) and 10 <= sum(c.isdigit() for c in raw) <= 15


def _resolve(spans: list[Span]) -> list[Span]:
    """Non-overlapping spans: the higher score wins, then the longer span, then the earlier one."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def _recurring_names(text: str, kept: list[Span]) -> list[Span]:
    """Other whole-word occurrences of a name found through a cue ("... sign it from Priya Patel")."""
    found = []
    for name in {text[s.start:s.end] for s in kept if s.entity == "PERSON"}:
        for match in re.finditer(rf"(?<![\w'’-]){re.escape(name)}(?![\w'’-])", text):
            found.append(Span("PERSON", match.start(), match.end(), 0.45))
    return found


def _value_key(entity: str, value: str) -> str:
    """What makes two detections 'the same value': digits for phones and cards, case for e-mails."""
    if entity in ("PHONE_NUMBER", "CREDIT_CARD"):
        return entity + ":" + "".join(c for c in value if c.isdigit())
    return entity + ":" + (value.casefold() if entity == "EMAIL_ADDRESS" else value)


class PIIMasker:
    """Replaces e-mails, phones, card numbers and cued person names with placeholders and back."""

    def __init__(self) -> None:
        self._recognizers = _build_recognizers()

    def detect(self, text: str) -> list[Span]:
        """The personal-data spans of `text`, without overlaps, in reading order."""
        spans = []
        for recognizer in self._recognizers:
            for result in recognizer.analyze(text, recognizer.supported_entities, nlp_artifacts=None):
                if _keep(text, result, recognizer.name):
                    spans.append(Span(result.entity_type, result.start, result.end, result.score))
        kept = _resolve(spans)
        return _resolve(kept + _recurring_names(text, kept))

    def mask(self, text: str) -> MaskResult:
        """`text` with each detected value replaced by a placeholder numbered per type in reading order."""
        placeholders: dict[str, str] = {}
        mapping: dict[str, str] = {}
        counts: dict[str, int] = {}
        pieces, last = [], 0
        for span in self.detect(text):
            value = text[span.start:span.end]
            key = _value_key(span.entity, value)
            if key not in placeholders:
                prefix = PREFIX[span.entity]
                counts[prefix] = counts.get(prefix, 0) + 1
                placeholders[key] = f"<{prefix}_{counts[prefix]}>"
                mapping[placeholders[key]] = value
            pieces += [text[last:span.start], placeholders[key]]
            last = span.end
        pieces.append(text[last:])
        return MaskResult("".join(pieces), mapping)

    @staticmethod
    def unmask(text: str, mapping: dict[str, str]) -> str:
        """Restores the placeholders of `mapping` in a model's answer, also when it changed their case,
        dropped the angle brackets or escaped them (EMAIL_1, email_1, &lt;EMAIL_1&gt;, EMAIL\\_1)."""
        def restore(match: re.Match) -> str:
            return mapping.get(f"<{match.group(1).upper()}_{int(match.group(2))}>", match.group(0))
        return PLACEHOLDER.sub(restore, text) if mapping else text


@functools.lru_cache(maxsize=1)
def masker() -> PIIMasker:
    """The process-wide masker (its recognizers are built once and are safe to share)."""
    return PIIMasker()


SEPARATOR = "\n\u241e\n"  # between the texts of one request when they are masked together


def mask_texts(texts: list[str]) -> tuple[list[str], dict[str, str]]:
    """Mask several texts of one request together, so a value gets the same placeholder in all of them."""
    if not texts:
        return [], {}
    result = masker().mask(SEPARATOR.join(texts))
    parts = result.text.split(SEPARATOR)
    if len(parts) != len(texts):  # a detection swallowed a separator: mask each text on its own instead
        masked = [masker().mask(t) for t in texts]
        mapping = {}
        for i, m in enumerate(masked):  # keep placeholders unique across texts
            for placeholder, value in m.mapping.items():
                mapping[placeholder.replace(">", f"_{i}>")] = value
        return [re.sub(r"<([A-Z]+_\d+)>", rf"<\1_{i}>", m.text) for i, m in enumerate(masked)], mapping
    return parts, result.mapping
