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

from agent.planner.vocabulary import (BOUND_WORDS, CHURN_PHRASE, DIMENSION_SUMMARY, DOMAIN_STRONG, FILTER_KEYS,
                                      GROUP_SUBJECT, LIST_REQUEST, MONEY_UNIT, SEE_WHICH, STOP, SUMMARY_WORDS)
from predictor.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)

INTENTS_PATH = REPO_ROOT / "prompts" / "intents.yaml"
# The tools a marketer loads a list into (an email tool, a CRM, Klaviyo): a list for one of them is a file.
EXPORT_DESTINATION = (r"e-?mail (?:tool|platform|software|system|app|service provider)|crm|klaviyo|mailchimp|hubspot|"
                      r"salesforce|dotdigital|braze|marketo|brevo|mailing list|ads? (?:platform|manager|account)|"
                      r"(?:up)?load\w* (?:\w+ ){0,2}(?:in)?to|import\w* (?:it |them |this |that )?(?:in)?to|"
                      r"for (?:an? |the |our )?(?:\w+ )?import")
EXPORT_WORDS = re.compile(r"\b(export|csv|download(?:able)?|spreadsheet|excel|xlsx|google sheets?|file|" + EXPORT_DESTINATION + r")\b")
# A file declined ("no file needed", "don't export it", "not as a spreadsheet") is no export request.
NEGATED_EXPORT = re.compile(r"\b(?:no|not|without|don'?t|do not|never|no need (?:for|to)|needn'?t)\s+(?:need\s+)?"
                            r"(?:as |in |into |to )?(?:a |an |the |any )?(?:export\w*|csv|files?|downloads?|"
                            r"spreadsheets?|excel)\b(?:\s+(?:needed|required|necessary))?")
CAMPAIGN_WORDS = re.compile(r"\b(campaign|campaigns|promotion|promo|budget|discount|voucher|coupon|offers?|mailer|"
                            r"mailshot|outreach|win ?back|winback|reactivat\w*|re-?engag\w*|recuperat\w*|recover\w*|"
                            r"regain\w*|retain|retention|"
                            r"cross-?sell|up-?sell|upgrade)\b")
# A file as the thing asked for ("give me a CSV with ...", "the lapsed ones in a spreadsheet", "an excel of"):
# the list is its content, the export the request.
FILE_DELIVERABLE = re.compile(r"\b(?:a|an|as|in|into|to) (?:csv|spreadsheet|excel|xlsx|file|download)\b"
                              r"(?! (?:needed|required))|"
                              r"\b(?:csv|spreadsheet|excel|xlsx|file|download) "
                              r"(?:with|of|containing|listing|holding)\b|"
                              # "a downloadable list", "a list I can download", "something we can export"
                              r"\bdownloadable\b|\b(?:i|we) can (?:download|export|save|import)\b|"
                              r"\b(?:google|excel) sheets?\b|\b(?:as|in|into) a sheet\b")
# Whether the scores can be trusted, how they compare, how fresh they are: a question about the model,
# whatever it is for ("can I trust the churn scores before I spend money on a campaign?").
MODEL_QUALITY = re.compile(r"\b(trust\w*|rel(?:y|iable|iability)|accura\w*|how good|any good|good enough|"
                           r"better than(?!\W*[£$€]?\d)|beats?|confiden\w*|how (?:right|wrong)|errors?|up to date|"
                           r"how (?:fresh|old|recent)|(?:last|when)\b[^.?!]{0,30}\b(?:refreshed|updated|trained|run|built))\b")
MODEL_SUBJECT = re.compile(r"\b(scores?|scoring|predictions?|predicted|predict\w*|forecasts?|estimates?|model|"
                           r"this thing|this tool|the tool|the system|valuedesk)\b")
# Whether the predictions still hold now, or have gone stale: the model's health, not its accuracy when built.
# With a word for the model ("have the scores gone stale?"); never about customers ("customers who drifted away").
MODEL_HEALTH = re.compile(
    r"\b(stale|out of date|outdated|drift\w*|degrad\w*|decay\w*|shift\w*|holding up|hold(?:s|ing)? up|"
    r"still (?:good|valid|accurate|reliable|hold\w*|work\w*|ok|okay|fine|trust\w*|rely\w*|use\w*|count on|"
    r"depend\w*|believ\w*|right|correct|useful|current|relevant|any good|up to date)|"
    r"(?:gone|going|getting|got) (?:stale|off|worse|bad|wrong)|"
    r"(?:how (?:well|good|accurate)|perform\w*|doing)\b[^.?!]{0,40}\b(?:right now|currently|these days|lately|"
    r"recently|this (?:month|week|quarter|season)|today|at the moment|nowadays)|"
    r"(?:rebuild|refresh|update|retire|replace)\w* (?:the |our |my |your )?(?:model|scores|predictions|forecasts)|"
    r"needs? (?:a |to be )?(?:refresh\w*|updat\w*|retrain\w*|re-?fit\w*|rebuil\w*))\b")
# Words that name the model's health on their own: retraining, changes since the model was trained.
MODEL_HEALTH_ONLY = re.compile(r"\b(retrain\w*|re-train\w*|model health|health of the model|"
                               r"(?:changed|shifted|moved|different|happened) since (?:the model |it |we )?(?:was |were )?"
                               r"(?:trained|training|built|last (?:trained|built)))\b")
# Words only a question about the model uses ("is the churn risk calibrated?", "against a simple baseline").
MODEL_ONLY_WORDS = re.compile(r"\b(calibrat\w*|baselines?|back-?test\w*|overfit\w*|brier|bg/?nbd)\b")
# How a follow-up asks for a campaign when it names only its goal ("what would win them back?", "plan
# something to keep them").
CAMPAIGN_ASK = re.compile(r"\b(plan|draft|design|put together|set up|what would|what should|what can|"
                          r"how (?:do|can|should|could|would) (?:i|we)|how to|something to|ideas?|suggest\w*|"
                          r"recommend\w*|"
                          r"run|do to|help (?:me|us)|nudge|encourage|persuade|convince|motivate|incentivi[sz]e)\b")
# A goal given as the order itself ("bring back the customers who left, we have 1200", "win back lapsed UK
# clients with 900", "get the lapsed ones back"): a campaign for it.
GOAL_IMPERATIVE = re.compile(r"^(?:pls |please |let'?s |lets |now |ok |so )?(?:bring|win|get|reactivate|re-?activate|"
                             r"re-?engage|recover|regain|recuperate|wake|retain|keep|upgrade|grow)\b(?! me\b)")
# Words that ask to see customers: with one, a goal word ("which customers could we upgrade") is a list.
SEE_WORDS = re.compile(r"^\W*(?:who|which|what)\b|\b(find|list|show|see|display|export|how many)\b")
# A question that is only a noun phrase for an audience: words, then a word for customers, then at most
# a place or a condition ("lapsed silver customers in the UK", "gold clients from Spain at risk").
AUDIENCE_PHRASE = re.compile(r"^(?:[a-z'-]+ ){0,5}(?:customers|clients|shoppers|buyers|accounts)(?: (?:in|from|who|that|whose|with|"
                             r"at|with|outside|we|i|i'm|we're|we've|i've)\b[^?]*)?"
                             r"(?:\W+(?:please|pls|thanks|thank you|only|now))?\W*$")
ONE_CUSTOMER = re.compile(r"\b(customer|client|account|buyer|shopper|him|her|he|she|person)\b(?!s)|'s account\b|"
                          r"\bmrs?\.? |\bms\.? ")
# An export is made only when one is asked for: a list request ("list the champions") is never a file.
EXPORT_REQUEST = re.compile(r"\b(export\w*|csv|download\w*|spreadsheet|excel|xlsx|google sheets?|file|save\w*|"
                            + EXPORT_DESTINATION + r")\b")


def model_question(text: str) -> bool:
    """A question about how far the scores can be trusted, or how fresh they are."""
    return bool(MODEL_QUALITY.search(text) and MODEL_SUBJECT.search(text) or MODEL_ONLY_WORDS.search(text))


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
        words = {label: set() for label in self.intents}
        for label, ex in zip(self.labels, self.examples):
            words[label].update(re.findall(r"[a-z']+", ex.lower()))
        self.vocab = set().union(*words.values()) if words else set()
        # The product words of the search examples ("lanterns", "mugs"): words of the data, not the planner's.
        others = set().union(*(w for label, w in words.items() if label != "search_profiles"))
        self.product_words = words.get("search_profiles", set()) - others - STOP
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
    text = NEGATED_EXPORT.sub(" ", text)
    s = dict(scores)
    boost = {k: 0.0 for k in s}
    # Added in a fixed order, so equal sums (and ties between intents) come out the same every time.
    for intent, value in (*_tool_word_boosts(text, has_id), *_request_shape_boosts(text, slots, has_id),
                          *_conversation_boosts(text)):
        boost[intent] = boost.get(intent, 0.0) + value
    if not EXPORT_REQUEST.search(text):
        s.pop("export_audience", None)
    if slots.get("orders") and not has_id:
        s.pop("get_customer", None)
    elif not re.search(r"\b(score|prospect|new (customer|client|buyer)|someone)\b", text):
        s.pop("score_customer", None)  # scoring needs an order history or an explicit ask
    if DOMAIN_STRONG.search(text) or any(k in slots for k in FILTER_KEYS) or model_question(text):
        # the domain's words, or a value of the data ("the lost ones"), put a question in scope
        boost["out_of_scope"] = boost.get("out_of_scope", 0.0) - 0.3
    elif s and max(s, key=s.get) == "out_of_scope":
        return "out_of_scope", s["out_of_scope"] + boost.get("out_of_scope", 0.0)
    for k, v in boost.items():
        s[k] = s.get(k, 0.0) + v
    if "export_audience" in s and EXPORT_WORDS.search(text) and s["export_audience"] < s.get("recommend_campaigns", 0):
        # An export asked for outright is the deliverable: campaign words then say whose audience it holds
        # ("export the reactivation list, max spend 300 quid" exports that plan's customers).
        s["export_audience"] = s["recommend_campaigns"] + 0.01
    if not s:
        return "out_of_scope", 0.0
    if not has_id and (re.search(r"\b(customers|clients|accounts|buyers|shoppers|people)\b", text)
                       or not ONE_CUSTOMER.search(text)):
        # One customer's detail needs an id or a word for one customer; plural questions are about many.
        s.pop("get_customer", None)
    best = max(s, key=s.get)
    return best, s[best]


def _tool_word_boosts(text: str, has_id: bool) -> Iterator[Boost]:
    """Words that name what a tool does (export, campaign, model, breakdown, one customer, scoring)."""
    if EXPORT_WORDS.search(text):
        yield "export_audience", 0.45
    if FILE_DELIVERABLE.search(text):
        yield "export_audience", 0.3  # "give me a CSV with the 50 ...": the file is what is asked for
    if re.search(r"\b(campaign|campaigns|promotion|promo|budget|discount|voucher|coupon|win ?back|winback|"
                 r"reactivat\w*|re-?engag\w*|marketing spend|offers?|mailer|mailshot|outreach)\b", text) and not has_id:
        yield "recommend_campaigns", 0.3
    value_filter = re.search(r"(?:spend|value|worth|predicted|expected)[^.?!]{0,30}?\b(" + BOUND_WORDS + r"|between)\b",
                             text)
    if re.search(r"\b(£|\$|€)?\d+ " + MONEY_UNIT + r"\b|£\d", text) and re.search(
            r"\b(spend|have|budget|cost|afford)\b", text) and not value_filter:
        yield "recommend_campaigns", 0.15
    if re.search(r"\b(model|accura\w*|trained|training|baseline|bg/?nbd|auc|gini|brier|metrics?|reliable|"
                 r"benchmark|warnings?)\b", text):
        yield "model_report", 0.35
    if model_question(text) and not has_id:
        yield "model_report", 0.5
    if not has_id and (MODEL_HEALTH_ONLY.search(text) or MODEL_HEALTH.search(text) and (
            MODEL_SUBJECT.search(text) or MODEL_ONLY_WORDS.search(text))):
        yield "model_health", 1.0  # over model_report's own words ("still reliable" is about today, not the build)
    if re.search(r"\b((?<!by )how many|(?<!by )how much|are there (?:many|lots|a lot)|(?:have|has) (?:we|you) got (?:many|much|"
                 r"lots|a lot)|(?:do|does) (?:we|you) have (?:many|much|lots|a lot)|number of|counts?|breakdown|"
                 r"break down|distribution|distributed|split|"
                 r"overview|summar\w*|per|each|share|proportion|what percentage|percentage of|mix|composition|make-?up|"
                 r"across(?! (?:the )?(?:whole|entire|all|every)\b)|compar\w*|versus|vs|side by side)\b", text):
        yield "segment_summary", 0.25
    if re.search(r"\b(by|per|across|each|over) (?:the )?(tier|tiers|country|countries|segment|segments|"
                 r"lifecycle|stage|stages|rfm)\b", text) or re.search(
            r"\b(?:tier|countr|segment|lifecycle|stage|rfm)\w* (?:" + DIMENSION_SUMMARY + r")\b", text):
        yield "segment_summary", 0.2  # "by tier", "the segment numbers", "lifecycle mix"
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
    # the data's product words after a buying verb are a search also with a churn qualifier ("at-risk buyers who
    # mostly buy candles"): the qualifier is a filter of the search (search_profiles takes at_risk)
    products = bool(slots.get("products")) and bool(slots.get("query")) and not behaviour_phrase(text, churn=False)
    if re.search(r"\b(who|customers?|clients?|people|shoppers?|buyers?)\b.{0,30}\b(buy|buys|buying|bought|"
                 r"purchas\w*|love|loves|like|likes|into|collect\w*|interested)\b|\bprofiles?\b|\bmentions?\b|"
                 r"\bbuyers of\b|\bsearch\b", text) and not behaviour_phrase(text):
        yield "search_profiles", 0.3
    if products:
        yield "search_profiles", 0.35  # the data's product words: who buys what is a profile search
    if GROUP_SUBJECT.search(text):
        yield "segment_summary", 0.35  # "which countries hold the most value": a summary grouped by country
    if LIST_REQUEST.search(text) and not (SUMMARY_WORDS.search(text) or products or FILE_DELIVERABLE.search(text)):
        yield "find_customers", 0.2  # "list the champions": customers, not a summary of them
    elif (AUDIENCE_PHRASE.match(text) or bare_fragment(text)) and any(k in slots for k in FILTER_KEYS) and not (
            SUMMARY_WORDS.search(text) or CAMPAIGN_WORDS.search(text) or products):
        # a bare audience ("lapsed silver customers in the UK", "champions in France") is a list of it
        yield "find_customers", 0.15
    if SEE_WHICH.search(text) and not SUMMARY_WORDS.search(text) and not products:
        yield "find_customers", 0.2
    if re.search(r"\b(who|whom|which|list|show|top|find|give|display|rank)\b", text) and (re.search(
            r"\b(customers?|clients?|ones|accounts?|shoppers?)\b", text) or any(k in slots for k in FILTER_KEYS)):
        yield "find_customers", 0.12
    if slots.get("sort_by") or slots.get("limit"):
        yield "find_customers", 0.12  # a ranking or a count of rows is a list
    if (slots.get("budget") or re.search(r"win ?-?back|winback|reactivat|recuperat|recover|regain|retention|retain|"
                                         r"cross-?sell|"
                                         r"up-?sell|upgrade", text)) and not has_id and not EXPORT_WORDS.search(text):
        yield "recommend_campaigns", 0.2  # a budget or a campaign goal is campaign talk
    if orders and not has_id:
        yield "score_customer", 0.5
    if slots.get("goal") and (CAMPAIGN_ASK.search(text) or GOAL_IMPERATIVE.search(text)) and not SEE_WORDS.search(
            text) and not has_id:
        yield "recommend_campaigns", 0.3  # "help me nudge customers close to the next tier": a plan for a goal


def _conversation_boosts(text: str) -> Iterator[Boost]:
    """Off-topic asks, asks for help, and "the customer" (one, not many)."""
    if re.search(r"\b(write|compose|draft)\b.{0,25}\b(poem|song|story|essay|joke|limerick|haiku|code|program|"
                 r"script)\b|\b(weather|recipe|translate|joke|share price|stock price|capital of|football|"
                 r"world cup|medicine|doctor|vat|tax return|flight|hotel|pain|headache|sick|symptoms?|"
                 r"diet|holiday|movie|film|song|lyrics|politics|election)\b", text):
        yield "out_of_scope", 0.4
    if re.search(r"\b(write|compose)\b.{0,25}\b(poem|song|story|essay|joke|limerick|haiku|lyrics)\b", text):
        yield "out_of_scope", 0.4  # creative writing is off-topic whatever it is about ("a poem about customers")
    if re.search(r"\b(what can you|help me use|what do you do|capabilities)\b|^help\b", text):
        yield "help", 0.3
    if re.search(r"\b(the|that|this|a|my|his|her|their|one) (customer|client|account|buyer)\b(?!s)|'s account\b",
                 text) and not re.search(r"\bnew (customer|client|buyer)\b|\bscore\b", text):
        yield "get_customer", 0.3


def bare_fragment(text: str) -> bool:
    """A few words with no verb of any tool ("champions in France", "gold, lapsing")."""
    words = re.findall(r"[a-z']+", text)
    return 0 < len(words) <= 5 and not re.search(
        r"\b(is|are|was|were|do|does|did|have|has|show|list|give|find|get|tell|plan|export|count|break|rank|"
        r"make|what|how|why|when|who|which)\b", text)


def explicit_intent(text: str, slots: dict[str, Any] | None = None) -> str | None:
    """The tool a follow-up names outright ("put them in a csv", "how many", "list them", "what would win
    them back?"), if any."""
    slots = slots or {}
    text = NEGATED_EXPORT.sub(" ", text)
    if EXPORT_WORDS.search(text):
        return "export_audience"
    if CAMPAIGN_WORDS.search(text) or re.search(r"\bcost\b", text) or (
            slots.get("goal") and CAMPAIGN_ASK.search(text)):
        return "recommend_campaigns"
    if re.search(r"\b(how many|breakdown|break down|split|summar\w*|overview|distribution)\b", text) or re.search(
            r"\bby (tier|country|segment|lifecycle|stage)\b", text) or GROUP_SUBJECT.search(text):
        return "segment_summary"
    if re.search(r"\b(show|list|who|which)\b", text) and re.search(r"\b(customers?|clients?|ones)\b", text) or (
            LIST_REQUEST.search(text) and re.search(r"\b(them|those|these|they)\b", text)) or (
            (slots.get("limit") or slots.get("sort_by")) and not SUMMARY_WORDS.search(text)):
        return "find_customers"  # a list asked for, or a ranking or a number of rows ("top 5 by churn")
    return None


def behaviour_phrase(text: str, churn: bool = True) -> bool:
    """'customers who haven't bought in six months' is a recency filter, not a product search; with `churn`,
    so is any churn wording ("customers likely to stop buying")."""
    if re.search(r"\blooks? like\b|\blike they\b|\blike to (churn|leave)\b|\bany ?more\b|\bno longer\b", text) or \
            churn and CHURN_PHRASE.search(text):
        return True
    return bool(re.search(r"\b(bought|buy|ordered|purchased)\b\s*(anything|something|from us|again|in the|"
                          r"within|recently|lately|for|since|\d)", text)) or bool(
        re.search(r"\b(haven'?t|hasn'?t|not|didn'?t|never)\b[^.?!]{0,15}\b(bought|buy|ordered|purchased)\b", text))
