"""The intent stage: which tool a question is for, from the nearest example utterances
(prompts/intents.yaml, embedded once and cached) combined with keyword rules."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agent.planner.vocabulary import CHURN_PHRASE, DOMAIN_STRONG, FILTER_KEYS
from predictor.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)

INTENTS_PATH = REPO_ROOT / "prompts" / "intents.yaml"
EXPORT_WORDS = re.compile(r"\b(export|csv|download|spreadsheet|excel|file)\b")


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

            self._embedder = get_embedder(self._settings.embedding_model, self._settings.data_dir / "embeddings",
                                          threads=self._settings.threads)
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


Boost = tuple[str, float]


def choose_intent(text: str, scores: dict[str, float], slots: dict[str, Any]) -> tuple[str, float]:
    """(intent, confidence): the example scores plus the keyword boosts, less the tools the question
    cannot be for (scoring without orders, one customer's detail without an id)."""
    has_id = bool(slots.get("customer_id"))
    s = dict(scores)
    boost = {k: 0.0 for k in s}
    # Added in a fixed order, so equal sums (and ties between intents) come out the same every time.
    for intent, value in (*_tool_word_boosts(text, has_id), *_request_shape_boosts(text, slots, has_id),
                          *_conversation_boosts(text)):
        boost[intent] = boost.get(intent, 0.0) + value
    if slots.get("orders") and not has_id:
        s.pop("get_customer", None)
    elif not re.search(r"\b(score|prospect|new (customer|client|buyer)|someone)\b", text):
        s.pop("score_customer", None)  # scoring needs an order history or an explicit ask
    if DOMAIN_STRONG.search(text):
        boost["out_of_scope"] = boost.get("out_of_scope", 0.0) - 0.3
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


def _tool_word_boosts(text: str, has_id: bool) -> Iterator[Boost]:
    """Words that name what a tool does (export, campaign, model, breakdown, one customer, scoring)."""
    if EXPORT_WORDS.search(text) or re.search(r"\b(mailchimp|mailing list)\b", text):
        yield "export_audience", 0.45
    if re.search(r"\b(campaign|campaigns|promotion|promo|budget|discount|voucher|coupon|win ?back|winback|"
                 r"reactivat\w*|marketing spend|offers?)\b", text) and not has_id:
        yield "recommend_campaigns", 0.3
    value_filter = re.search(r"(?:spend|value|worth|predicted|expected)[^.?!]{0,30}?\b(over|above|more than|"
                             r"at least|greater than|under|below|less than|at most|between)\b", text)
    if re.search(r"\b(£|\$|€)?\d+ (?:pounds|quid|euros|dollars)\b|£\d", text) and re.search(
            r"\b(spend|have|budget|cost|afford)\b", text) and not value_filter:
        yield "recommend_campaigns", 0.15
    if re.search(r"\b(model|accura\w*|trained|training|baseline|bg/?nbd|auc|gini|brier|metrics?|reliable|"
                 r"benchmark|warnings?)\b", text):
        yield "model_report", 0.35
    if re.search(r"\b(how many|how much|number of|count|breakdown|break down|distribution|distributed|split|"
                 r"overview|summar\w*|per|each|share|proportion|what percentage|percentage of|across|compare)\b", text):
        yield "segment_summary", 0.25
    if re.search(r"\b(by|per|across|each|over) (?:the )?(tier|tiers|country|countries|segment|segments|"
                 r"lifecycle|stage|stages|rfm)\b", text):
        yield "segment_summary", 0.2
    if has_id:
        yield "get_customer", 0.45
    if re.search(r"\b(score|rate|predict|estimate)\b[^.?!]{0,20}\b(this|a|the|my|that) (new )?(customer|client|"
                 r"prospect|buyer)\b(?!s)", text) and not has_id:
        yield "score_customer", 0.45


def _request_shape_boosts(text: str, slots: dict[str, Any], has_id: bool) -> Iterator[Boost]:
    """What the question's slots and phrasing make it: a scoring, a search, a list or a campaign."""
    orders = bool(slots.get("orders"))
    if re.search(r"\b(score|new customer|prospect|new client|new buyer|someone (?:bought|ordered))\b", text) \
            and not has_id:
        yield "score_customer", 0.3 if orders else 0.15
        if orders:
            yield "score_customer", 0.3
    if re.search(r"\b(who|customers?|clients?|people|shoppers?|buyers?)\b.{0,30}\b(buy|buys|buying|bought|"
                 r"purchas\w*|love|loves|like|likes|into|collect\w*|interested)\b|\bprofiles?\b|\bmentions?\b|"
                 r"\bbuyers of\b|\bsearch\b", text) and not behaviour_phrase(text):
        yield "search_profiles", 0.3
    if re.search(r"\b(who|which|list|show|top|find|give|display|rank)\b", text) and (re.search(
            r"\b(customers?|clients?|ones|accounts?|shoppers?)\b", text) or any(k in slots for k in FILTER_KEYS)):
        yield "find_customers", 0.12
    if slots.get("sort_by") or slots.get("limit"):
        yield "find_customers", 0.12  # a ranking or a count of rows is a list
    if (slots.get("budget") or re.search(r"win ?-?back|winback|reactivat|retention|retain|cross-?sell|"
                                         r"up-?sell|upgrade", text)) and not has_id and not EXPORT_WORDS.search(text):
        yield "recommend_campaigns", 0.2  # a budget or a campaign goal is campaign talk
    if orders and not has_id:
        yield "score_customer", 0.5


def _conversation_boosts(text: str) -> Iterator[Boost]:
    """Off-topic asks, asks for help, and "the customer" (one, not many)."""
    if re.search(r"\b(write|compose|draft)\b.{0,25}\b(poem|song|story|essay|joke|limerick|haiku|code|program|"
                 r"script)\b|\b(weather|recipe|translate|joke|share price|stock price|capital of|football|"
                 r"world cup|medicine|doctor|vat|tax return|flight|hotel|pain|headache|sick|symptoms?|"
                 r"diet|holiday|movie|film|song|lyrics|politics|election)\b", text):
        yield "out_of_scope", 0.4
    if re.search(r"\b(what can you|help me use|what do you do|capabilities)\b|^help\b", text):
        yield "help", 0.3
    if re.search(r"\b(the|that|this|a|my|his|her|their|one) (customer|client|account|buyer)\b(?!s)|'s account\b",
                 text) and not re.search(r"\bnew (customer|client|buyer)\b|\bscore\b", text):
        yield "get_customer", 0.3


def explicit_intent(text: str) -> str | None:
    """The tool a follow-up names outright ("put them in a csv", "how many"), if any."""
    if EXPORT_WORDS.search(text):
        return "export_audience"
    if re.search(r"\b(campaign|campaigns|promotion|promo|budget|reactivat\w*|win ?back|cost)\b", text):
        return "recommend_campaigns"
    if re.search(r"\b(how many|breakdown|break down|split|summar\w*|overview|distribution)\b", text) or re.search(
            r"\bby (tier|country|segment|lifecycle|stage)\b", text):
        return "segment_summary"
    if re.search(r"\b(show|list|who|which)\b", text) and re.search(r"\b(customers?|clients?|ones)\b", text):
        return "find_customers"
    return None


def behaviour_phrase(text: str) -> bool:
    """'customers who haven't bought in six months' is a recency filter, not a product search."""
    if re.search(r"\blooks? like\b|\blike they\b|\blike to (churn|leave)\b", text) or CHURN_PHRASE.search(text):
        return True
    return bool(re.search(r"\b(bought|buy|ordered|purchased)\b\s*(anything|something|from us|again|in the|"
                          r"within|recently|lately|for|since|\d)", text)) or bool(
        re.search(r"\b(haven'?t|hasn'?t|not|didn'?t|never)\b[^.?!]{0,15}\b(bought|buy|ordered|purchased)\b", text))
