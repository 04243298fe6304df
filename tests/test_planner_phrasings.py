"""The offline planner's rules for how people write: bounds in other words ("exceeds", "north of"), a
comma as the decimal mark, currency codes and "half a grand", everyday words for lapsed customers and
for a group of top customers, values left out ("except the lapsed"), shares and comparisons as
summaries, vague asks, an upload into an outside service, time words that point at nothing, and
follow-ups ("the first of those", "re-engage them", "which tier would that put them in?"), marketers' jargon
("whales", "loyalists", "by CLV"), counts in a trailing phrase, countries in their own languages and a
welcome campaign. Phrasings
of our own, not the eval file's."""

from __future__ import annotations

import pytest

from _agent_support import agent_data_dir, agent_embedder, make_settings, no_real_llm  # noqa: F401
from agent.planner import IntentModel, Plan, Planner, StaticFacts, numbers_to_digits
from agent.planner.countries import countries_in
from tools.deps import ToolDeps
from tools.registry import ToolRegistry


@pytest.fixture(scope="module")
def planner(agent_embedder):
    settings = make_settings(agent_data_dir())
    registry = ToolRegistry(ToolDeps(settings))
    return Planner.for_registry(settings, registry, intent_model=IntentModel(settings, embedder=agent_embedder))


def expect(plan: Plan, tool: str, expected: dict) -> dict:
    assert plan.kind == "answer" and len(plan.calls) == 1, plan
    name, args = plan.calls[0]["name"], plan.calls[0]["args"]
    assert name == tool, (name, args)
    assert {k: args.get(k) for k in expected} == expected, args
    return args


def turn(plan: Plan, results=None) -> dict:
    return {"plan": plan.to_dict(), "results": results or []}


@pytest.mark.parametrize("text,digits", [
    ("churn above 0,35", "churn above 0.35"), ("2,5k to spend", "2500 to spend"), ("12,5% churn", "12.5% churn"),
    ("1,500 pounds", "1500 pounds"),  # three digits after the comma: a thousands separator
    ("half a grand", "500 quid"), ("half a million", "500000"), ("gbp 4,000 cap", "£4000 cap"),
    ("eur250", "€250")])
def test_decimal_commas_currency_codes_and_halves(text, digits):
    assert numbers_to_digits(text) == digits


@pytest.mark.parametrize("question,tool,expected", [
    # a bound in any of its words, for churn and for predicted value alike
    ("clients whose churn risk is in excess of 65%", "find_customers", {"min_churn_risk": 0.65}),
    ("customers with churn risk larger than 0,55", "find_customers", {"min_churn_risk": 0.55}),
    ("buyers with a predicted value south of £80", "find_customers", {"max_value": 80}),
    ("customers whose expected spend is upwards of 1.200 euro", "find_customers", {"min_value": 1200}),
    # campaign money: a currency code, half a scale, what "we have" for a purpose
    ("GBP 1,200 for a win-back push on lapsed customers", "recommend_campaigns", {"budget": 1200}),
    ("half a grand to win back the lapsed ones", "recommend_campaigns", {"budget": 500, "goal": "win_back"}),
    ("I have 900 to get first-time buyers to shop a second time", "recommend_campaigns",
     {"budget": 900, "goal": "grow"}),
    # README: "VIP" is a retention word
    ("any campaign ideas for our VIPs with 700 pounds?", "recommend_campaigns",
     {"goal": "retain", "budget": 700, "tiers": ["Platinum", "Gold"]}),
])
def test_bounds_and_money_in_other_words(planner, question, tool, expected):
    expect(planner.plan(question, []), tool, expected)


@pytest.mark.parametrize("question,expected", [
    # everyday words for customers who stopped buying are the lapsed stage
    ("which clients went silent on us?", {"lifecycle": ["lapsed"]}),
    ("shoppers who no longer order", {"lifecycle": ["lapsed"]}),
    # a group of top customers, also "best" and "the big spenders" (ranked by lifetime revenue)
    ("best clients in Germany", {"tiers": ["Platinum", "Gold"], "countries": ["Germany"]}),
    ("who are the heavy spenders?", {"tiers": ["Platinum", "Gold"], "sort_by": "historical_value"}),
    ("best 4 customers", {"tiers": None, "limit": 4}),  # counted: a ranking, not the group
    # "risk to churn" (French and Spanish speakers) is the at-risk flag
    ("the customers who risk to leave in Germany", {"at_risk": True, "countries": ["Germany"]}),
    # a row count after the audience, and words before the count word with hyphens
    ("rank the at-risk clients by churn, 12 of them", {"limit": 12, "sort_by": "churn_risk", "at_risk": True}),
    ("our nine top-spending accounts by lifetime revenue", {"limit": 9, "sort_by": "historical_value"}),
    ("the 6 clients the most valuable by spend predicted", {"limit": 6, "sort_by": "predicted_value"}),
])
def test_audience_words(planner, question, expected):
    expect(planner.plan(question, []), "find_customers", expected)


def test_values_left_out_are_not_in_the_audience(planner):
    args = expect(planner.plan("clients in the lapsing stage and the at risk stage, but not the lapsing ones", []),
                  "find_customers", {})
    assert args["lifecycle"] == ["at risk"]
    # everything but the value left out, from the data's own list
    args = expect(planner.plan("list all customers except the Bronze tier", []), "find_customers", {})
    assert args["tiers"] == [t for t in planner.facts.tiers if t != "Bronze"]


@pytest.mark.parametrize("question,expected", [
    # a share of one value is its row among all of them: grouped, not filtered (a filter makes it 100%)
    ("what fraction of our revenue comes from Gold customers?", {"group_by": "tier", "tiers": None}),
    # two values compared are grouped by their dimension
    ("Germany versus Spain on value at risk", {"group_by": "country", "countries": ["Germany", "Spain"]}),
    # names given as examples of all of them filter nothing
    ("segment numbers please: Champions, Hibernating and so on", {"group_by": "segment", "segments": None}),
    # "mix" and "composition" ask for a summary by the dimension they follow; "by X" wins over the rest
    ("how does the tier composition look for lapsed clients?", {"group_by": "tier", "lifecycle": ["lapsed"]}),
    ("split the Hibernating segment by country", {"group_by": "country", "segments": ["Hibernating"]}),
])
def test_shares_comparisons_and_mixes_are_summaries(planner, question, expected):
    expect(planner.plan(question, []), "segment_summary", expected)


def test_a_vague_ask_about_customers_is_asked_back(planner):
    for question in ("I'd like some data about our clients", "any insights on my customers?"):
        plan = planner.plan(question, [])
        assert plan.kind == "clarify" and not plan.calls, (question, plan)


def test_an_upload_into_an_outside_service_is_refused_but_a_file_for_it_is_exported(planner):
    for question in ("push the lapsed customers into Klaviyo", "please sync our gold clients with Salesforce"):
        plan = planner.plan(question, [])
        assert plan.kind == "refuse" and not plan.calls, (question, plan)
        assert "export" in plan.text.lower()  # the refusal offers the local file
    # the user uploads it: an export, nothing refused
    expect(planner.plan("make me a csv of the lapsed customers that I can upload to Klaviyo", []),
           "export_audience", {"lifecycle": ["lapsed"]})


def test_time_words_and_shouting_point_at_nothing(planner):
    # "these days" is no reference to an earlier answer
    expect(planner.plan("which clients are spending the most these days?", []), "find_customers",
           {"sort_by": "historical_value"})
    # "US" inside a shouted word is no country; "our VIPs ... any of them" names its own subject
    expect(planner.plan("LIST EVERY LAPSED CUSTOMER IN GERMANY", []), "find_customers",
           {"countries": ["Germany"], "lifecycle": ["lapsed"]})
    expect(planner.plan("our VIPs: is any of them slipping away?", []), "find_customers",
           {"at_risk": True, "tiers": ["Platinum", "Gold"]})


def test_follow_ups_in_other_words(planner):
    first = planner.plan("lapsed customers in France", [])
    rows = [{"customers": [{"customer_id": "11111"}, {"customer_id": "22222"}]}]
    plan = planner.plan("everything on the second of those please", [turn(first, rows)])
    assert plan.calls == [{"name": "get_customer", "args": {"customer_id": "22222"}}]
    summary = planner.plan("how many lapsed customers are there in Germany?", [])
    expect(planner.plan("re-engage them with £400", [turn(summary)]), "recommend_campaigns",
           {"goal": "win_back", "budget": 400, "lifecycle": ["lapsed"], "countries": ["Germany"]})
    scored = planner.plan("score a prospect who spent £50 on 2011-03-02 and £80 on 2011-09-14", [])
    again = planner.plan("what tier does that make them?", [turn(scored)])
    assert [c["name"] for c in again.calls] == ["score_customer"], again
    model = planner.plan("how accurate is the churn model?", [])
    expect(planner.plan("and at spotting the big spenders?", [turn(model)]), "model_report", {})


def test_a_country_the_data_lacks_named_in_full_is_passed_on():
    """So the tool names it instead of the audience silently becoming everyone; its demonym is left alone."""
    facts = StaticFacts(country_names=("France", "Germany", "United Kingdom"))
    assert countries_in("every lapsed customer in the netherlands", "EVERY LAPSED CUSTOMER IN THE NETHERLANDS",
                        facts) == ["Netherlands"]
    assert countries_in("dutch customers", "dutch customers", facts) == []
    assert countries_in("gold customers in germany", "GOLD CUSTOMERS IN GERMANY", facts) == ["Germany"]  # no "US"


@pytest.mark.parametrize("question,expected", [
    # going, about to go, worried about losing, not bought for a while: the at_risk flag, never a stage
    ("which clients are cooling off?", {"at_risk": True, "lifecycle": None}),
    ("shoppers on the brink of leaving", {"at_risk": True, "min_churn_risk": None}),
    ("Gold and Silver buyers in Spain who are about to leave us", {"at_risk": True, "segments": None,
                                                                   "tiers": ["Gold", "Silver"]}),
    ("customers we could lose in Spain", {"at_risk": True, "countries": ["Spain"]}),
    ("gold accounts I'm nervous about losing", {"at_risk": True, "tiers": ["Gold"]}),
    ("clients who haven't ordered in ages", {"at_risk": True}),
    ("customer that not buy since long time from Italy", {"at_risk": True, "countries": ["Italy"]}),
    # a stated time is a recency window; gone already is the lapsed stage
    ("customers who haven't bought anything in 90 days", {"at_risk": None, "min_recency_days": 90}),
    ("which clients went quiet?", {"at_risk": None, "lifecycle": ["lapsed"]}),
    ("clients that don't buy anymore", {"at_risk": None, "lifecycle": ["lapsed"]}),
])
def test_at_risk_in_everyday_words(planner, question, expected):
    expect(planner.plan(question, []), "find_customers", expected)


def test_money_we_could_lose_is_no_customer_flag(planner):
    plan = planner.plan("how much revenue could we lose?", [])
    assert plan.calls and "at_risk" not in plan.calls[0]["args"], plan


@pytest.mark.parametrize("question,expected", [
    # worth, "best" with a count, expected spend and past spend, each a ranking
    ("the 12 best clients in France", {"limit": 12, "sort_by": "customer_value", "tiers": None}),
    ("who is worth most to us in Spain", {"sort_by": "customer_value", "countries": ["Spain"]}),
    ("clients we expect to spend big next year", {"sort_by": "predicted_value"}),
    ("lapsed shoppers who used to spend heavily", {"sort_by": "historical_value", "lifecycle": ["lapsed"]}),
    # new customers in everyday words
    ("show me the newcomers in Germany", {"lifecycle": ["new"], "countries": ["Germany"]}),
    ("customers who only just started ordering", {"lifecycle": ["new"]}),
    # a value negated is left out: the data's other values
    ("at-risk clients that aren't Platinum", {"tiers": ["Gold", "Silver", "Bronze"], "at_risk": True}),
    ("non-Bronze lapsing customers", {"tiers": ["Platinum", "Gold", "Silver"], "lifecycle": ["lapsing"]}),
    # a cap on the rows before or after the number
    ("lapsed customers in Spain, 40 max", {"limit": 40, "lifecycle": ["lapsed"]}),
    ("gold clients in France - max 15", {"limit": 15, "tiers": ["Gold"]}),
    # the RFM segment "At Risk", named with its cue, is that segment and not the flag
    ("customers in the RFM segment 'At Risk'", {"segments": ["At Risk"], "at_risk": None}),
    # everyday words for customers, a near miss of the opening verb, a wish inside a longer request
    ("our Gold-tier clientele in Italy", {"tiers": ["Gold"], "countries": ["Italy"]}),
    ("shwo me the lapsing customers in France", {"lifecycle": ["lapsing"], "countries": ["France"]}),
    ("My boss wants a plan for our Gold members, but first I'd like to see which of them are in the Champions "
     "segment", {"tiers": ["Gold"], "segments": ["Champions"]}),
])
def test_rankings_stages_negations_and_caps_in_other_words(planner, question, expected):
    expect(planner.plan(question, []), "find_customers", expected)


def test_a_cap_in_money_stays_the_budget(planner):
    args = expect(planner.plan("a win-back for lapsed customers with 300 pounds max", []), "recommend_campaigns",
                  {"budget": 300, "goal": "win_back"})
    assert "limit" not in args


@pytest.mark.parametrize("question,tool,expected", [
    # a file as the thing asked for is an export, whatever verb asks for it
    ("I'd like a spreadsheet of the gold customers in Germany", "export_audience",
     {"tiers": ["Gold"], "countries": ["Germany"]}),
    ("send me an excel with the 30 riskiest clients", "export_audience", {"max_rows": 30, "sort_by": "churn_risk"}),
    # "have we got many" is a count
    ("do we have many punters in France?", "segment_summary", {"countries": ["France"]}),
    # words only a question about the model uses
    ("are the churn scores well calibrated?", "model_report", {}),
    # winning back, as non-native speakers write it
    ("how can we recover the customers who stopped ordering", "recommend_campaigns",
     {"goal": "win_back", "lifecycle": ["lapsed"]}),
])
def test_exports_counts_model_and_win_back_in_other_words(planner, question, tool, expected):
    expect(planner.plan(question, []), tool, expected)


def test_a_what_if_after_a_campaign_keeps_its_audience(planner):
    first = planner.plan("plan a win-back for the lapsed customers in Spain", [])
    for question, budget in (("suppose we had only 200 pounds for that", 200), ("and if the budget was 1k?", 1000)):
        expect(planner.plan(question, [turn(first)]), "recommend_campaigns",
               {"budget": budget, "lifecycle": ["lapsed"], "countries": ["Spain"], "goal": "win_back"})


@pytest.mark.parametrize("question,expected", [
    # money brought in is what they spent; what they are going to spend is the prediction
    ("which clients generate the most revenue for us?", {"sort_by": "historical_value"}),
    ("who makes us the most money?", {"sort_by": "historical_value"}),
    ("list customers sorted by what they are going to spend", {"sort_by": "predicted_value"}),
    ("rank the gold clients by how much they will spend next year", {"sort_by": "predicted_value", "tiers": ["Gold"]}),
    ("who will be our biggest customers next year?", {"sort_by": "predicted_value"}),
    ("our most lucrative customers", {"sort_by": "customer_value"}),
    # "as per", "according to": a ranking, as Indian English writes it
    ("please share top 15 clients as per churn risk", {"limit": 15, "sort_by": "churn_risk"}),
    # both ends of a range, for churn and for predicted value, in digits or in words
    ("customers with a churn risk from 20% to 40%", {"min_churn_risk": 0.2, "max_churn_risk": 0.4, "sort_by": None}),
    ("shoppers whose churn probability is between 0.6 and 0.8", {"min_churn_risk": 0.6, "max_churn_risk": 0.8}),
    ("clients with predicted spend between two hundred and three hundred pounds", {"min_value": 200, "max_value": 300}),
    ("customers whose expected value is from £1000 to £2000", {"min_value": 1000, "max_value": 2000}),
    # customers we have lost are the lapsed stage, not the RFM "Lost" segment
    ("customers we have lost completely in France", {"lifecycle": ["lapsed"], "segments": None}),
    # a count of rows in other nouns, and a count that is enough
    ("top spenders, a dozen is plenty", {"limit": 12}),
    ("lapsing customers, 25 entries please", {"limit": 25}),
])
def test_rankings_ranges_and_counts_in_more_words(planner, question, expected):
    expect(planner.plan(question, []), "find_customers", expected)


def test_range_ends_in_words_are_read_apart():
    assert numbers_to_digits("between five hundred and a thousand pounds") == "between 500 and 1000 pounds"
    assert numbers_to_digits("between one hundred and twenty and two hundred") == "between 120 and 200"
    assert numbers_to_digits("one hundred and twenty customers") == "120 customers"


@pytest.mark.parametrize("question,expected", [
    # leaving as a possibility, wanting to leave, and going quiet only lately: the at-risk flag
    ("which gold customers could leave us soon?", {"tiers": ["Gold"], "at_risk": True, "min_churn_risk": None}),
    ("who may quit us in Germany", {"at_risk": True, "countries": ["Germany"]}),
    ("clients that may not come back", {"at_risk": True}),
    ("customers who may stop to buy from us", {"at_risk": True}),
    ("who is thinking to leave?", {"at_risk": True}),
    ("which gold clients we can lose soon?", {"at_risk": True, "tiers": ["Gold"]}),
    ("which bronze shoppers have gone silent recently and might not return",
     {"tiers": ["Bronze"], "at_risk": True, "lifecycle": None}),
    # "likely to churn" stays the 50% bound
    ("which silver clients are likely to quit?", {"min_churn_risk": 0.5, "at_risk": None}),
    # a long message: the tier of the sentence that asks, not those of the background
    ("Quick background: the board loved our Platinum numbers last year and we doubled down on Gold retention. "
     "This spring the brief changed. I now need the Bronze customers in Germany who are at risk, top 20 by value "
     "at risk.", {"tiers": ["Bronze"], "at_risk": True, "limit": 20}),
])
def test_at_risk_in_more_everyday_words(planner, question, expected):
    expect(planner.plan(question, []), "find_customers", expected)


@pytest.mark.parametrize("question,tool,expected", [
    # a second order is growth, also when the buyers "come back" for it
    ("plan a second-order push for new customers, 600 pounds", "recommend_campaigns",
     {"goal": "grow", "budget": 600, "lifecycle": ["new"]}),
    ("how can new buyers be made to come back for their 2nd purchase? we have 400", "recommend_campaigns",
     {"goal": "grow", "budget": 400}),
    # a terse campaign request: the number on its own is the budget, a count or a year is not
    ("winback lapsed germany 1500", "recommend_campaigns", {"budget": 1500, "countries": ["Germany"]}),
    ("retention vip 3000", "recommend_campaigns", {"budget": 3000, "goal": "retain"}),
    ("bring back the customers who left, we have 1200", "recommend_campaigns", {"budget": 1200}),
    # a file to download, whatever word asks for it
    ("the lapsed customers in Spain, downloadable please", "export_audience",
     {"lifecycle": ["lapsed"], "countries": ["Spain"]}),
    ("a list of the at-risk clients I can download", "export_audience", {"at_risk": True}),
    # a count and a total of one tier, "them" pointing inside the question
    ("kindly check gold customer how many and average spend of them", "segment_summary", {"tiers": ["Gold"]}),
])
def test_campaigns_exports_and_counts_in_more_words(planner, question, tool, expected):
    expect(planner.plan(question, []), tool, expected)


def test_them_after_an_earlier_question_of_the_same_message_points_inside(planner):
    expect(planner.plan("Who in Spain needs a closer look? Sort them by churn risk.", []), "find_customers",
           {"countries": ["Spain"], "sort_by": "churn_risk"})


@pytest.mark.parametrize("question,expected", [
    # marketers' jargon for the most valuable customers: the big spenders (top tiers, ranked by what they spent)
    ("show me our whales", {"tiers": ["Platinum", "Gold"], "sort_by": "historical_value"}),
    ("who are the high rollers in France?", {"tiers": ["Platinum", "Gold"], "countries": ["France"],
                                             "sort_by": "historical_value"}),
    ("list our heavy hitters", {"tiers": ["Platinum", "Gold"], "sort_by": "historical_value"}),
    ("the big fish, please", {"tiers": ["Platinum", "Gold"], "sort_by": "historical_value"}),
    ("who are our MVPs?", {"tiers": ["Platinum", "Gold"]}),
    # "loyalists" alone are the Loyal segment; "potential loyalists" stay their own segment
    ("Who are my loyalists?", {"segments": ["Loyal"]}),
    ("our loyalists in Spain", {"segments": ["Loyal"], "countries": ["Spain"]}),
    ("show potential loyalists", {"segments": ["Potential Loyalist"]}),
    # CLV / LTV / lifetime value is customer value
    ("top 50 silver clients by CLV", {"tiers": ["Silver"], "limit": 50, "sort_by": "customer_value"}),
    ("rank the gold accounts by LTV", {"tiers": ["Gold"], "sort_by": "customer_value"}),
    ("customers with the highest customer lifetime value", {"sort_by": "customer_value"}),
    # a count in a trailing phrase of its own
    ("the clients that are most valuable, just 12 please", {"limit": 12, "sort_by": "predicted_value"}),
    ("lapsing customers in Germany - only 30", {"limit": 30, "lifecycle": ["lapsing"], "countries": ["Germany"]}),
    ("show platinum customers, limit it to 40", {"limit": 40, "tiers": ["Platinum"]}),
    ("bronze buyers in France, 15 only", {"limit": 15, "tiers": ["Bronze"]}),
    # a count of days after "only" is no row count
    ("customers who ordered in the last 30 days only", {"limit": None}),
])
def test_marketer_jargon_and_trailing_counts(planner, question, expected):
    expect(planner.plan(question, []), "find_customers", expected)


@pytest.mark.parametrize("question,country", [
    ("Gold customers from Deutschland", "Germany"), ("clients in España", "Spain"),
    ("customers in Österreich", "Austria"), ("buyers from the Schweiz", "Switzerland"),
    ("shoppers in Nederland", "Netherlands"), ("customers from Belgique", "Belgium"),
    ("clients in Italia", "Italy"), ("customers in Éire", "EIRE"), ("customers in Ireland", "EIRE"),
    ("accounts in Allemagne", "Germany"), ("customers in Sverige", "Sweden"),
])
def test_countries_in_their_own_languages(planner, question, country):
    expect(planner.plan(question, []), "find_customers", {"countries": [country]})


def test_a_place_like_a_foreign_name_is_still_unknown(planner):
    # "Wakanda" is no typo of the German "Kanada": passed on, so the tool refuses it by name
    args = expect(planner.plan("What are my top customers in Wakanda?", []), "find_customers", {})
    assert args["countries"] == ["Wakanda"]


@pytest.mark.parametrize("question", ["Plan a welcome campaign for them.", "what welcome offer would suit them?",
                                      "draft an onboarding campaign for them with 400 pounds"])
def test_a_welcome_for_new_customers_is_the_second_order_goal(planner, question):
    first = planner.plan("How many new customers do we have in the UK?", [])
    args = expect(planner.plan(question, [turn(first)]), "recommend_campaigns", {"goal": "grow"})
    assert args["countries"] == ["United Kingdom"] and args.get("lifecycle") in (["new"], None)

