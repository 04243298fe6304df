"""The slots stage: the arguments a question gives, read from its normalised text. Audience filters
(tiers, lifecycle stages, RFM segments, countries, churn thresholds, value bands, recency windows),
ranking, grouping and row limits, a campaign goal and budget, a customer id, an order history to
score and a product search phrase. Money is read in `amounts`, dates in `dates`, countries in
`countries`, tier, stage, segment names and product words in `entities` (against the data's values);
the data facts come from a `PlannerFacts`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from agent.planner.amounts import money_slots
from agent.planner.countries import countries_in, unknown_countries
from agent.planner.dates import orders_in, recency_slots
from agent.planner.entities import EntityResolver
from agent.planner.facts import PlannerFacts
from agent.planner.vocabulary import (AT_RISK_PHRASE, AT_RISK_SEGMENT, BOUND_WORDS, CHURN_PHRASE, COUNTRY_ALIASES,
                                      DIMENSION_SUMMARY, MONEY_LOSS,
                                      GOALS, GROUP_OF_SUBJECT, GROUP_SUBJECT, GROUPS, MONEY_UNIT, SEGMENT_PATTERNS,
                                      SORT_WORDS, SORTS, STOP, TOP_TIERS, is_lower_bound)

# "Top customers" as a group (README: the Platinum and Gold tiers), unless a ranking follows ("top customers
# by lifetime spend" is a sort) or a count precedes ("top 20 customers" is a limit).
# "The big spenders" as a group are the top customers too (ranked by lifetime revenue, see SORTS).
TOP_GROUP = re.compile(r"\btop[- ]tiers?\b(?! is\b)|\b(?:top|key|best) (?:customers|clients|accounts)\b|"
                       r"\b(?:big|heavy|high) spenders\b")
RANKED_BY = re.compile(r"\b(?:top|best|bottom|first|highest|lowest|biggest|largest|most)\b[^.?!]{0,40}?"
                       r"\b(?:by|as per|according to)\s+"
                       r"(?:the\s+|their\s+|how\s+(?:much\s+)?)?([a-z ]{3,30})")
# "value at risk", "how much value is at risk", "revenue we have at risk": money, not the customers' flag
# (no word for customers and no preposition in between: "value of customers at risk" is about customers).
MONEY_AT_RISK = re.compile(r"\b(?:value|revenue|money|spend|sales|income|profit)\b(?: (?!(?:for|from|of|among|with|"
                           r"in|to|on|by|per|across|customers?|clients?|buyers?|shoppers?|accounts?|people|ones)\b)"
                           r"[\w']+){0,3} at[- ]risk\b(?! of (?:churn|leav|lapsing|losing|going))")
LIKELY_TO_CHURN = re.compile(r"\b(?:likely|about|going) to (?:churn|leave|stop|quit)|might (?:churn|leave)|"
                             r"could (?:churn|leave)|risk of (?:churn|churning|leaving)")
CHURN_THRESHOLD = re.compile(
    r"(?:churn|risk|leav\w*)[^.?!]{0,40}?\b(" + BOUND_WORDS + r")\s*(\d+(?:\.\d+)?)\s*(%|percent)?")
# A churn range ("between 30% and 50%", "from 0.2 to 0.4", "30-50%"): both bounds.
CHURN_RANGE = re.compile(r"(?:churn|risk|leav\w*)[^.?!]{0,40}?(?:\b(?:between|from|in the range(?: of)?|ranging from)\s*"
                         r"(\d+(?:\.\d+)?)\s*(%|percent)?\s*(?:and|to|-|\u2013)|(?<![\d.])(\d+(?:\.\d+)?)\s*(%)?\s*"
                         r"[-\u2013])\s*(\d+(?:\.\d+)?)\s*(%|percent)?")
# The words for the rows a count asks for ("a dozen names", "15 person", "25 entries").
ROW_NOUN = (r"(?:customers|clients|accounts|people|persons?|ones|shoppers|buyers|rows|names|entries|records|results|"
            r"contacts|lines|profiles|ids)")
ROW_LIMIT = [
    re.compile(r"\b(?:top|first|best|bottom|show|list|give me|display|find|get|the|next|biggest|largest|"
               r"highest|worst|riskiest)\s(?:me\s)?(?:the\s)?"
               r"(\d{1,4})\b(?!\s?(?:%|percent|days?|weeks?|months?|years?|" + MONEY_UNIT + "))"),
    re.compile(r"\b(\d{1,4})\s(?:[\w-]+\s){0,2}" + ROW_NOUN + r"\b"),
    # a count that is enough ("a dozen is plenty", "10 will do")
    re.compile(r"(?<![£$€.,\d])\b(\d{1,4}) (?:(?:is|are|will|would|should) (?:be )?(?:enough|plenty|fine|sufficient|"
               r"ok|okay|good)|(?:will|would|should) do)\b"),
    re.compile(r"\b(\d{1,4}) of (?:them|those|these)\b"),  # "rank them by churn, 15 of them"
    re.compile(r"\bmake (?:it|that) (\d{1,4})\b"),
    # a cap on the rows, after or before the number ("50 max.", "20 at most", "max 30", "no more than 25 please")
    re.compile(r"(?<!£)(?<![£$€.,\d])\b(\d{1,4})\s?(?:max|maximum|at most|at the most|tops|or fewer|or less)\b"),
    re.compile(r"(?:^|[,.;:!?()\u2013-]\s*|\b(?:and|but|with|please)\s)"
               r"(?:max(?:imum)?\.?|at most|up to|no more than|not more than)\s"
               r"(\d{1,4})\b(?![.,]\d)(?!\s?(?:%|percent|days?|weeks?|months?|years?|" + MONEY_UNIT + "))"),
    # a count in a trailing phrase of its own ("the most valuable, only ten please", "- just 15", "and only 5",
    # "10 only", "limit it to 30", "cap the list at 50")
    re.compile(r"(?:^|[,.;:!?()\u2013-]\s*|\b(?:and|but|please)\s)(?:only|just|(?:and )?no more than)\s(\d{1,4})\b"
               r"(?![.,]\d)(?!\s?(?:%|percent|days?|weeks?|months?|years?|orders?|times|" + MONEY_UNIT + "))"),
    re.compile(r"(?:^|[,;:\u2013-]\s*)(\d{1,4}) (?:only|please|is fine|will be fine)\W*$"),
    re.compile(r"\b(?:limit|cap|restrict|trim|cut|keep)\w* (?:it |that |them |the (?:list|results|rows) |this )?(?:to|at) "
               r"(?:the (?:top |first )?)?(\d{1,4})\b(?![.,]\d)(?!\s?(?:%|percent|days?|weeks?|months?|years?|"
               + MONEY_UNIT + "))"),
]


# Customers who have stopped buying, in everyday words: the lapsed stage ("gone quiet", "stopped ordering").
LAPSED_PHRASE = re.compile(r"\b(?:inactive|churned|dormant)\b|"
                           r"\b(?:gone|went|fallen|fell) (?:quiet|silent|cold|dark)\b"
                           r"(?!(?: on us)? (?:lately|recently|of late|these (?:days|weeks)))|"
                           # customers we have lost ("we've lost entirely", "lost for good"), not the RFM "Lost"
                           r"\b(?:we|i)(?:'ve| have| had|'d)? (?:already |since |just )?lost\b|"
                           r"\blost (?:for good|entirely|completely|forever|altogether)\b|"
                           r"\bstopped (?:buying|ordering|shopping|purchasing)\b|"
                           r"\bno longer (?:buy|order|shop|purchas)\w*|"
                           r"\b(?:not|don'?t|doesn'?t|didn'?t|never)\s(?:\w+ ){0,3}any ?more\b|"
                           r"\b(?:who|that) (?:have |has |already )?left(?: us)?\b"
                           r"(?! (?:a|an|the|some|reviews?|feedback|comments?|ratings?)\b)")
# Values the question leaves out ("leave out the lapsing ones", "excluding Bronze", "but not the lost"):
# the names inside these spans are not part of the audience.
EXCLUSION = re.compile(r"\b(?:leave out|leaving out|leave off|exclud\w*|except(?: for)?|apart from|other than|without|"
                       r"but not|not including|minus|ignor\w*|skip)\s+(?:the\s+|any\s+|all\s+)?"
                       r"((?:(?!(?:in|from|with|who|that|which|by|and then)\b)[a-z'-]+\s?){1,4})")
# A value negated ("who are not Bronze", "not in the Gold tier", "aren't lapsed", "don't want gold or platinum",
# "non-Platinum") is left out too; "not at risk" is the at_risk flag (churn_slots), and a span stops at "but"
# ("not lapsed but lapsing").
NEGATED_VALUE = re.compile(r"\b(?:(?:are|is|were|was)(?:n'?t| not)|(?:do not|don'?t|does not|doesn'?t) (?:include|want|"
                           r"need|count)|not)(?: in| part of| among| from)?(?: the| any| our)? (?!at[- ]risk)"
                           r"((?:(?!(?:in|from|with|who|that|which|by|but|only|just|at)\b)[a-z'-]+\s?){1,3})|"
                           r"\bnon-?([a-z]+)")

# The verbs and phrases after which a product phrase follows ("who buy ...", "fans of ...", "stock up on ...").
INTEREST = re.compile(r"\b(?:buy|buys|buying|bought|purchas\w*|love|loves|like|likes|into|collect\w*|interested in|"
                      r"mentions?|buyers of|shopping for|shops? for|search(?: for)?|fans? of|keen on|"
                      r"stock(?:s|ing)? up on|go(?:es)? for|order(?:s|ing)? (?:lots of|a lot of)|"
                      r"(?:big|mad|crazy|hooked) on|fond of|into buying)\b(.+)")


class SlotReader:
    """Reads the slots of a question against the data facts and the planner's vocabulary."""

    def __init__(self, facts: PlannerFacts, vocab: Callable[[], list[str]], entities: EntityResolver):
        self.facts = facts
        self._vocab = vocab
        self.entities = entities

    def read(self, text: str, raw: str, quoted: str, original: str | None = None,
             after_campaign: bool = False) -> dict[str, Any]:
        """`text`: the normalised question; `raw`: as written (case kept); `quoted`: its search phrase;
        `original`: with its quotes, which delimit explicit country names; `after_campaign`: the previous
        answer was a campaign plan (a bare amount is then its budget)."""
        facts = self.facts
        slots: dict[str, Any] = {}
        entities = self.entities
        slots.update(tier_slots(text, entities.names(asked_part(text), "tier") or entities.names(text, "tier")))
        slots.update(lifecycle_slots(text, entities.names(text, "lifecycle")))
        slots.update(segment_slots(text, entities.names(text, "segment")))
        slots.update(self.excluded(text, slots))
        countries = countries_in(text, raw, facts) + self.unknown_countries(original or raw)
        if countries:
            slots["countries"] = list(dict.fromkeys(countries))
        slots.update(churn_slots(text, slots))
        if slots.get("at_risk") is True and slots.get("lifecycle") == ["lapsed"] and "lapsed" not in text:
            # "gone quiet and might not come back": still ours, so at risk; the everyday words for stopping
            # would make it the lapsed stage, which no at-risk customer is in
            slots.pop("lifecycle")
        slots.update(money_slots(text, raw, facts, campaign=after_campaign))
        slots.update(recency_slots(text, facts))
        slots.update(ranking_slots(text))
        limit = row_limit(text, facts)
        if limit is not None and limit != slots.get("budget"):  # "1000 to spend ... customers" is money
            slots["limit"] = limit
        slots.update(goal_slots(text, slots, facts.tiers))
        cid = customer_id_in(text, facts)
        if cid:
            slots["customer_id"] = cid
        orders = orders_in(text)
        if orders:
            slots["orders"] = orders
        slots["query"] = self.without_names(search_query(text, quoted, entities.product_mentions(text)), quoted)
        # The data's product words in the search phrase: what makes a question a product search.
        slots["products"] = entities.product_mentions(slots["query"] or "")
        return slots

    def excluded(self, text: str, slots: dict[str, Any]) -> dict[str, list[str]]:
        """The tier, stage and segment lists without the values the question leaves out ("in the at risk
        stage; leave out the lapsing ones"); a list left with only excluded values becomes the others of
        the data ("everyone except the lapsed" is every other stage)."""
        spans = " ".join([m.group(1) for m in EXCLUSION.finditer(text)]
                         + [m.group(1) or m.group(2) for m in NEGATED_VALUE.finditer(text)])
        if not spans:
            return {}
        out: dict[str, list[str]] = {}
        for kind, key, every in (("tier", "tiers", self.facts.tiers), ("lifecycle", "lifecycle",
                                 self.facts.lifecycle_stages), ("segment", "segments", self.facts.segments)):
            left_out = set(self.entities.names(spans, kind)) | {v for v in slots.get(key, []) if v.lower() in spans}
            if not left_out or key not in slots:
                continue
            kept = [v for v in slots[key] if v not in left_out]
            out[key] = kept or [v for v in every if v not in left_out]
        return out

    def without_names(self, query: str | None, quoted: str) -> str | None:
        """A search phrase that is only the data's tier, stage, segment or country names ("look like for Silver
        customers") searches nothing: those are filters. With a product word ("gold paper") or quoted, it stays."""
        if not query or quoted:
            return query
        facts = self.facts
        names = {w for n in (*facts.tiers, *facts.lifecycle_stages, *facts.segments, *facts.countries())
                 for w in n.lower().split()}
        return None if set(query.split()) <= names else query

    def unknown_countries(self, message: str) -> list[str]:
        """Countries named explicitly that the data does not have (see countries.unknown_countries)."""
        return unknown_countries(message, self.facts, self._vocab())


# A long message whose last sentence asks the question ("So we just came out of planning. Last quarter we
# spent it all on Gold ... I need the Silver customers in the UK who are at risk"): the tiers are the asked
# sentence's, the others are context.
LONG_CONTEXT_WORDS = 25


def asked_part(text: str) -> str:
    """The sentence a long message asks in (its last); "" for a short one or a single sentence."""
    if len(text.split()) < LONG_CONTEXT_WORDS:
        return ""
    sentences = [p for p in re.split(r"(?<=[.!?;])\s+", text.strip()) if re.search(r"[a-z]", p)]
    return sentences[-1] if len(sentences) > 1 else ""


def tier_slots(text: str, named: list[str]) -> dict[str, list[str]]:
    """The tiers the question names (`named`: the data's tier names found in it, best first); "our top
    customers at risk" means the two best tiers."""
    found = list(named)
    targets = {m.group(1) for m in re.finditer(r"\b(?:up )?(?:to|into) (?:the )?(\w+)\b", text)}
    if len(found) > 1 and targets & {t.lower() for t in found}:
        found = [t for t in found if t.lower() not in targets]  # "push silver customers up to gold": Silver
    if found:
        return {"tiers": list(dict.fromkeys(found))}
    if re.search(r"\bvips?\b", text):
        return {"tiers": list(TOP_TIERS)}  # VIPs are the top tiers
    if TOP_GROUP.search(text) and not re.search(r"\b(?:top|best) \d+\b|\b\d+ (?:top|best)\b", text) and \
            not RANKED_BY.search(text):
        return {"tiers": list(TOP_TIERS)}  # "top-tier customers", "our top customers": the two best tiers
    if re.search(r"\b(top|best|vip|most valuable|high[- ]value|valuable|key) (customers|clients|accounts)\b",
                 text) and not re.search(r"\btop \d+\b", text) and re.search(r"\brisk|churn|losing|lose\b", text):
        return {"tiers": list(TOP_TIERS)}  # "our top customers at risk": the two best tiers
    return {}


def lifecycle_slots(text: str, named: list[str]) -> dict[str, list[str]]:
    """The stages named in the data's words (`named`: "lapsing", "lapsed"), their synonyms, and the
    stages whose names are everyday words, read with their cue ("new customers", "the at risk stage")."""
    stages = list(named)
    if re.search(r"\bnew (customers?|clients?|buyers?|ones)\b|\bnewly\b|first[- ]time|\bnewest\b|recently acquired|"
                 r"\b(?:latest|most recent) (?:customers|clients|buyers|shoppers|sign-?ups)\b|new joiners|"
                 r"\bjust (?:started|begun|began|starting) (?:to )?(?:buy|order|shop|purchas)\w*|"
                 r"\b(?:started|began) (?:buying|ordering|shopping) (?:recently|lately|with us)\b", text) and \
            not re.search(r"\bnew (customer|client|buyer)\b.{0,40}\b(ordered|bought|order of|spent|score)\b", text):
        stages.append("new")
    if re.search(r"\bactive\b", text) and not re.search(r"\binactive\b", text):
        stages.append("active")
    if LAPSED_PHRASE.search(text):
        stages.append("lapsed")
    if re.search(r"\bat[- ]risk (stage|lifecycle)|(stage|lifecycle) (is )?at[- ]risk|"
                 r"in the at[- ]risk(?! (?:rfm )?segment)", text):
        stages.append("at risk")
    return {"lifecycle": list(dict.fromkeys(stages))} if stages else {}


def segment_slots(text: str, named: list[str]) -> dict[str, list[str]]:
    """The segments named in the data's words (`named`), and those whose names are everyday words,
    read with their cue (SEGMENT_PATTERNS: "loyal customers", "the at risk segment")."""
    segments = list(named)
    for pattern, name in SEGMENT_PATTERNS:
        if re.search(pattern, text):
            if name == "Loyal" and re.search(r"loyalty|loyal (customers?|clients?) (?:happy|program)", text):
                continue
            segments.append(name)
    return {"segments": list(dict.fromkeys(segments))} if segments else {}


def churn_slots(text: str, slots: dict[str, Any]) -> dict[str, Any]:
    """A churn-risk threshold: a stated one, "low risk" (at most 30%), or "likely to churn" (at least 50%);
    or the product's one "at risk" (the at_risk filter) for "at risk", "slipping away" and the like."""
    band = CHURN_RANGE.search(text)
    if band:
        percent = bool(band.group(2) or band.group(4) or band.group(6))
        ends = (float(band.group(1) or band.group(3)), float(band.group(5)))
        low, high = (v / (100 if percent or v > 1 else 1) for v in ends)
        if 0 <= low < high <= 1:
            return {"min_churn_risk": low, "max_churn_risk": high}
    m = CHURN_THRESHOLD.search(text)
    if m:
        value = float(m.group(2))
        value = value / 100 if (m.group(3) or value > 1) else value
        if not 0 <= value <= 1:
            return {}
        return {"min_churn_risk" if is_lower_bound(m.group(1)) else "max_churn_risk": value}
    if re.search(r"\b(low|little|no real) (churn )?risk\b|unlikely to (churn|leave)|\bnot at[- ]risk\b", text):
        return {"max_churn_risk": 0.3} if not re.search(r"\bnot at[- ]risk\b", text) else {"at_risk": False}
    named = re.sub(MONEY_AT_RISK.pattern + "|" + MONEY_LOSS + "|" + AT_RISK_SEGMENT + r"|at[- ]risk (segment|stage|"
                   r"lifecycle)|(segment|rfm|stage|lifecycle) (is )?at[- ]risk|in the at[- ]risk (stage|segment)",
                   "", text)
    if AT_RISK_PHRASE.search(named) and "at risk" not in slots.get("lifecycle", []):
        return {"at_risk": True}
    if CHURN_PHRASE.search(named) and "at risk" not in slots.get("lifecycle", []) and (LIKELY_TO_CHURN.search(
            named) or not re.search(r"\b(keep|stop|prevent|reduce|avoid)\b[^.?!]{0,40}\b(churn\w*|leaving)\b", text)):
        # "likely to churn": churn risk of 50% or more, also inside a goal ("stop customers who are likely
        # to churn from leaving"). "Keep my VIPs from churning" is a goal only, not a threshold
        # (calibrated churn rarely passes 0.5 for top customers).
        return {"min_churn_risk": 0.5}
    return {}


def ranking_slots(text: str) -> dict[str, str]:
    """sort_by ("sort by churn" first, then ranking phrases) and group_by ("by country")."""
    slots: dict[str, str] = {}
    # "sort by churn", "sorted by how likely they churn", "top ten customers by value"
    explicit = re.search(r"\b(?:sort|sorted|order|ordered|rank|ranked|ranking|customers|clients|buyers|shoppers|"
                         r"accounts)\s+(?:them\s+)?(?:by|as per|according to|based on|in order of)\s+"
                         r"(?:the\s+|their\s+|how\s+(?:much\s+)?)?([a-z ]{3,30})", text) or RANKED_BY.search(text)
    if explicit:
        key = next((k for pattern, k in SORT_WORDS if re.search(r"\b(?:" + pattern + ")", explicit.group(1))), None)
        if key:
            slots["sort_by"] = key
    if "sort_by" not in slots:
        key = next((k for pattern, k in SORTS if re.search(pattern, text)), None)
        if key:
            slots["sort_by"] = key
    subject = GROUP_SUBJECT.search(text)
    if subject:
        slots["group_by"] = next(v for k, v in GROUP_OF_SUBJECT.items() if subject.group(1).startswith(k))
        return slots
    # "the About to Sleep segment by tier": the dimension right after "by"/"per" first, then looser wordings
    direct = next((key for pattern, key in GROUPS
                   if re.search(r"\b(?:by|per)\s+(?:the\s+|each\s+|their\s+)?" + pattern, text)), None)
    if direct:
        slots["group_by"] = direct
        return slots
    for pattern, key in GROUPS:
        if re.search(r"\b(by|per|across|each|for every|split|breakdown|overview|between|over|into|fall)\b[^.?!]{0,25}\b"
                     + pattern, text) or re.search(r"\b" + pattern + r"\w* (" + DIMENSION_SUMMARY + ")", text):
            slots["group_by"] = key
            break
    return slots


def row_limit(text: str, facts: PlannerFacts) -> int | None:
    """How many rows the question asks for (1 to 500), unless the number is an amount or a customer id."""
    lim = next((m for m in (p.search(text) for p in ROW_LIMIT) if m), None)
    if not lim or re.search(r"£\s?" + lim.group(1) + r"\b", text):
        return None
    value = int(lim.group(1))
    if 1 <= value <= 500 and not is_customer_id_token(lim.group(1), facts):
        return value
    return None


def goal_slots(text: str, slots: dict[str, Any], tiers: tuple[str, ...]) -> dict[str, Any]:
    """The campaign goal; for an upgrade to a tier, the audience becomes the tier below it."""
    out: dict[str, Any] = {}
    goal = next((g for pattern, g in GOALS if re.search(pattern, text)), None)
    if goal:
        out["goal"] = goal
    target = re.search(r"\b(?:up )?(?:to|into) (platinum|gold|silver)\b", text)
    if goal == "upgrade" and target:
        tier = {t.lower(): t for t in tiers}[target.group(1)]
        if slots.get("tiers") == [tier]:
            # "who could be upgraded to platinum": the audience is the tier below the target
            out["tiers"] = [tiers[tiers.index(tier) + 1]]
    return out


def is_customer_id_token(token: str, facts: PlannerFacts) -> bool:
    return len(token) >= 4 and facts.is_customer_id(token)


def customer_id_in(text: str, facts: PlannerFacts) -> str | None:
    """A customer id: after "customer"/"account"/"#", a 4-8 digit number that is an id in the data,
    or a 5-8 digit number after "about"."""
    # an amount is never an id ("score a customer: 100 pounds on ...")
    m = re.search(r"\b(?:customer|client|cust|account|id|user|buyer|shopper)\s*(?:id|number|no\.?)?\s*[#:]?\s*"
                  r"([A-Za-z]?\d{3,12})\b(?!\s?(?:%|" + MONEY_UNIT + r"\b|[.,]\d))", text) or re.search(r"#\s?(\d{3,12})\b", text)
    if m:
        return m.group(1).upper() if m.group(1)[0].isalpha() else m.group(1)
    for token in re.findall(r"(?<![£$€\d.,])\b(\d{4,8})\b(?!\s?(?:%|" + MONEY_UNIT + r"|days|weeks|months|years)|[.,]\d)", text):
        if is_customer_id_token(token, facts):
            return token
    m = re.search(r"\babout (\d{5,8})\b", text)
    return m.group(1) if m else None


def search_query(text: str, quoted: str, products: list[str]) -> str | None:
    """The product phrase of a profile search: a quoted phrase as is; the words after a buying verb ("who
    buy tea sets" -> "tea sets", "fans of paper lanterns"); else the data's product words standing just
    before a word for buyers ("the big candle buyers" -> "candle")."""
    if quoted:
        return quoted[:500]
    m = INTEREST.search(text)
    if m:
        rest = re.split(r"[,;?!]|\b(in|from) (?=[a-z]+\s*$)", m.group(1))[0]
        words = [w for w in re.findall(r"[a-z][a-z'-]*", rest) if w not in STOP]
        tail = [w for w in words if w not in COUNTRY_ALIASES and w not in ("france", "germany", "lapsing", "lapsed")]
        query = " ".join(tail).strip()
        if query:
            return query
    named = set(products)
    for run in re.finditer(r"((?:[a-z]+ ){1,4})(?:buyers|shoppers|fans|lovers|collectors|customers|clients|people)\b",
                           text):
        words = [w for w in run.group(1).split() if w in named]
        if words:
            return " ".join(words)
    return None
