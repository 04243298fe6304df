"""The offline planner: the `offline` backend, answering with no LLM, no GPU and no network.

A question becomes tool calls in three steps:

1. normalise: lower case, typo repair against the vocabulary the planner knows (rapidfuzz), number
   words to digits ("top fifty" -> 50, "two thousand pounds" -> 2000, "£1.5k" -> 1500);
2. intent: nearest example utterances (prompts/intents.yaml, embedded once with all-MiniLM-L6-v2 and
   cached) combined with keyword rules, plus guards for out-of-scope, write/delete and data-leaving
   requests (refused) and vague requests (a clarifying question);
3. slots: tiers, lifecycle stages, RFM segments, countries (from the data's own list, with aliases
   and demonyms), limits, money amounts, churn thresholds, recency windows ("last quarter", "six
   months"), ranking, grouping, campaign goal, customer ids, order histories to score; and
   follow-ups ("them", "only the gold ones", "the first one", "make that fifty") reuse the previous
   turn's call.

Answers are written from templates over the tool results, so every number in them is grounded.
The planner runs inside the same LangChain agent graph as an LLM (`PlannerChatModel`), so memory,
streaming, tool traces and the grounding check are shared.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from agent import templates
from predictor.customers.audience import LIFECYCLE_STAGES, RFM_SEGMENTS, TIERS
from predictor.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)

INTENTS_PATH = REPO_ROOT / "prompts" / "intents.yaml"
TOOL_OF = {"find_customers": "find_customers", "segment_summary": "segment_summary", "get_customer": "get_customer",
           "search_profiles": "search_profiles", "recommend_campaigns": "recommend_campaigns",
           "export_audience": "export_audience", "score_customer": "score_customer", "model_report": "model_report"}
FILTER_KEYS = ("tiers", "lifecycle", "segments", "countries", "min_churn_risk", "max_churn_risk", "min_value",
               "max_value", "min_recency_days", "max_recency_days")

# ---------------------------------------------------------------- numbers in words

UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                    "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
TENS.update({"fourty": 40, "ninty": 90})  # common misspellings
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000,
          "trillion": 1_000_000_000_000, "grand": 1000}
NUMBER_WORD = re.compile(
    r"\b(?:(?:a|an|one)\s+)?(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fourty|fifty|sixty|seventy|eighty|ninety|ninty|"
    r"hundred|thousand|million|billion|trillion|grand|dozen|half)(?:[\s-]+(?:and\s+)?(?:one|two|three|four|five|six|"
    r"seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|"
    r"forty|fourty|fifty|sixty|seventy|eighty|ninety|ninty|hundred|thousand|million|billion|trillion|grand))*\b")


def words_to_number(text: str) -> float | None:
    words = [w for w in re.split(r"[\s-]+", text.lower()) if w and w != "and"]
    if words and words[0] in ("a", "an"):
        words[0] = "one"
    if words == ["dozen"] or words == ["one", "dozen"]:
        return 12
    if words == ["half"]:
        return None
    total, current, seen = 0.0, 0.0, False
    for w in words:
        if w in UNITS:
            current += UNITS[w]
        elif w in TENS:
            current += TENS[w]
        elif w == "hundred":
            current = (current or 1) * 100
        elif w in ("thousand", "million", "billion", "trillion", "grand"):
            total += (current or 1) * SCALES[w]
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


def numbers_to_digits(text: str) -> str:
    def repl(m: re.Match) -> str:
        value = words_to_number(m.group(0))
        if value is None:
            return m.group(0)
        return str(int(value)) if value == int(value) else str(value)

    # "1.5k", "2k", "3 grand", "2m" -> plain numbers (money and counts alike), before the word pass
    # would read "grand" on its own as a thousand.
    text = re.sub(r"(\d+(?:\.\d+)?)\s?(k|grand)\b", lambda m: _fmt(float(m.group(1)) * 1000), text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s?(m|mn|million)\b", lambda m: _fmt(float(m.group(1)) * 1e6), text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s?(bn|billion)\b", lambda m: _fmt(float(m.group(1)) * 1e9), text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s?(tn|trillion)\b", lambda m: _fmt(float(m.group(1)) * 1e12), text)
    text = NUMBER_WORD.sub(repl, text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return text


def _fmt(v: float) -> str:
    return str(int(v)) if v == int(v) else str(v)


def _amount(text: str, match: re.Match, group: int) -> float:
    """The amount a money match captured, with the sign written before it ("minus 500" is -500)."""
    value = float(match.group(group))  # inf for "1e999": refused as not finite, never clamped
    return -value if SIGN_BEFORE.search(text[:match.start(group)]) else value


def in_words(value: float) -> str:
    """A round amount in words ("one billion"), so a refusal quotes a limit without an ungrounded figure."""
    names = {v: k for k, v in UNITS.items()}
    for scale, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if value >= scale and value % scale == 0 and value / scale in names:
            return f"{names[int(value / scale)]} {word}"
    return f"{value:,.0f}"


# ---------------------------------------------------------------- vocabulary

COUNTRY_ALIASES = {
    "uk": "United Kingdom", "u.k.": "United Kingdom", "britain": "United Kingdom", "great britain": "United Kingdom",
    "british": "United Kingdom", "england": "United Kingdom", "english": "United Kingdom", "scotland": "United Kingdom",
    "wales": "United Kingdom", "german": "Germany", "germans": "Germany", "french": "France", "spanish": "Spain",
    "dutch": "Netherlands", "holland": "Netherlands", "irish": "EIRE", "ireland": "EIRE", "eire": "EIRE",
    "usa": "USA", "america": "USA", "american": "USA", "united states": "USA", "swiss": "Switzerland",
    "belgian": "Belgium", "portuguese": "Portugal", "italian": "Italy", "australian": "Australia",
    "norwegian": "Norway", "swedish": "Sweden", "danish": "Denmark", "finnish": "Finland", "japanese": "Japan",
    "austrian": "Austria", "polish": "Poland", "greek": "Greece", "cypriot": "Cyprus", "icelandic": "Iceland",
    "canadian": "Canada", "brazilian": "Brazil", "israeli": "Israel", "lebanese": "Lebanon", "maltese": "Malta",
    "czech": "Czech Republic", "uae": "United Arab Emirates", "emirati": "United Arab Emirates",
    "saudi": "Saudi Arabia", "singaporean": "Singapore", "lithuanian": "Lithuania", "south africa": "RSA",
    "south african": "RSA", "bahraini": "Bahrain", "hong kong": "Hong Kong",
}
TIER_WORDS = {t.lower(): t for t in TIERS}
SEGMENT_PATTERNS = [
    (r"champions?", "Champions"), (r"potential loyalists?", "Potential Loyalist"), (r"loyal(?! ?ists?)", "Loyal"),
    (r"promising", "Promising"), (r"needs? (?:of )?attention", "Need Attention"), (r"about to sleep", "About to Sleep"),
    (r"can'?t lose(?: them)?|cannot lose(?: them)?|can not lose(?: them)?", "Can't Lose Them"),
    (r"hibernating", "Hibernating"), (r"\blost\b", "Lost"),
    (r"at risk segment|segment at risk|rfm at risk|\"at risk\" segment", "At Risk"),
    (r"new segment|segment new", "New"),
]
GOALS = [
    (r"win ?-?back|winback|win them back|win back|losing|we'?re losing|re-?engage", "win_back"),
    (r"reactivat|re-?activat|wake up|buy again|come back|bring back|dormant", "reactivate"),
    (r"upgrade|move up|push .* up|next tier|up to gold|up to platinum", "upgrade"),
    (r"cross-?sell|upsell|up-?sell|second (?:order|purchase)|grow|buy more|order again", "grow"),
    (r"retain|retention|keep|loyal(?:ty)? program|happy|hold on", "retain"),
]
SORTS = [
    (r"most likely to (?:churn|leave|go)|highest churn|riskiest|biggest risk (?:of|for)|most big risk|"
     r"churn (?:risk|probability)(?: first| order| descending)?\b(?! (?:over|above|under|below|of|is|more|less|>|<))",
     "churn_risk"),
    (r"value at risk|at stake|money at risk|revenue at risk", "value_at_risk"),
    (r"customer value|total value|overall value", "customer_value"),
    (r"predicted (?:value|spend)|future (?:value|spend)|expected (?:value|spend)|will spend|forecast|"
     r"most valuable|more valuable|valuable first|highest value|high value|spend the most next", "predicted_value"),
    (r"historical|lifetime|whole history|all[- ]time|spent the most|biggest spenders|total spend|so far", "historical_value"),
]
# What follows "sort by" / "rank by": the first matching key wins.
SORT_WORDS = [(r"value at risk|risk value|at risk", "value_at_risk"), (r"churn|risk|likel", "churn_risk"),
              (r"customer value|total value", "customer_value"),
              (r"predict|future|expected|forecast|next", "predicted_value"),
              (r"lifetime|historic|revenue|spend|spent|sales|value", "historical_value")]
GROUPS = [(r"countr(?:y|ies)|nation|market", "country"), (r"lifecycle|stage", "lifecycle"),
          (r"segment|rfm", "segment"), (r"tier", "tier")]

DOMAIN = re.compile(
    r"customer|client|buyer|shopper|people|tier|platinum|gold|silver|bronze|churn|segment|campaign|budget|export|"
    r"csv|model|lapsed|lapsing|champion|order|spend|revenue|value|score|risk|audience|cohort|promo|offer|"
    r"retention|win.?back|reactivat|profile|\bbuy|bought|purchas")
CHURN_PHRASE = re.compile(
    r"\bat[- ]risk\b|likely to (churn|leave|stop)|might (churn|leave)|could (churn|leave)|about to (churn|leave)|"
    r"risk of (churn|churning|leaving)|churning|drift\w* away|slipping away|going away|walk\w* away|"
    r"worry about losing|we'?re losing|risk for going|stop buying")
DOMAIN_STRONG = re.compile(
    r"customer|client|buyer|shopper|tier|platinum|gold|silver|bronze|churn|segment|campaign|export|csv|lapsed|"
    r"lapsing|champion|revenue|audience|cohort|retention|win.?back|reactivat|profile|rfm|model|predict|forecast")
REFERENCE = re.compile(r"\b(them|they|those|these|that list|that audience|that|the same|same ones|ones|"
                       r"this list|this audience|instead|only|also|just)\b|^(and|but|what about|how about|now|ok|so)\b")
STRONG_REFERENCE = re.compile(r"\b(of them|them|those ones|these ones|the same ones|that list|that audience|"
                              r"as before|the usual|we discussed|like last time|same like)\b")
ORDINALS = {"first": 0, "top": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
            "fifth": 4, "5th": 4, "last": -1, "bottom": -1}
MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
MONTHS.update({m[:3]: i for m, i in list(MONTHS.items())})
MONTHS["sept"] = 9

EXFIL_VERB = re.compile(r"\b(send|sent|email|e-mail|mail|upload|post|forward|share|transfer|push|sync|ftp|"
                        r"publish|leak|give .* to)\b")
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+|\b(?:https?|ftp|sftp|s3|gs)://\S+|\bwww\.\S+|webhook|dropbox|"
                     r"google drive|pastebin|slack|gmail|hotmail|outlook|inbox|whatsapp|my e-?mail|e-?mail address|"
                     r"external server|cloud storage|\bs3 bucket")
INJECTION = re.compile(r"ignore (?:all |any |your |the )?(?:previous|prior|above|earlier)? ?(?:instructions|rules|prompts?)|"
                       r"system override|admin mode|developer mode|jailbreak|\bdan\b|no rules|"
                       r"</?(?:user|system|assistant)>|you must now|as the assistant you|reveal .*(?:key|secret|password)|"
                       r"(?:print|show|reveal|repeat) (?:me )?(?:your|the) (?:system )?(?:prompt|instructions)")
WRITE = re.compile(r"\b(delete|remove|erase|drop|wipe|purge|set|change|update|modify|overwrite|edit|insert|"
                   r"add)\b.{0,60}\b(database|system|record|records|data|customers?|churn|risk|score|value|table)\b")
PII = re.compile(r"\b(home address(?:es)?|addresses|phone numbers?|telephone|e-?mail addresses|emails of|"
                 r"date of birth|passport|credit card|bank details|social security|personal details)\b")
FABRICATE = re.compile(r"\b(make up|invent|fabricate|guess|pretend|fake)\b")

# Amounts: digits with an optional exponent ("1e308" is a number, not "1"); a sign written before
# them ("minus 500", "-£500", "£-500") is kept, so a negative amount is refused, never made positive.
AMOUNT = r"(\d+(?:\.\d+)?(?:e[+-]?\d+)?)"
SIGN = r"(?:(?:minus|negative)\s+|-)?"
SIGN_BEFORE = re.compile(r"(?:\b(?:minus|negative)\s+(?:£|\$|€)?\s?|(?<![\w-])-(?:£|\$|€)?|(?:£|\$|€)\s?-)$")
# A country given explicitly ("in country 'X'", "country: X", "from country Atlantis"): a value that
# names no country in the data is passed on, so the tool refuses it by name instead of it being
# dropped and the audience silently becoming everyone.
COUNTRY_VALUE = [
    re.compile(r"\bcountr(?:y|ies)\b\s*(?:(?:is|are|=|:|named|called|equals?)\s*)?"
               r"(?P<q>['\"])(?P<v>[^'\"]{1,100})(?P=q)", re.I),
    re.compile(r"\bcountr(?:y|ies)(?:\s*[=:]\s*|\s+(?:is\s+|named\s+|called\s+)?)"
               r"(?P<v>(?:~|\.{1,2})?[/\\][^\s,;?!'\"]*)", re.I),
    re.compile(r"\b[Cc]ountr(?:y|ies)(?::| is| =| named| called| of)? ?(?P<v>[A-Z][\w'.-]*(?: [A-Z][\w'.-]*)*)"),
]
# Where the request asks a file to be written: quoted names after "file"/"folder", "a file named X",
# paths, file names with an extension, URLs and e-mail addresses.
FILE_TARGETS = [
    re.compile(r"\b(?:file|folder|directory|dir|path|filename|file name)\s*(?:(?:named|called|as|to|at|=|:)\s*)?"
               r"(?P<q>['\"])(?P<v>[^'\"]{1,200})(?P=q)", re.I),
    re.compile(r"\b(?:file|folder|directory|filename)\s+(?:named|called)\s+(?P<v>[^\s'\",;?!]+)", re.I),
    re.compile(r"(?P<v>(?<![\w:/.~\\])(?:~|\.{1,2})?/[\w.~*-]+(?:/[\w.~*-]*)*|\b[a-z]:\\[^\s'\",;]*|"
               r"(?<![\w/.-])[\w-]+\.(?:csv|tsv|txt|xlsx?|json|parquet|sh|py|sql|zip)\b)", re.I),
    re.compile(r"(?P<v>\b(?:https?|ftp|sftp|s3|gs)://[^\s'\",;]+|[\w.+-]+@[\w-]+\.[\w.-]+)", re.I),
]


# ---------------------------------------------------------------- plan


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Plan":
        return cls(**{k: d[k] for k in ("intent", "kind", "calls", "text", "note", "dropped") if k in d})


class IntentModel:
    """Nearest-example intent scores from the embedded example utterances (cached on disk)."""

    def __init__(self, settings: Settings, path: Path = INTENTS_PATH, embedder: Any = None):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.labels: list[str] = []
        self.examples: list[str] = []
        for intent, examples in raw.items():
            for ex in examples:
                self.labels.append(intent)
                self.examples.append(str(ex))
        self.intents = list(raw)
        self.vocab = {w for ex in self.examples for w in re.findall(r"[a-z']+", ex.lower())}
        self._embedder = embedder
        self._settings = settings
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def embedder(self):
        if self._embedder is None:
            from predictor.search.embeddings import get_embedder

            self._embedder = get_embedder(self._settings.embedding_model, self._settings.data_dir / "embeddings")
        return self._embedder

    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            with self._lock:
                if self._vectors is None:
                    self._vectors = self._load_or_embed()
        return self._vectors

    def _load_or_embed(self) -> np.ndarray:
        emb = self.embedder
        digest = hashlib.sha1(("\n".join(self.examples) + emb.name + str(emb.dim)).encode()).hexdigest()[:16]
        cache = self._settings.data_dir / "embeddings" / f"intents-{digest}.npy"
        if cache.exists():
            try:
                return np.load(cache)
            except (OSError, ValueError):
                pass
        vectors = np.asarray(emb.embed(self.examples), dtype=np.float32)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{uuid.uuid4().hex}.tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(cache)
        except OSError as exc:  # a read-only data dir only costs the re-embedding next time
            log.warning("could not cache intent embeddings: %s", exc)
        return vectors

    def scores(self, text: str) -> dict[str, float]:
        vec = np.asarray(self.embedder.embed([text]), dtype=np.float32)[0]
        sims = self.vectors() @ vec
        out: dict[str, float] = {}
        for label, s in zip(self.labels, sims.tolist()):
            if s > out.get(label, -1.0):
                out[label] = s
        return out


class Planner:
    """Question -> Plan, and Plan + tool results -> answer text."""

    def __init__(self, settings: Settings, registry: Any = None, *, intent_model: IntentModel | None = None):
        self.settings = settings
        self.registry = registry
        self.intents = intent_model or IntentModel(settings)
        self._countries: list[str] | None = None
        self._as_of: datetime | None = None
        self._vocab: list[str] | None = None

    # ------------------------------------------------------------ data facts

    def countries(self) -> list[str]:
        if self._countries is None:
            names: list[str] = []
            try:
                frame = self.registry.deps.customers.frame
                names = sorted({str(c) for c in frame["country"].dropna().unique()})
            except Exception as exc:  # noqa: BLE001 - no table: country slots fall back to aliases only
                log.info("no country list: %s", exc)
            self._countries = names
        return self._countries

    def as_of(self) -> datetime | None:
        if self._as_of is None:
            try:
                frame = self.registry.deps.customers.frame
                column = "as_of" if "as_of" in frame else "last_order"
                self._as_of = pd_max(frame[column])
            except Exception:  # noqa: BLE001
                self._as_of = None
        return self._as_of

    def vocab(self) -> list[str]:
        if self._vocab is None:
            words = set(self.intents.vocab)
            for c in self.countries():
                words.update(c.lower().split())
            words.update(COUNTRY_ALIASES)
            words.update(w for s in RFM_SEGMENTS for w in s.lower().replace("'", "").split())
            words.update(t.lower() for t in TIERS)
            words.update(w for s in LIFECYCLE_STAGES for w in s.split())
            words.update("customers customer clients client csv export download campaign budget churn risk value "
                         "valuable predicted segment segments country countries lifecycle tier tiers lapsed lapsing "
                         "reactivate retention recommend offer spend revenue orders ordered bought purchased "
                         "platinum model accuracy quarter month months weeks days year highest lowest most show list "
                         "which where what when why who about should candles candle lanterns children toys "
                         "christmas decorations france germany belgium switzerland netherlands".split())
            words.update(m for m in MONTHS if len(m) > 3)
            self._vocab = sorted(w for w in words if len(w) >= 3)
        return self._vocab

    # ------------------------------------------------------------ normalise

    def normalise(self, text: str) -> str:
        from rapidfuzz import fuzz, process

        text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
        low = text.lower()
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

        low = re.sub(r"[a-z]+(?:'[a-z]+)?", fix, low)
        # "who by candles" is a frequent misspelling of "buy" that no word list catches.
        low = re.sub(r"\b(who|that|which|customers|clients|people)\s+by\b", r"\1 buy", low)
        return numbers_to_digits(low)

    # ------------------------------------------------------------ plan

    def plan(self, message: str, history: list[dict[str, Any]]) -> Plan:
        """`history`: earlier turns' plans and results, newest last ({"plan": Plan dict, "results": [...]})."""
        original, _ = _strip_injection(message.strip(), "")  # quotes kept: they delimit names and paths
        plan = self._plan(message, history, original)
        if plan.kind == "answer" and plan.calls:
            plan.dropped = _file_targets(original, exclude=self._unknown_countries(original))
        return plan

    def _plan(self, message: str, history: list[dict[str, Any]], original: str) -> Plan:
        raw = message.strip()
        quoted = " ".join(re.findall(r"(?<![a-z])['\"]([^'\"]{3,})['\"]", raw, flags=re.I))
        if quoted and not re.search(r"\b(mention\w*|profiles?|search\w*|contain\w*|say|says|saying|about|"
                                    r"buy\w*|bought|like|likes|love\w*|into)\b", raw.lower()):
            raw, quoted = re.sub(r"(?<![a-z])['\"]([^'\"]{3,})['\"]", r"\1", raw, flags=re.I), ""
        # Instructions hidden in the question (fake system tags, "ignore previous ...") are not obeyed;
        # the legitimate request around them is still answered.
        clean, injected = _strip_injection(raw, quoted)
        text = self.normalise(clean)
        previous = history[-1] if history else None

        refusal = self._refusal(raw, clean, text, injected)
        if refusal is not None:
            return refusal

        scores = self.intents.scores(text) if text.strip() else {}
        slots = self._slots(text, raw, quoted, original)
        intent, confidence = self._intent(text, scores, slots)
        if slots.get("problems") and (intent != "out_of_scope" or DOMAIN.search(text)):
            # An amount that cannot be used (negative, zero, absurd) is refused with the reason; planning
            # without it or with another amount would answer a question the user did not ask.
            return Plan(intent, "refuse", text=" ".join(slots["problems"]))
        follow = previous is not None and _is_follow_up(text, slots, previous)

        # Pronoun/ordinal references to the previous answer.
        ordinal = _ordinal_ref(text)
        if ordinal is not None and previous and not slots.get("customer_id"):
            cid = _customer_at(previous, ordinal)
            if cid:
                return Plan("get_customer", calls=[{"name": "get_customer", "args": {"customer_id": cid}}])
            return Plan("get_customer", "clarify", text=CLARIFY_NO_ROW)
        short_refinement = slots_filled(slots) and len(text.split()) <= 6
        if follow and previous and (intent != "out_of_scope" or short_refinement):
            merged = self._follow_up(text, slots, intent, confidence, previous)
            if merged is not None:
                return merged

        unresolved = _needs_previous(text) and not (slots.get("orders") or slots.get("customer_id"))
        if unresolved and not previous and (not slots_filled(slots) or _dangling_reference(text)) and not (
                confidence >= 0.55 and DOMAIN_STRONG.search(text) and not STRONG_REFERENCE.search(text)) and not (
                intent == "out_of_scope" and confidence >= 0.6):
            return Plan(intent, "clarify", text=CLARIFY_REFERENCE)
        if intent == "out_of_scope":
            if confidence < 0.42 and re.search(r"\b(show|list|give|find|get|ones|those|these|them|it|same)\b", text):
                return Plan(intent, "clarify", text=CLARIFY_VAGUE)
            return Plan("out_of_scope", "refuse", text=OUT_OF_SCOPE)
        if intent in ("help", "greeting"):
            if confidence >= 0.5:
                return Plan(intent, "answer", text=HELP if intent == "help" else GREETING)
            return Plan(intent, "clarify", text=CLARIFY_REFERENCE if _needs_previous(text) else CLARIFY_VAGUE)

        grounded_in_domain = DOMAIN.search(text) or slots_filled(slots) or slots.get("customer_id") or confidence >= 0.6
        if confidence < 0.32 or not grounded_in_domain:
            return Plan(intent, "clarify", text=CLARIFY_VAGUE)
        return self._build(intent, slots, text, injected)

    def _refusal(self, raw: str, clean: str, text: str, injected: bool) -> Plan | None:
        low = raw.lower()
        leak = ADDRESS.search(low) and EXFIL_VERB.search(low)
        if leak:
            # "Do X. Also send it to evil@..." still does X; a request that is only about sending is refused.
            rest = self.normalise(_drop_sentences(clean, lambda s: bool(ADDRESS.search(s.lower()))))
            if not rest.strip() or not DOMAIN.search(rest):
                return Plan("exfiltrate", "refuse", text=REFUSE_SEND)
        if WRITE.search(text) and not re.search(r"\b(export|csv|file|download|show|list|find)\b", text):
            return Plan("write", "refuse", text=REFUSE_WRITE)
        if PII.search(text):
            return Plan("pii", "refuse", text=REFUSE_PII)
        if FABRICATE.search(text) and re.search(r"revenue|numbers?|figures?|data|sales|value", text):
            return Plan("fabricate", "refuse", text=REFUSE_FABRICATE)
        if injected and not DOMAIN.search(text):
            return Plan("injection", "refuse", text=REFUSE_INJECTION)
        return None

    def _intent(self, text: str, scores: dict[str, float], slots: dict[str, Any]) -> tuple[str, float]:
        s = dict(scores)
        boost = {k: 0.0 for k in s}

        def add(intent: str, value: float) -> None:
            boost[intent] = boost.get(intent, 0.0) + value

        has_id = bool(_customer_id(text, self))
        if re.search(r"\b(export|csv|download|spreadsheet|excel|file|mailchimp|mailing list)\b", text):
            add("export_audience", 0.45)
        if re.search(r"\b(campaign|campaigns|promotion|promo|budget|discount|voucher|coupon|win ?back|winback|"
                     r"reactivat\w*|marketing spend|offers?)\b", text) and not has_id:
            add("recommend_campaigns", 0.3)
        value_filter = re.search(r"(?:spend|value|worth|predicted|expected)[^.?!]{0,30}?\b(over|above|more than|"
                                 r"at least|greater than|under|below|less than|at most|between)\b", text)
        if re.search(r"\b(£|\$|€)?\d+ (?:pounds|quid|euros|dollars)\b|£\d", text) and re.search(
                r"\b(spend|have|budget|cost|afford)\b", text) and not value_filter:
            add("recommend_campaigns", 0.15)
        if re.search(r"\b(model|accura\w*|trained|training|baseline|bg/?nbd|auc|gini|brier|metrics?|reliable|"
                     r"benchmark|warnings?)\b", text):
            add("model_report", 0.35)
        if re.search(r"\b(how many|how much|number of|count|breakdown|break down|distribution|distributed|split|"
                     r"overview|summar\w*|per|each|share|proportion|what percentage|percentage of|across|compare)\b", text):
            add("segment_summary", 0.25)
        if re.search(r"\b(by|per|across|each|over) (?:the )?(tier|tiers|country|countries|segment|segments|"
                     r"lifecycle|stage|stages|rfm)\b", text):
            add("segment_summary", 0.2)
        if has_id:
            add("get_customer", 0.45)
        if re.search(r"\b(score|rate|predict|estimate)\b[^.?!]{0,20}\b(this|a|the|my|that) (new )?(customer|client|"
                     r"prospect|buyer)\b(?!s)", text) and not has_id:
            add("score_customer", 0.45)
        if re.search(r"\b(score|new customer|prospect|new client|new buyer|someone (?:bought|ordered))\b", text) \
                and not has_id:
            add("score_customer", 0.3 if _orders(text) else 0.15)
            if _orders(text):
                add("score_customer", 0.3)
        if re.search(r"\b(who|customers?|clients?|people|shoppers?|buyers?)\b.{0,30}\b(buy|buys|buying|bought|"
                     r"purchas\w*|love|loves|like|likes|into|collect\w*|interested)\b|\bprofiles?\b|\bmentions?\b|"
                     r"\bbuyers of\b|\bsearch\b", text) and not _behaviour_phrase(text):
            add("search_profiles", 0.3)
        if re.search(r"\b(who|which|list|show|top|find|give|display|rank)\b", text) and (re.search(
                r"\b(customers?|clients?|ones|accounts?|shoppers?)\b", text) or any(k in slots for k in FILTER_KEYS)):
            add("find_customers", 0.12)
        if slots.get("sort_by") or slots.get("limit"):
            add("find_customers", 0.12)  # a ranking or a count of rows is a list
        if (slots.get("budget") or re.search(r"win ?-?back|winback|reactivat|retention|retain|cross-?sell|"
                                             r"up-?sell|upgrade", text)) and not has_id and not re.search(
                r"\b(export|csv|download|spreadsheet|excel|file)\b", text):
            add("recommend_campaigns", 0.2)  # a budget or a campaign goal is campaign talk
        orders = slots.get("orders")
        if orders and not has_id:
            add("score_customer", 0.5)
            s.pop("get_customer", None)
        elif not re.search(r"\b(score|prospect|new (customer|client|buyer)|someone)\b", text):
            s.pop("score_customer", None)  # scoring needs an order history or an explicit ask
        if re.search(r"\b(write|compose|draft)\b.{0,25}\b(poem|song|story|essay|joke|limerick|haiku|code|program|"
                     r"script)\b|\b(weather|recipe|translate|joke|share price|stock price|capital of|football|"
                     r"world cup|medicine|doctor|vat|tax return|flight|hotel|pain|headache|sick|symptoms?|"
                     r"diet|holiday|movie|film|song|lyrics|politics|election)\b", text):
            add("out_of_scope", 0.4)
        if re.search(r"\b(what can you|help me use|what do you do|capabilities)\b|^help\b", text):
            add("help", 0.3)
        if re.search(r"\b(the|that|this|a|my|his|her|their|one) (customer|client|account|buyer)\b(?!s)|'s account\b",
                     text) and not re.search(r"\bnew (customer|client|buyer)\b|\bscore\b", text):
            add("get_customer", 0.3)
        if DOMAIN_STRONG.search(text):
            add("out_of_scope", -0.3)
        elif s and max(s, key=s.get) == "out_of_scope":
            return "out_of_scope", s["out_of_scope"] + boost.get("out_of_scope", 0.0)
        for k, v in boost.items():
            s[k] = s.get(k, 0.0) + v
        if not s:
            return "out_of_scope", 0.0
        if not has_id and re.search(r"\b(customers|clients|accounts|buyers|shoppers|people)\b", text):
            s.pop("get_customer", None)  # one customer's detail needs an id; plural questions are about many
        best = max(s, key=s.get)
        return best, s[best]

    # ------------------------------------------------------------ slots

    def _slots(self, text: str, raw: str, quoted: str, original: str | None = None) -> dict[str, Any]:
        slots: dict[str, Any] = {}
        tiers = [TIER_WORDS[w] for w in re.findall(r"\b(platinum|gold|silver|bronze)\b", text)]
        upgrade_to = re.search(r"\b(?:up )?(?:to|into) (gold|platinum|silver)\b", text)
        if upgrade_to and len(tiers) > 1:
            tiers = [t for t in tiers if t.lower() != upgrade_to.group(1)]
        if tiers:
            slots["tiers"] = list(dict.fromkeys(tiers))
        elif re.search(r"\b(top|best|vip|most valuable|high[- ]value|valuable|key) (customers|clients|accounts)\b",
                       text) and not re.search(r"\btop \d+\b", text) and re.search(r"\brisk|churn|losing|lose\b", text):
            slots["tiers"] = ["Platinum", "Gold"]

        lifecycle = []
        if re.search(r"\bnew (customers?|clients?|buyers?|ones)\b|\bnewly\b|first[- ]time", text) and \
                not re.search(r"\bnew (customer|client|buyer)\b.{0,40}\b(ordered|bought|order of|spent|score)\b", text):
            lifecycle.append("new")
        if re.search(r"\bactive\b", text) and not re.search(r"\binactive\b", text):
            lifecycle.append("active")
        if re.search(r"\blapsing\b", text):
            lifecycle.append("lapsing")
        if re.search(r"\b(lapsed|inactive|churned|dormant)\b", text):
            lifecycle.append("lapsed")
        if re.search(r"\bat[- ]risk (stage|lifecycle)|(stage|lifecycle) (is )?at[- ]risk|in the at[- ]risk", text):
            lifecycle.append("at risk")
        if lifecycle:
            slots["lifecycle"] = list(dict.fromkeys(lifecycle))

        segments = []
        for pattern, name in SEGMENT_PATTERNS:
            if re.search(pattern, text):
                if name == "Loyal" and re.search(r"loyalty|loyal (customers?|clients?) (?:happy|program)", text):
                    continue
                segments.append(name)
        if segments:
            slots["segments"] = list(dict.fromkeys(segments))

        countries = self._countries_in(text, raw) + self._unknown_countries(original or raw)
        if countries:
            slots["countries"] = list(dict.fromkeys(countries))

        # churn thresholds
        m = re.search(r"(?:churn|risk|leav\w*)[^.?!]{0,40}?\b(over|above|more than|greater than|at least|>=?|"
                      r"exceeding|higher than|under|below|less than|lower than|at most|<=?)\s*(\d+(?:\.\d+)?)\s*(%|percent)?",
                      text)
        if m:
            value = float(m.group(2))
            value = value / 100 if (m.group(3) or value > 1) else value
            if 0 <= value <= 1:
                key = "min_churn_risk" if m.group(1) in ("over", "above", "more than", "greater than", "at least",
                                                         ">", ">=", "exceeding", "higher than") else "max_churn_risk"
                slots[key] = value
        elif re.search(r"\b(low|little|no real) (churn )?risk\b|unlikely to (churn|leave)", text):
            slots["max_churn_risk"] = 0.3
        elif CHURN_PHRASE.search(re.sub(r"\bat[- ]risk\b", "", text)) and "at risk" not in slots.get(
                "lifecycle", []) and not re.search(r"value at risk|revenue at risk|money at risk|at stake|at risk segment", text):
            # "likely to churn", "drifting away": churn risk of 50% or more. A bare "at risk" sets no
            # threshold: calibrated churn rarely passes 0.5 on real data, and ranking by value at risk
            # already puts the likeliest, most valuable churners first.
            slots["min_churn_risk"] = 0.5

        # money: value bands and budget (signed, with exponents; see AMOUNT)
        money = SIGN + r"(?:£|\$|€)?\s?-?" + AMOUNT + r"\s?(?:pounds|quid|gbp|euros?|dollars)?"
        band = re.search(r"between " + money + r" and " + money, text)
        value_ctx = r"(?:spend|value|worth|predicted|expected)"
        problems: list[str] = []
        if band and re.search(value_ctx, text):
            slots["min_value"], slots["max_value"] = _amount(text, band, 1), _amount(text, band, 2)
        else:
            m = re.search(value_ctx + r"[^.?!]{0,30}?\b(over|above|more than|at least|greater than|under|below|"
                          r"less than|at most)\s*" + money, text)
            if m and not re.search(r"churn|risk", text[max(0, m.start() - 5):m.end()]):
                key = "min_value" if m.group(1) in ("over", "above", "more than", "at least", "greater than") else "max_value"
                slots[key] = _amount(text, m, 2)
        for key in ("min_value", "max_value"):
            value = slots.get(key)
            if value is not None and not (math.isfinite(value) and value >= 0):
                problems.append("I can't filter on that predicted value: "
                                + ("it is negative, and predicted values are never below zero."
                                   if value < 0 else "it is not a finite amount."))
                slots.pop(key)
        budget = (re.search(r"budget (?:of |is |=|:)?\s*" + SIGN + r"(?:£|\$|€)?\s?-?" + AMOUNT, text)
                  or re.search(r"(?:£|\$|€)\s?-?" + AMOUNT + r"\s*(?:of )?(?:marketing |promo )?budget", text)
                  or re.search(r"\b" + AMOUNT + r"\s?(?:pounds|quid|gbp|euros?|dollars)\b", text)
                  or re.search(r"(?:with|have|spend|for|of|got|use)\s(?:only |just |about )?" + SIGN
                               + r"(?:£|\$|€)\s?-?" + AMOUNT, text)
                  or re.search(r"(?:£|\$|€)\s?-?" + AMOUNT, text))
        if budget and not ("min_value" in slots or "max_value" in slots):
            value = _amount(text, budget, 1)
            problem = self._budget_problem(value, budget.group(1), raw)
            if problem:
                problems.append(problem)
            else:
                slots["budget"] = value
        if problems:
            slots["problems"] = problems

        # recency
        unit_days = {"day": 1, "days": 1, "week": 7, "weeks": 7, "month": 30, "months": 30, "year": 365, "years": 365,
                     "quarter": 90, "quarters": 90}
        negative = re.search(r"\b(haven'?t|have not|hasn'?t|has not|not|no|didn'?t|without|stopped|silent|quiet)\b"
                             r"[^.?!]{0,40}\b(in|for|since|over)\b[^.?!]{0,12}?(?:the )?(?:last |past )?"
                             r"(\d+)?\s?(days?|weeks?|months?|years?|quarters?)\b", text)
        positive = re.search(r"\b(ordered|bought|purchased|active|shopped|order|ordering|buying|placed)\b[^.?!]{0,30}?"
                             r"\b(in|within|during|over) (?:the )?(?:last|past|previous) (\d+)?\s?(days?|weeks?|months?|years?|quarters?)\b",
                             text)
        if negative:
            n = int(negative.group(3) or 1)
            slots["min_recency_days"] = float(n * unit_days[negative.group(4)])
        elif positive:
            n = int(positive.group(3) or 1)
            slots["max_recency_days"] = float(n * unit_days[positive.group(4)])
        since = re.search(r"\bsince (\d{4}-\d{2}-\d{2}|\d{1,2} [a-z]+ \d{4}|[a-z]+ \d{4})", text)
        if since and self.as_of() is not None and "min_recency_days" not in slots and "max_recency_days" not in slots:
            day = _parse_date(since.group(1))
            if day is not None:
                days = float(max(0, (self.as_of() - day).days))
                key = "min_recency_days" if re.search(r"\b(haven'?t|not|no|hasn'?t|didn'?t)\b", text) else "max_recency_days"
                slots[key] = days

        # ranking, grouping, limit
        explicit_sort = re.search(r"\b(?:sort|sorted|order|ordered|rank|ranked|ranking)\s+(?:them\s+)?by\s+"
                                  r"(?:the\s+)?([a-z ]{3,30})", text)
        for pattern, key in ([(p, k) for p, k in SORT_WORDS] if explicit_sort else []):
            if re.match(pattern, explicit_sort.group(1)):
                slots["sort_by"] = key
                break
        for pattern, key in SORTS if "sort_by" not in slots else ():
            if re.search(pattern, text):
                slots["sort_by"] = key
                break
        for pattern, key in GROUPS:
            if re.search(r"\b(by|per|across|each|for every|split|breakdown|overview|between|over|into|fall)\b[^.?!]{0,25}\b"
                         + pattern, text) or re.search(r"\b" + pattern + r"\w* (overview|breakdown|split|summary)", text):
                slots["group_by"] = key
                break
        lim = (re.search(r"\b(?:top|first|best|bottom|show|list|give me|display|find|get|the|next|biggest|largest|"
                         r"highest|worst|riskiest)\s(?:me\s)?(?:the\s)?"
                         r"(\d{1,4})\b(?!\s?(?:%|percent|days?|weeks?|months?|years?|pounds|quid))", text)
               or re.search(r"\b(\d{1,4})\s(?:\w+\s){0,2}(?:customers|clients|accounts|people|ones|shoppers|buyers|rows)\b",
                            text)
               or re.search(r"\bmake (?:it|that) (\d{1,4})\b", text))
        if lim and not re.search(r"£\s?" + lim.group(1) + r"\b", text):
            value = int(lim.group(1))
            if 1 <= value <= 500 and not _is_customer_id_token(lim.group(1), self):
                slots["limit"] = value

        for pattern, goal in GOALS:
            if re.search(pattern, text):
                slots["goal"] = goal
                break
        target = re.search(r"\b(?:up )?(?:to|into) (platinum|gold|silver)\b", text)
        if slots.get("goal") == "upgrade" and target and slots.get("tiers") == [TIER_WORDS[target.group(1)]]:
            # "who could be upgraded to platinum": the audience is the tier below the target
            slots["tiers"] = [TIERS[TIERS.index(TIER_WORDS[target.group(1)]) + 1]]

        cid = _customer_id(text, self)
        if cid:
            slots["customer_id"] = cid
        orders = _orders(text)
        if orders:
            slots["orders"] = orders
        slots["query"] = _search_query(text, quoted)
        return slots

    def _countries_in(self, text: str, raw: str) -> list[str]:
        from rapidfuzz import fuzz, process

        known = self.countries()
        lower = {c.lower(): c for c in known}
        found: list[str] = []
        for name, canonical in sorted({**{k: v for k, v in COUNTRY_ALIASES.items()}, **lower}.items(),
                                      key=lambda kv: -len(kv[0])):
            if known and canonical not in known:
                continue
            if re.search(r"(?<![\w.])" + re.escape(name) + r"(?![\w])", text):
                if name == "us":
                    continue
                found.append(canonical)
        if re.search(r"(?<![a-z])(US|U\.S\.)(?![a-z])", raw) and (not known or "USA" in known):
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

    def _unknown_countries(self, message: str) -> list[str]:
        """Countries the message names explicitly ("in country 'X'") that match no country of the data,
        an alias or (as a typo) one of them: passed on as they are, so the tool names them in its refusal."""
        from rapidfuzz import fuzz, process

        known = self.countries()
        if not known:
            return []
        lower = {c.lower() for c in known} | set(COUNTRY_ALIASES)
        words = set(self.vocab()) | COMMON  # "by country Instead": an unquoted word of ours is no country
        out: list[str] = []
        for i, pattern in enumerate(COUNTRY_VALUE):
            for m in pattern.finditer(message):
                value = m.group("v").strip().rstrip(".,;:!?")
                norm = value.lower()
                if not value or norm in lower or norm in ("us", "u.s.") or norm in out:
                    continue
                if i == len(COUNTRY_VALUE) - 1 and norm in words:
                    continue
                if process.extractOne(norm, list(lower), scorer=fuzz.ratio, score_cutoff=80):
                    continue  # a typo of a known country, which _countries_in repairs
                out.append(value[:100])
        return out

    def _budget_problem(self, value: float, token: str, raw: str) -> str | None:
        """Why a budget the message states cannot be used, in words (no figure the user did not write)."""
        from predictor.campaigns.planning import MAX_BUDGET

        cur = self.settings.currency_symbol
        written = re.search(r"(?<![\d.])" + re.escape(token) + r"(?![\d.])", raw, flags=re.I)
        shown = f"a budget of {'-' if value < 0 else ''}{cur}{token}" if written else "that budget"
        if math.isfinite(value) and 0 < value <= MAX_BUDGET:
            return None
        if value < 0:
            why = "it is negative, and a budget has to be a positive amount"
        elif value == 0:
            why = "a budget of zero pays for no contact at all"
        else:
            why = f"it is more than the largest budget I plan with, {in_words(MAX_BUDGET)}"
        return (f"I can't plan with {shown}: {why}. I have not changed it into another amount; give the "
                "budget as a positive amount (for example 'a budget of five thousand pounds'), or leave it "
                "out to plan without a limit.")

    # ------------------------------------------------------------ follow-ups

    def _follow_up(self, text: str, slots: dict, intent: str, confidence: float, previous: dict) -> Plan | None:
        prev = Plan.from_dict(previous["plan"])
        if prev.kind != "answer" or not prev.calls:
            return None
        prev_call = prev.calls[0]
        prev_args = dict(prev_call["args"])
        explicit = _explicit_intent(text)
        # "and what about 17850?" after a customer lookup
        if slots.get("customer_id") and explicit in (None, "get_customer"):
            return Plan("get_customer", calls=[{"name": "get_customer", "args": {"customer_id": slots["customer_id"]}}])
        target = explicit or prev.intent
        if target == "get_customer" and not slots.get("customer_id"):
            return None
        args = {k: v for k, v in prev_args.items() if k in FILTER_KEYS}
        new_filter = {k: slots[k] for k in FILTER_KEYS if k in slots}
        if re.search(r"\binstead\b|\bwhat about\b|\bhow about\b", text):
            args.update(new_filter)
        else:
            for k, v in new_filter.items():
                args[k] = v
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
        return Plan(target, calls=[{"name": target, "args": _args_for(target, args)}])

    # ------------------------------------------------------------ build

    def _build(self, intent: str, slots: dict, text: str, injected: bool) -> Plan:
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
        if intent == "model_report":
            return Plan(intent, calls=[{"name": "model_report", "args": {}}], note=note)
        if intent == "search_profiles" and not slots.get("query"):
            intent = "find_customers"
        args = {k: slots[k] for k in FILTER_KEYS if k in slots}
        for k in ("limit", "sort_by", "group_by", "goal", "budget", "query"):
            if k in slots and slots[k] is not None:
                args[k] = slots[k]
        if intent == "segment_summary" and args.get("group_by") and re.search(
                r"\b(share|proportion|percentage|what part|fraction|how many of)\b", text):
            # "what share of German customers is lapsed, by lifecycle": the grouping answers the share;
            # filtering on the same dimension would make it 100%.
            dim = {"tier": "tiers", "lifecycle": "lifecycle", "segment": "segments"}.get(args["group_by"])
            if dim and len(args.get(dim) or []) == 1:
                args.pop(dim)
        if intent == "find_customers" and not args:
            if not re.search(r"\b(customers?|clients?|accounts?|shoppers?|buyers?)\b", text):
                return Plan(intent, "clarify", text=CLARIFY_VAGUE)
        return Plan(intent, calls=[{"name": intent, "args": _args_for(intent, args)}], note=note)

    # ------------------------------------------------------------ answers

    def answer(self, plan: Plan, traces: list[dict[str, Any]]) -> tuple[str, str]:
        """(answer text, kind) from the tool results."""
        parts, kind = [], "answer"
        for trace in traces:
            if trace.get("error"):
                err = trace["error"]
                parts.append(f"I could not get that from {trace['name']}: {err.get('message')}"
                             + (f" {err.get('hint')}" if err.get("hint") else ""))
                if err.get("code") in ("not_built", "index_unavailable", "internal_error"):
                    kind = "error"
                continue
            result = trace["result"]
            if trace["name"] == "export_audience" and isinstance(result, dict):
                parts.append(_export_text(result, trace.get("arguments") or {}, self.settings))
                continue
            render = getattr(templates, trace["name"], None)
            parts.append(render(result, trace.get("arguments") or {}, self.settings) if render
                         else json.dumps(result)[:2000])
        if plan.dropped:
            parts.append(_dropped_text(plan.dropped, traces))
        if plan.note:
            parts.append(plan.note)
        return "\n\n".join(parts), kind


# ---------------------------------------------------------------- export answers


def _export_text(result: dict[str, Any], args: dict[str, Any], settings: Settings) -> str:
    """The export answer, naming the file relative to the data directory (never the server's absolute
    path) and saying when it expires."""
    shown = {**result, "path": result.get("file") or Path(str(result.get("path") or "")).name}
    text = templates.export_audience(shown, args, settings)
    expires = str(result.get("expires_at") or "")
    if expires:
        when = expires[:16].replace("T", " ")
        text += f" It is kept until about {when} UTC; older exports are deleted when a new one is written."
    return text


def _dropped_text(targets: list[str], traces: list[dict[str, Any]]) -> str:
    """What became of the paths and file names the request gave: never used, and said so."""
    shown = " or ".join(targets[:3]) + (" (and the others named)" if len(targets) > 3 else "")
    written = next((t["result"] for t in traces if t.get("name") == "export_audience" and t.get("result")), None)
    if written:
        return (f"I can't write to {shown}: exports are always written under the data directory's exports folder "
                f"with a name I choose, so this one is {written.get('file') or 'in that folder'}. Nothing was "
                "written anywhere else or sent anywhere.")
    return (f"I can't write to {shown}: exports are only ever written under the data directory's exports folder, "
            "with a name I choose. Nothing was written there or anywhere else for this request.")


# ---------------------------------------------------------------- helpers

COMMON = set("percent what which where when show give list with from that this them they those these have about much many "
             "more most only also just into over under than like love find tell need want please would could "
             "should there their your ours does doing done make made each every next last first year years".split())


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole words of the embedding model's WordPiece vocabulary: a ready English word list."""
    try:
        from predictor.search.embeddings import minilm_model_dir

        lines = (minilm_model_dir() / "vocab.txt").read_text(encoding="utf-8").split()
    except Exception:  # noqa: BLE001 - without it typo repair is only more eager
        return frozenset()
    return frozenset(w for w in lines if w.isalpha() and w.islower() and len(w) >= 4)


def pd_max(series) -> datetime | None:
    import pandas as pd

    value = pd.to_datetime(series, errors="coerce").max()
    return None if pd.isna(value) else value.to_pydatetime()


def slots_filled(slots: dict) -> bool:
    return any(k in slots for k in (*FILTER_KEYS, "limit", "sort_by", "group_by", "goal", "budget", "orders"))


def _strip_injection(raw: str, quoted: str) -> tuple[str, bool]:
    text = raw
    if quoted:
        for q in re.findall(r"['\"]([^'\"]{3,})['\"]", raw):
            text = text.replace(q, " ")  # quoted text is a search phrase, not an instruction
    text = re.sub(r"</?(user|system|assistant)>.*", " ", text, flags=re.I | re.S)
    injected = bool(INJECTION.search(text.lower()))
    if injected:
        text = _drop_sentences(text, lambda s: bool(INJECTION.search(s.lower())))
    if ADDRESS.search(text.lower()) and EXFIL_VERB.search(text.lower()):
        kept = _drop_sentences(text, lambda s: bool(ADDRESS.search(s.lower())))
        if kept.strip():
            injected = True
            text = kept
    return (text if text.strip() else ""), injected or raw != text and "<" in raw


WRITE_CONTEXT = re.compile(r"\b(export\w*|save\w*|write|writ\w+|put|store\w*|download\w*|csv|file\w*|folder|"
                           r"director\w*|spreadsheet|excel|dump|output|copy|move|path)\b", re.I)


def _file_targets(message: str, exclude: list[str] = ()) -> list[str]:
    """Paths, file names and addresses a request asks a file to be written to (see FILE_TARGETS); none
    can be honoured, so the answer names them. Only in a request about writing something."""
    if not WRITE_CONTEXT.search(message):
        return []
    skip = {e.strip().lower() for e in exclude}
    found: list[str] = []
    for pattern in FILE_TARGETS:
        for m in pattern.finditer(message):
            value = m.group("v").strip().rstrip(".,;:!?)")
            if value and value.lower() not in skip and not any(value in f for f in found):
                found.append(value[:200])
    return found


def _drop_sentences(text: str, bad) -> str:
    parts = re.split(r"(?<=[.!?;:])\s+|\s+(?=p\.?s\.?\b)|\bsystem override\b", text, flags=re.I)
    return " ".join(p for p in parts if p and not bad(p)).strip()


def _explicit_intent(text: str) -> str | None:
    if re.search(r"\b(export|csv|download|spreadsheet|excel|file)\b", text):
        return "export_audience"
    if re.search(r"\b(campaign|campaigns|promotion|promo|budget|reactivat\w*|win ?back|cost)\b", text):
        return "recommend_campaigns"
    if re.search(r"\b(how many|breakdown|break down|split|summar\w*|overview|distribution)\b", text) or re.search(
            r"\bby (tier|country|segment|lifecycle|stage)\b", text):
        return "segment_summary"
    if re.search(r"\b(show|list|who|which)\b", text) and re.search(r"\b(customers?|clients?|ones)\b", text):
        return "find_customers"
    return None


def _is_follow_up(text: str, slots: dict, previous: dict) -> bool:
    if REFERENCE.search(text):
        return True
    words = re.findall(r"[a-z']+", text)
    # Short fragments ("in France?", "gold only", "by country instead") refine the last question.
    return len(words) <= 5 and (slots_filled(slots) or bool(slots.get("customer_id")))


def _needs_previous(text: str) -> bool:
    return bool(re.search(r"\b(them|they|those|these|it|that one|the same|same like|as before|the usual|"
                          r"we discussed|like last time)\b", text))


def _dangling_reference(text: str) -> bool:
    """'which of them are in Germany?' points back; 'German customers ... split them' points inside."""
    m = STRONG_REFERENCE.search(text)
    return bool(m) and not re.search(r"\b(customers|clients|buyers|shoppers|people|accounts)\b", text[: m.start()])


def _ordinal_ref(text: str) -> int | None:
    m = re.search(r"\b(?:the )?(first|second|third|fourth|fifth|1st|2nd|3rd|4th|5th|last|top|bottom) "
                  r"(?:one|1|customer|client|guy|person|account|of them|on the list)\b", text)
    if m:
        return ORDINALS[m.group(1)]
    m = re.search(r"\bnumber (\d{1,2})\b", text)
    return int(m.group(1)) - 1 if m else None


def _customer_at(previous: dict, index: int) -> str | None:
    for result in previous.get("results") or []:
        if not isinstance(result, dict):
            continue
        rows = result.get("customers") or result.get("hits") or []
        if rows and -len(rows) <= index < len(rows):
            return str(rows[index].get("customer_id"))
    return None


def _is_customer_id_token(token: str, planner: Planner) -> bool:
    try:
        store = planner.registry.deps.customers
    except Exception:  # noqa: BLE001
        return False
    return len(token) >= 4 and store.position(token) is not None


def _customer_id(text: str, planner: Planner) -> str | None:
    m = re.search(r"\b(?:customer|client|cust|account|id|user|buyer|shopper)\s*(?:id|number|no\.?)?\s*[#:]?\s*"
                  r"([A-Za-z]?\d{3,12})\b", text) or re.search(r"#\s?(\d{3,12})\b", text)
    if m:
        return m.group(1).upper() if m.group(1)[0].isalpha() else m.group(1)
    for token in re.findall(r"(?<![£$€\d.,])\b(\d{4,8})\b(?!\s?(?:%|pounds|quid|days|weeks|months|years)|[.,]\d)", text):
        if _is_customer_id_token(token, planner):
            return token
    m = re.search(r"\babout (\d{5,8})\b", text)
    return m.group(1) if m else None


def _parse_date(text: str) -> datetime | None:
    text = text.strip().lower().rstrip(".,")
    try:
        return datetime.fromisoformat(text[:10])
    except ValueError:
        pass
    m = re.match(r"(\d{1,2})(?:st|nd|rd|th)? (?:of )?([a-z]+),? (\d{4})", text) or None
    if m and m.group(2)[:4].rstrip() in MONTHS or (m and m.group(2)[:3] in MONTHS):
        month = MONTHS.get(m.group(2)) or MONTHS.get(m.group(2)[:3])
        try:
            return datetime(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            return None
    m = re.match(r"([a-z]+) (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})", text)
    if m and (m.group(1) in MONTHS or m.group(1)[:3] in MONTHS):
        try:
            return datetime(int(m.group(3)), MONTHS.get(m.group(1)) or MONTHS[m.group(1)[:3]], int(m.group(2)))
        except ValueError:
            return None
    m = re.match(r"([a-z]+) (\d{4})", text)
    if m and (m.group(1) in MONTHS or m.group(1)[:3] in MONTHS):
        return datetime(int(m.group(2)), MONTHS.get(m.group(1)) or MONTHS[m.group(1)[:3]], 1)
    return None


DATE_TEXT = (r"(\d{4}-\d{2}-\d{2}|\d{1,2}(?:st|nd|rd|th)? (?:of )?[a-z]{3,9},? \d{4}|"
             r"(?:january|february|march|april|may|june|july|august|september|october|november|december|"
             r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec) \d{1,2}(?:st|nd|rd|th)?,? \d{4})")


def _orders(text: str) -> list[dict[str, Any]]:
    """Amount/date pairs written in the question ("£120 on 3 march 2011", "one order of £450 on 2011-11-20")."""
    out = []
    pattern = (r"(?:£|\$|€)\s?(\d+(?:\.\d+)?)[^.;£$€]{0,30}?\b(?:on|dated|at)?\s?" + DATE_TEXT
               + r"|" + DATE_TEXT + r"[^.;£$€]{0,20}?(?:£|\$|€)\s?(\d+(?:\.\d+)?)")
    for m in re.finditer(pattern, text):
        amount = m.group(1) or m.group(4)
        date = m.group(2) or m.group(3)
        day = _parse_date(date)
        if amount and day:
            out.append({"timestamp": day.date().isoformat(), "amount": float(amount)})
    return out


def _behaviour_phrase(text: str) -> bool:
    """'customers who haven't bought in six months' is a recency filter, not a product search."""
    if re.search(r"\blooks? like\b|\blike they\b|\blike to (churn|leave)\b", text) or CHURN_PHRASE.search(text):
        return True
    return bool(re.search(r"\b(bought|buy|ordered|purchased)\b\s*(anything|something|from us|again|in the|"
                          r"within|recently|lately|for|since|\d)", text)) or bool(
        re.search(r"\b(haven'?t|hasn'?t|not|didn'?t|never)\b[^.?!]{0,15}\b(bought|buy|ordered|purchased)\b", text))


STOP = set("find show me list give the a an of for to in on at who whom which that is are were was be customers "
           "customer clients client people shoppers buyers buyer those these ones search profiles profile whose "
           "mention mentions mentioning buy buys buying bought purchase purchases purchasing purchased love loves like "
           "likes into interested collect collects collecting are is our my we us and or please with many things "
           "stuff type sort kind lot lots usually often really all any some wholesale-type wholesale".split())


def _search_query(text: str, quoted: str) -> str | None:
    if quoted:
        return quoted[:500]
    m = re.search(r"\b(?:buy|buys|buying|bought|purchas\w*|love|loves|like|likes|into|collect\w*|interested in|"
                  r"mentions?|buyers of|shopping for|search(?: for)?)\b(.+)", text)
    if not m:
        return None
    rest = re.split(r"[,;?!]|\b(in|from) (?=[a-z]+\s*$)", m.group(1))[0]
    words = [w for w in re.findall(r"[a-z][a-z'-]*", rest) if w not in STOP]
    tail = [w for w in words if w not in COUNTRY_ALIASES and w not in ("france", "germany", "lapsing", "lapsed")]
    query = " ".join(tail).strip()
    return query or None


def _args_for(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Keep only the arguments this tool takes."""
    allowed = set(FILTER_KEYS)
    extra = {"find_customers": {"sort_by", "limit"}, "segment_summary": {"group_by"},
             "search_profiles": {"query", "limit"}, "recommend_campaigns": {"goal", "budget"},
             "export_audience": {"goal", "budget", "source", "sort_by", "max_rows", "campaign"}}.get(tool, set())
    out = {k: v for k, v in args.items() if k in allowed | extra and v is not None}
    if tool == "export_audience" and "limit" in args and "max_rows" not in out:
        out["max_rows"] = args["limit"]
    if tool == "search_profiles" and "query" not in out:
        out["query"] = "customers"
    if tool == "get_customer":
        return {"customer_id": args.get("customer_id")}
    return out


# ---------------------------------------------------------------- canned texts (no figures in them)

HELP = ("I answer questions about your customers from the scored data, with no LLM (offline mode). For example: "
        "'Who are my at-risk top customers?', 'Break down customers by tier', 'Tell me about customer <id>', "
        "'Find customers who buy tea sets', 'Plan a win-back campaign with a budget of two thousand pounds', "
        "'Export the lapsed customers to CSV', 'How accurate is the model?'.")
GREETING = "Hello! Ask me about your customers' value, churn risk, segments or campaigns."
OUT_OF_SCOPE = ("Sorry, that is outside what I can help with: I answer questions about your customers' value, "
                "churn risk, segments, campaigns and the model behind them.")
REFUSE_SEND = ("I can't send customer data to outside addresses, services or people. I can export an audience "
               "as a CSV file in the data directory, which you can download and share yourself.")
REFUSE_WRITE = ("I can't change or delete customer data: I only read the scored data and plan campaigns. "
                "Scores change when you rebuild from new transactions with `valuedesk build`.")
REFUSE_PII = ("I don't have (and won't provide) personal contact details such as addresses or phone numbers; "
              "I can list or export customer ids with their value, tier and segment.")
REFUSE_FABRICATE = "I can't make up figures: every number I give comes from the scored data and the model."
REFUSE_INJECTION = ("I can't do that: I follow only ValueDesk's own rules, and I don't reveal my instructions or "
                    "any keys. Ask me about your customers, segments, campaigns or the model.")
NOTE_INJECTION = ("(I ignored instructions in your message to send data elsewhere or change my rules: ValueDesk "
                  "only writes local files for you to download.)")
CLARIFY_VAGUE = ("Could you say a bit more about what you need? For example: which customers (a tier such as Gold, "
                 "a segment such as Champions, a country, lapsed or at-risk customers), and whether you want a list, "
                 "a breakdown, a campaign plan or a CSV export.")
CLARIFY_REFERENCE = ("Which customers or result do you mean? I have nothing earlier in this conversation to refer to; "
                     "please name the customers (e.g. Gold customers in Germany) or the customer id.")
CLARIFY_CUSTOMER = ("Which customer? Please give me their customer id (you can find ids by asking for a list, "
                    "e.g. 'top customers in France'). I can't look customers up by name.")
CLARIFY_NO_ROW = ("The previous answer has no customer at that place in its list (it may have been empty). "
                  "Which customer do you mean? Give me the customer id, or ask for a list first.")
CLARIFY_ORDERS = ("To score a new customer I need their order history: the amount and the full date (day, month "
                  "and year) of each order, for example 'eighty pounds on the third of March and forty pounds on "
                  "the tenth of April' with the year added. Figures and dates may be written in words or digits.")


# ---------------------------------------------------------------- the LangChain wrapper


class PlannerChatModel(BaseChatModel):
    """The planner as a chat model: emits tool calls on the first step of a turn and the templated
    answer once the tool results are in."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    planner: Any
    model_name: str = "valuedesk-planner"

    @property
    def _llm_type(self) -> str:
        return "valuedesk-planner"

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):  # noqa: ARG002 - the plan decides the tools
        return self

    def _respond(self, messages: list[BaseMessage]) -> AIMessage:
        from agent.graph import current_turn

        human, turn = current_turn(messages)
        message = human.content if human is not None and isinstance(human.content, str) else ""
        planned = next((m for m in turn if isinstance(m, AIMessage) and m.additional_kwargs.get("valuedesk_plan")),
                       None)
        if planned is None:
            plan = self.planner.plan(message, _history(messages[: messages.index(human)] if human else []))
            if plan.calls:
                calls = [{"name": c["name"], "args": c["args"], "id": f"call_{uuid.uuid4().hex[:12]}",
                          "type": "tool_call"} for c in plan.calls]
                return AIMessage("", tool_calls=calls, additional_kwargs={"valuedesk_plan": plan.to_dict()})
            return AIMessage(plan.text, additional_kwargs={"valuedesk_plan": plan.to_dict(), "valuedesk_kind": plan.kind,
                                                           "valuedesk_results": []})
        plan = Plan.from_dict(planned.additional_kwargs["valuedesk_plan"])
        if not plan.calls:  # asked again within the turn (e.g. by the grounding check): same reply
            return AIMessage(plan.text, additional_kwargs=dict(planned.additional_kwargs))
        traces = [m.artifact for m in turn if isinstance(m, ToolMessage) and isinstance(m.artifact, dict)]
        text, kind = self.planner.answer(plan, traces)
        results = [t.get("result") for t in traces if t.get("result") is not None]
        return AIMessage(text, additional_kwargs={"valuedesk_plan": plan.to_dict(), "valuedesk_kind": kind,
                                                  "valuedesk_results": _slim(results)})

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._respond(messages))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs) -> Iterator[ChatGenerationChunk]:
        message = self._respond(messages)
        if message.tool_calls:
            chunks = [{"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                      for i, c in enumerate(message.tool_calls)]
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=chunks,
                                                             additional_kwargs=message.additional_kwargs))
            return
        pieces = re.findall(r"\S+\s*|\s+", message.content) or [""]
        for i, piece in enumerate(pieces):
            chunk = AIMessageChunk(content=piece, additional_kwargs=message.additional_kwargs if i == 0 else {})
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=ChatGenerationChunk(message=chunk))
            yield ChatGenerationChunk(message=chunk)


def _slim(results: list[Any]) -> list[Any]:
    """What a follow-up needs from this turn's results (customer ids in order), not the whole payload."""
    out = []
    for r in results:
        if isinstance(r, dict):
            rows = r.get("customers") or r.get("hits")
            if rows:
                out.append({"customers": [{"customer_id": row.get("customer_id")} for row in rows[:50]]})
    return out


def _history(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        if isinstance(m, AIMessage) and not m.tool_calls and m.additional_kwargs.get("valuedesk_plan"):
            out.append({"plan": m.additional_kwargs["valuedesk_plan"],
                        "results": m.additional_kwargs.get("valuedesk_results") or []})
    return out


# ---------------------------------------------------------------- process-wide planner

_planners: dict[tuple[int, int], Planner] = {}
_planners_lock = threading.Lock()


def get_planner(settings: Settings, registry: Any = None) -> Planner:
    if registry is None:
        from tools.registry import get_registry

        registry = get_registry(settings)
    key = (id(settings), id(registry))
    with _planners_lock:
        planner = _planners.get(key)
        if planner is None:
            planner = _planners[key] = Planner(settings, registry)
        return planner

