"""The words the planner knows: aliases, segment, goal, ranking and grouping phrases, domain words,
and the English word list typo repair checks against."""

from __future__ import annotations

import functools
import re

# The words for a currency's units ("300 quid", "90 pound", "35 quids' worth"): an amount followed by one is money.
MONEY_UNIT = r"(?:pounds?|quids?|gbp|euros?|dollars?|bucks)"

# The words for a bound, as marketers and non-native speakers write them ("exceeds 70%", "north of £500",
# "bigger than 0,6"): the one list the churn threshold and the value band both read.
LOWER_BOUND_WORDS = (r"no less than|not less than|over|above|more than|greater than|bigger than|larger than|"
                     r"higher than|at least|exceed(?:s|ing)?|in excess of|north of|upwards of|beyond|>=?")
UPPER_BOUND_WORDS = r"no more than|not more than|under|below|less than|lower than|smaller than|at most|south of|<=?"
BOUND_WORDS = LOWER_BOUND_WORDS + "|" + UPPER_BOUND_WORDS


def is_lower_bound(word: str) -> bool:
    """Whether a bound word found by BOUND_WORDS is a lower bound ("exceeds", "north of")."""
    return bool(re.fullmatch(LOWER_BOUND_WORDS, word))


# The arguments that select an audience; a follow-up keeps them unless it restates them.
FILTER_KEYS = ("tiers", "lifecycle", "at_risk", "segments", "countries", "min_churn_risk", "max_churn_risk", "min_value",
               "max_value", "min_recency_days", "max_recency_days")

# The tiers "top", "VIP" and "best" customers mean, and the RFM segments whose customers are slipping
# away or already gone (what a campaign for them is for, when the question names no goal).
TOP_TIERS = ("Platinum", "Gold")
SLIPPING_SEGMENTS = frozenset({"At Risk", "Can't Lose Them", "About to Sleep", "Need Attention"})
GONE_SEGMENTS = frozenset({"Hibernating", "Lost"})

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

# Countries in their own languages and in their neighbours' ("Deutschland", "España", "Éire", "Allemagne"):
# read as the English name before typo repair, which would take an accented name apart. Not typo repair's
# words ("Wakanda" is no typo of "Kanada"): countries.unknown_countries alone knows them as places.
FOREIGN_COUNTRY_NAMES = {
    **dict.fromkeys(("deutschland", "allemagne", "alemania", "germania", "duitsland", "tyskland", "niemcy"), "Germany"),
    **dict.fromkeys(("españa", "espana", "espagne", "spanien", "spagna", "spanje"), "Spain"),
    **dict.fromkeys(("österreich", "osterreich", "oesterreich", "autriche", "oostenrijk"), "Austria"),
    **dict.fromkeys(("schweiz", "suisse", "svizzera", "svizra", "zwitserland", "suiza", "helvetia"), "Switzerland"),
    **dict.fromkeys(("nederland", "niederlande", "pays-bas", "pays bas", "países bajos", "paesi bassi"), "Netherlands"),
    **dict.fromkeys(("belgique", "belgië", "belgie", "belgien", "bélgica", "belgica", "belgio"), "Belgium"),
    **dict.fromkeys(("italia", "italien", "italie"), "Italy"),
    **dict.fromkeys(("éire", "irland", "irlande", "irlanda", "ierland", "poblacht na héireann"), "EIRE"),
    **dict.fromkeys(("frankreich", "francia", "frankrijk"), "France"),
    **dict.fromkeys(("danmark", "dänemark", "danemark", "dinamarca"), "Denmark"),
    **dict.fromkeys(("sverige", "schweden", "suède", "suecia"), "Sweden"),
    **dict.fromkeys(("norge", "noreg", "norwegen", "norvège", "norvege", "noruega"), "Norway"),
    **dict.fromkeys(("suomi", "finnland", "finlande", "finlandia"), "Finland"),
    **dict.fromkeys(("polska", "polen", "pologne", "polonia"), "Poland"),
    **dict.fromkeys(("ελλάδα", "hellas", "ellada", "griechenland", "grèce", "grecia"), "Greece"),
    **dict.fromkeys(("ísland", "islande", "islandia"), "Iceland"),
    **dict.fromkeys(("česko", "cesko", "česká republika", "ceska republika", "czechia", "tschechien"), "Czech Republic"),
    **dict.fromkeys(("lietuva", "litauen", "lituanie"), "Lithuania"),
    **dict.fromkeys(("brasil", "brasilien", "brésil"), "Brazil"),
    **dict.fromkeys(("kanada",), "Canada"),
    **dict.fromkeys(("nippon", "nihon", "japon"), "Japan"),
    **dict.fromkeys(("großbritannien", "grossbritannien", "vereinigtes königreich", "royaume-uni", "royaume uni",
                     "reino unido", "regno unito"), "United Kingdom"),
}
FOREIGN_COUNTRY = re.compile(r"(?<![\w-])(" + "|".join(sorted(map(re.escape, FOREIGN_COUNTRY_NAMES), key=len, reverse=True))
                             + r")(?![\w-])")

# Marketers' jargon for groups of customers and for a figure, read as the planner's own words after typo repair:
# the most valuable customers ("whales", "high rollers", "heavy hitters", "big fish") are the big spenders (the
# top tiers ranked by what they spent, as TOP_GROUP and SORTS read them); "MVPs" are VIPs; "loyalists" (not the
# "Potential Loyalist" segment) are the Loyal segment; CLV / LTV / lifetime value is customer value (trailing
# revenue plus predicted value, README), not lifetime spend.
JARGON = [
    (r"\b(?:whales?|high[- ]?rollers?|heavy[- ]?hitters?|big fish|biggest fish|big[- ]ticket (?:customers|clients|"
     r"buyers|shoppers|accounts))\b(?: (?:customers|clients|buyers|shoppers|accounts|ones))?", "big spenders"),
    (r"\bmvps\b", "vips"),
    (r"(?<!potential )(?<!potential-)\bloyalists\b", "loyal customers"),
    (r"\b(?:c\.?l\.?t?\.?v|l\.?t\.?v|customer lifetime value|lifetime value)\b\.?", "customer value"),
]


def read_jargon(text: str) -> str:
    """The text with marketers' jargon (JARGON) in the planner's own words."""
    for pattern, words in JARGON:
        text = re.sub(pattern, words, text)
    return text


# Segments whose names are everyday words, read only with their cue, and short forms of names; the
# other segment names are matched against the data's own (agent.planner.entities).
# The RFM segment "At Risk" named with its cue ("the 'At Risk' RFM segment", "segment at risk", "RFM at risk"):
# that segment, not the at_risk flag.
AT_RISK_SEGMENT = (r"\"?at[- ]risk\"? (?:rfm )?segment|(?:rfm )?segment (?:called |named )?\"?at[- ]risk|"
                   r"rfm (?:segment )?\"?at[- ]risk")
SEGMENT_PATTERNS = [
    # "lost" as what we did ("customers we've lost", "lost for good") is the lapsed stage (slots.LAPSED_PHRASE)
    (r"\bloyal(?! ?ists?)", "Loyal"),
    (r"(?<!\bwe )(?<!\bwe've )(?<!\bwe have )(?<!\bwe had )(?<!\bi've )(?<!\bi have )(?<!already )(?<!\bjust )"
     r"\blost\b(?! (?:for good|entirely|completely|forever|altogether)\b)", "Lost"),
    (r"can'?t lose\b|cannot lose\b|can not lose\b", "Can't Lose Them"),
    (AT_RISK_SEGMENT, "At Risk"),
    (r"new segment|segment new", "New"),
]
GOALS = [
    # a second order is growth, also when the customers "come back" for it ("a second-order campaign", "get
    # first-time buyers to come back for a second order"): checked before the reactivation words
    (r"(?:second|2nd)[- ](?:order|purchase|sale|basket)", "grow"),
    # a welcome for new customers is the second-order playbook's ("plan a welcome campaign for them", "a welcome
    # offer for the newbies", "welcome our new buyers"); a "welcome flow" in an email tool is only its list
    (r"\bwelcome (?:campaign|offer|push|promo\w*|programme|program|discount|voucher|coupon|incentive|initiative|"
     r"playbook|journey|deal|gift|pack|drive|plan)s?\b|\bwelcome (?:them|(?:our |the |all )?new)\b|"
     r"\bonboarding (?:campaign|offer|push|programme|program|journey|plan)\b", "grow"),
    # also as non-native speakers write it ("recuperate the clients", "recover lost customers", "regain them")
    (r"win ?-?back|winback|win them back|win back|losing|we'?re losing|re-?engage|recuperat\w*|recover\w*|regain\w*|"
     r"get (?:them|(?:\w+ ){0,3}(?:customers|clients|buyers|shoppers)) back|"
     r"get back (?:the |our |those )?(?:\w+ )?(?:customers|clients|buyers|shoppers)", "win_back"),
    (r"reactivat|re-?activat|wake up|buy again|come back|bring\w*(?: \w+){0,3} back|dormant", "reactivate"),
    (r"upgrade|move up|push .* up|next tier|up to gold|up to platinum", "upgrade"),
    (r"cross-?sell|upsell|up-?sell|(?:order|buy|purchase|shop)\w*(?: \w+){0,2} "
     r"(?:a |one )?(?:second|2nd) time|grow|buy more|order again", "grow"),
    # README: "retention / keep / VIP / loyalty -> retain"; a VIP campaign with no other goal keeps them
    (r"retain|retention|keep|loyal(?:ty)? program|happy|hold on|\bvips?\b|(?:reduce|prevent|stop|lower|cut|fight)\w* "
     r"(?:the )?churn|(?:stop|prevent)\w* (?:\w+ )?(?:from )?(?:leaving|churning|going)|"
     r"(?:stop|prevent|keep)\w* (?:[\w']+ ){1,8}?from (?:leaving|churning|going)", "retain"),
]
# Money customers bring the shop, in everyday words ("bring in the most money", "generate the most revenue",
# "make us the most cash"): what they spent.
MONEY_BROUGHT_IN = (r"\b(?:bring|brings|bringing|brought|generat\w*|make|makes|made|earn\w*|produc\w*|driv\w*|"
                    r"contribut\w*|account for|deliver\w*)(?: us| in| for us){0,2} (?:the )?(?:most|highest|biggest|"
                    r"largest|greatest)(?: amount of)? (?:money|revenue|sales|income|cash|turnover|business)\b")
SORTS = [
    (r"most likely to (?:churn|leave|go)|highest churn|riskiest|biggest risk (?:of|for)|most big risk|"
     r"churn (?:risk|probability)(?: first| order| descending)?\b(?! (?:of|is|more|less|between|from|somewhere|"
     r"in the range|ranging|\d|" + BOUND_WORDS + r"))",
     "churn_risk"),
    (r"value at risk|at stake|money at risk|revenue at risk", "value_at_risk"),
    (r"customer value|total value|overall value", "customer_value"),
    # what they are expected to spend ("we expect to spend the most", "likely to spend big next year")
    (r"predicted (?:value|spend)|future (?:value|spend)|expected (?:value|spend)|will spend|forecast|"
     r"expect\w* (?:\w+ ){0,2}to spend|(?:going|likely|set|predicted) to spend|"
     r"most valuable|more valuable|valuable first|highest value|high value|spend the most next|"
     # who the big customers will be ("who will be our biggest customers next year", "top buyers next quarter")
     r"will be (?:our |the )?(?:biggest|best|top|most important)|(?:biggest|best|top) (?:customers|clients|buyers|"
     r"spenders) (?:of |for )?(?:next|the coming|the next|in the coming) (?:year|quarter|months?|period|season)",
     "predicted_value"),
    # what they spent, also in the past tense of a group ("used to be our best", "used to spend a lot")
    (r"historical|lifetime|whole history|all[- ]time|spent the most|(?:biggest|top|big|heavy|high|large) spenders|"
     r"spend(?:s|ing)? (?:the )?most|spend(?:s|ing)? big|total spend|so far|used to (?:spend|buy|order|shop)|"
     r"used to be (?:\w+ ){0,2}(?:best|biggest|top|most valuable|big spenders)|" + MONEY_BROUGHT_IN, "historical_value"),
    # worth to the shop, in everyday words ("worth the most to us", "the 20 best customers", "best 5")
    (r"worth (?:the )?most|most worth|most (?:lucrative|profitable)|(?:the )?\d+ best\b|\bbest \d+\b|most important (?:customers|clients|accounts)",
     "customer_value"),
]
# What follows "sort by" / "rank by": the first matching key wins.
SORT_WORDS = [(r"value at risk|risk value|at risk", "value_at_risk"),
              # "sorted by what they're going to spend", "by how much they will buy next year"
              (r"(?:[\w']+ )?(?:going to|gonna|about to|set to|likely to|expected to|predicted to|will|shall|would) "
               r"(?:spend|buy|order|bring|be worth)", "predicted_value"),
              (r"churn|risk|likel", "churn_risk"),
              (r"customer value|total value", "customer_value"),
              (r"predict|future|expected|forecast|next|will", "predicted_value"),
              (r"lifetime|historic|revenue|spend|spent|sales|value", "historical_value")]
# The words after a dimension that ask for its summary ("lifecycle mix", "segment counts", "tier split").
DIMENSION_SUMMARY = (r"overview|breakdown|split|summary|mix|spread|composition|make-?up|counts?|numbers|totals|"
                     r"distribution")
GROUPS = [(r"countr(?:y|ies)|nation|market", "country"), (r"lifecycle|stage", "lifecycle"),
          (r"segment|rfm", "segment"), (r"tier", "tier")]

# "Which countries hold the most value?", "what tier has ...": a grouping dimension as the question's
# subject asks for a summary grouped by it, not for a list of customers.
GROUP_SUBJECT = re.compile(r"\b(?:which|what|top|best|worst|biggest|largest|leading)\s+(?:\d+\s+)?(?:of (?:our|my|the) )?"
                           r"(countr(?:y|ies)|markets?|nations?|tiers?|(?:rfm )?segments?|(?:lifecycle )?stages?)\b"
                           r"(?!\s+(?:is|are) (?:customer|client|account)\b)")
GROUP_OF_SUBJECT = {"countr": "country", "market": "country", "nation": "country", "tier": "tier",
                    "segment": "segment", "rfm": "segment", "stage": "lifecycle", "lifecycle": "lifecycle"}
# A request to see customers ("list the champions", "show me my hibernating customers"): a list, not a summary.
LIST_REQUEST = re.compile(r"^(?:please |pls |can you |could you |now |ok |so )?(?:list|show|display|give me|get me|"
                          r"pull up|who are|who is|which (?:customers|clients|shoppers|buyers|people|accounts|ones)|"
                          r"whom? (?:should|must|do|can|could|might|may|will|would) (?:i|we)\b)\b")
# Wanting to see customers in the middle of a longer request ("I'd like to start by seeing which of them ...",
# "can I have a look at who ..."): a list.
SEE_WHICH = re.compile(r"\b(?:see|seeing|look at|looking at|have a look at|view|viewing|know|find out) "
                       r"(?:which|who|whom)\b(?! (?:countr|tier|segment|stage|market))")
SUMMARY_WORDS = re.compile(r"\b((?<!by )how many|(?<!by )how much|number of|counts?|breakdown|break down|distribution|distributed|"
                           r"split|overview|summar\w*|share|proportion|percentage|totals?|average|compar\w*|versus|vs|"
                           r"side by side|mix|composition|make-?up)\b")
# What a question asks about that no tool returns (products ranked, days, times, channels, prices): the
# planner asks back, naming the closest things it can do, instead of answering a different question.
UNSERVED_SUBJECT = re.compile(
    r"\b(?:which|what(?:'s| is| are)?|when(?:'s| is)?)(?: of)?(?: our| my| the)?(?: best[- ]selling| top[- ]selling|"
    r" best| top| most popular| worst| right| ideal)?\s+(products?|items?|skus?|stock|days?|weekdays?|"
    r"day of the week|time of day|times?|hours?|channels?|prices?|pricing|suppliers?|competitors?|subject lines?|"
    r"open rates?|emails?)\b|"
    r"\b(?:trend\w*|over time|month by month|month on month|week by week|year over year|year on year)\b")
DOMAIN = re.compile(
    r"customer|client|buyer|shopper|people|tier|platinum|gold|silver|bronze|churn|segment|campaign|budget|export|"
    r"csv|model|lapsed|lapsing|champion|order|spend|revenue|value|score|risk|audience|cohort|promo|offer|"
    r"retention|win.?back|reactivat|profile|\bbuy|bought|purchas")
# What marketers say for the product's one "at risk" (the at_risk filter): overdue and likely to go.
# "Losing" is a customer we still have and may lose ("which customers are we losing", "we are loosing
# soon"); "in risk" is how many non-native speakers write "at risk".
LOSING = (r"(?:we'?re|we are|are we|we'?ll be|we will be|about to be) lo+sing|\blo+sing (?:them )?soon|"
          r"\b(?:we|i) (?:might|could|can|may|will|are likely to|are going to|risk|stand to) lo+se\b|"
          r"\b(?:might|could|may|will) (?:we|i) lo+se\b|\bin danger of lo+sing\b|\brisk(?:ing)? lo+sing\b")
# Money we could lose ("how much revenue could we lose", "the value we might lose") is no customer's flag.
# (no word for customers in between: "high-value customers we might lose" are customers).
MONEY_LOSS = (r"\b(?:how much|revenue|money|value|sales|income|profit)\b(?: (?!(?:customers?|clients?|buyers?|shoppers?|"
              r"accounts?|people|ones|vips?|spenders)\b)[\w']+){0,4} lo+s(?:e|ing)\b")
# Buying that has stopped for a while but not for a stated time ("haven't bought lately", "did not buy since
# long time", "not ordered in ages"): overdue, the at-risk flag. A stated time ("in six months") is a recency
# window instead (dates.recency_slots), and "stopped buying" / "no longer order" is the lapsed stage.
OVERDUE = (r"(?!.*\bany ?more\b)"
           r"\b(?:haven'?t|hasn'?t|have not|has not|not|didn'?t|did not|don'?t|do not|doesn'?t|does not)\b"
           r"[^.?!\d]{0,20}?\b(?:buy|bought|buying|order\w*|purchas\w*|shop\w*|been back|come back|returned)\b"
           r"[^.?!\d]{0,25}?\b(?:lately|recently|in a while|for a while|(?:since|for|from|in) (?:a |so |such a )?"
           r"(?:long|long time|long while)|in ages|for ages|for some time|in some time|for quite some time)\b")
# Going and about to go, in everyday words ("going cold on us", "about to churn", "on the verge of leaving",
# "worried about losing"): the at-risk flag. Gone already ("went quiet") is the lapsed stage.
ABOUT_TO_GO = (r"\b(?:going|growing|turning|getting) (?:cold|quiet|silent)\b|\bcooling (?:off|down)\b|"
               r"\babout to (?:churn|leave|go|stop|lapse|walk|quit|drop off)|"
               r"\bon the (?:verge|brink|edge) of (?:churn\w*|leaving|lapsing|going|quitting)|"
               r"\bclose to (?:churning|leaving|lapsing|quitting)|\b(?:worr\w*|concerned|afraid|scared|nervous) "
               r"(?:about |of )?lo+sing|"
               # wanting to go ("thinking to leave", "thinking of leaving", "planning to quit", "considering leaving")
               r"\b(?:thinking|planning|considering|wanting|want|wants|tempted|looking) (?:to |of |about |on )?"
               r"(?:leav\w*|quit\w*|churn\w*|go(?:ing)? elsewhere|switch\w* (?:to|away)|stop (?:buying|ordering))")
# Leaving as a possibility ("might leave us", "could quit", "may not come back", "might never return") and gone
# quiet only lately ("gone quiet lately", "went silent recently"): still ours, overdue, the at-risk flag.
# "Likely to churn" is a bound instead (50%, slots.LIKELY_TO_CHURN); gone quiet for good is the lapsed stage.
LEAVING_VERB = (r"(?:leave(?! (?:a|an|the|some|reviews?|feedback|comments?|ratings?|notes?)\b)|quit|churn|lapse|"
                r"walk away|drop off|defect|abandon|desert|switch to|go elsewhere|"
                r"stop (?:buying|ordering|shopping|purchasing|to (?:buy|order|shop|purchase))|not (?:come back|return|buy again|order again|reorder|"
                r"stay)|never (?:come back|return|buy again|order again))")
MIGHT_GO = (r"\b(?:might|could|may|can|would) (?:soon |still |well |easily |eventually |very well )?" + LEAVING_VERB
            + r"|\b(?:gone|went|going|gotten|got|been|grown|become) (?:a bit |rather |very )?(?:quiet|silent|cold)"
            r"(?: on us)? (?:lately|recently|of late|these (?:days|weeks))\b")
AT_RISK_PHRASE = re.compile(
    r"\bat[- ]?risk\b|\bin risk\b|\bslipping( away)?\b|drift\w* away|going away|\bgo(?:es)? away\b|walk\w* away|"
    + LOSING + "|" + ABOUT_TO_GO + "|" + OVERDUE
    + "|" + MIGHT_GO
    + r"|\bin danger\b|risk for going|\brisk(?:s|ing)? to (?:churn|leave|go|lose|quit|stop|drop|walk|abandon|defect)")
CHURN_PHRASE = re.compile(
    r"\bat[- ]risk\b|\bin risk\b|likely to (churn|leave|stop|quit)|going to (churn|leave|quit)|might (churn|leave)|could (churn|leave)|"
    r"about to (churn|leave)|risk of (churn|churning|leaving)|churning|drift\w* away|slipping away|going away|"
    r"walk\w* away|worry about losing|" + LOSING + r"|risk for going|stop buying")
DOMAIN_STRONG = re.compile(
    r"customer|client|buyer|shopper|tier|platinum|gold|silver|bronze|churn|segment|campaign|export|csv|lapsed|"
    r"lapsing|champion|revenue|audience|cohort|retention|win.?back|reactivat|profile|rfm|model|predict|forecast")

# Everyday words for customers and for new customers, read as the planner's own words before anything
# else ("punters in Switzerland", "our Gold-tier clientele", "the newbies").
EVERYDAY_WORDS = {"punters": "customers", "punter": "customer", "clientele": "clients", "patrons": "customers",
                  "consumers": "customers", "purchasers": "buyers", "newbies": "new customers",
                  "newcomers": "new customers", "new joiners": "new customers", "first-timers": "new customers",
                  "first timers": "new customers"}
EVERYDAY_WORD = re.compile(r"\b(" + "|".join(sorted(map(re.escape, EVERYDAY_WORDS), key=len, reverse=True)) + r")\b")

# Everyday words typo repair leaves alone even when the English list lacks them.
COMMON = set("percent what which where when show give list with from that this them they those these have about much many "
             "more most only also just into over under than like love find tell need want please would could "
             "should there their your ours does doing done make made each every next last first year years".split())

# Words a product search phrase leaves out ("customers who buy tea sets" -> "tea sets").
STOP = set("find show me list give the a an of for to in on at who whom which that is are were was be customers "
           "customer clients client people shoppers buyers buyer those these ones search profiles profile whose "
           "mention mentions mentioning buy buys buying bought purchase purchases purchasing purchased love loves like "
           "likes into interested collect collects collecting are is our my we us and or please with many things "
           "stuff type sort kind lot lots usually often really all any some wholesale-type wholesale mostly mainly "
           "largely primarily chiefly especially regularly frequently".split())


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole words of the embedding model's WordPiece vocabulary: a ready English word list."""
    try:
        from predictor.search.embeddings import minilm_model_dir

        lines = (minilm_model_dir() / "vocab.txt").read_text(encoding="utf-8").split()
    except Exception:  # noqa: BLE001 - without it typo repair is only more eager
        return frozenset()
    return frozenset(w for w in lines if w.isalpha() and w.islower() and len(w) >= 4)


def slots_filled(slots: dict) -> bool:
    return any(k in slots for k in (*FILTER_KEYS, "limit", "sort_by", "group_by", "goal", "budget", "orders"))
