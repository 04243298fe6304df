"""The offline planner's request rules beyond the plain cases: money written as slang or with a dot for
thousands, order histories with numeric or month-only dates, exports asked for by destination or declined,
questions about trusting the scores, contact requests, a clarifying question answered, and follow-ups that
export, rescore or ask a campaign for one customer, the next rows of a list, and a product search with a
churn qualifier. Phrasings of our own, not the eval file's."""

from __future__ import annotations

import re

import pytest

from _agent_support import agent_data_dir, agent_embedder, make_settings, no_real_llm  # noqa: F401
from agent.planner import IntentModel, Plan, Planner
from tools.deps import ToolDeps
from tools.registry import ToolRegistry
from tools.functions.campaigns import campaign_label


@pytest.fixture(scope="module")
def registry():
    return ToolRegistry(ToolDeps(make_settings(agent_data_dir())))


@pytest.fixture(scope="module")
def planner(agent_embedder, registry):
    settings = make_settings(agent_data_dir())
    return Planner.for_registry(settings, registry, intent_model=IntentModel(settings, embedder=agent_embedder))


def one_call(plan: Plan) -> tuple[str, dict]:
    assert plan.kind == "answer" and len(plan.calls) == 1, plan
    return plan.calls[0]["name"], plan.calls[0]["args"]


def turn(plan: Plan, results=None) -> dict:
    return {"plan": plan.to_dict(), "results": results or []}


def expect(plan: Plan, tool: str, expected: dict) -> dict:
    name, args = one_call(plan)
    assert name == tool, (name, args)
    assert {k: args.get(k) for k in expected} == expected, args
    return args


@pytest.mark.parametrize("question,tool,expected", [
    # money slang and the European thousands dot stay money
    ("we've got three grand to win the lapsed ones back", "recommend_campaigns", {"budget": 3000}),
    ("a budget of 2.500 euros for keeping gold clients", "recommend_campaigns", {"budget": 2500, "tiers": ["Gold"]}),
    ("plan a campaign for customers who have 5 to 10 orders", "recommend_campaigns", {"budget": None}),
    # "value/revenue ... at risk" is money; "in risk" and "we are losing" are the at-risk flag
    ("how much revenue is at risk per tier", "segment_summary", {"at_risk": None, "group_by": "tier"}),
    ("clients in risk in Spain", "find_customers", {"at_risk": True, "countries": ["Spain"]}),
    ("which shoppers are we losing?", "find_customers", {"at_risk": True}),
    # "by X" after a ranking is its order, also in words ("how likely they churn")
    ("top 8 customers by how likely they are to churn", "find_customers", {"limit": 8, "sort_by": "churn_risk"}),
    ("first 12 clients by what they will spend", "find_customers", {"limit": 12, "sort_by": "predicted_value"}),
    # "top customers" as a group are the top tiers, unless counted or ranked
    ("our top-tier clients in Germany", "find_customers", {"tiers": ["Platinum", "Gold"], "countries": ["Germany"]}),
    ("key accounts in France", "find_customers", {"tiers": ["Platinum", "Gold"]}),
    ("top 3 customers in France", "find_customers", {"tiers": None, "limit": 3}),
    ("top customers by lifetime spend", "find_customers", {"tiers": None, "sort_by": "historical_value"}),
    ("show me the VIPs in France", "find_customers", {"tiers": ["Platinum", "Gold"], "countries": ["France"]}),
    ("the most recent clients from Germany", "find_customers", {"lifecycle": ["new"], "countries": ["Germany"]}),
    # a place named like a country that the data lacks is passed on, so the tool refuses it by name
    ("at-risk buyers from Wakanda", "find_customers", {"countries": ["Wakanda"], "at_risk": True}),
])
def test_money_risk_ranking_and_audience_phrases(planner, question, tool, expected):
    expect(planner.plan(question, []), tool, expected)


@pytest.mark.parametrize("question,orders", [
    ("score a new buyer: £30 on 4/5/2011 and £70 on 19/06/2011",
     [("2011-05-04", 30), ("2011-06-19", 70)]),  # numeric dates day first, as the shop writes them
    ("predict a customer with £90 in Feb 2011 and £40 in Sept 2011", [("2011-02-01", 90), ("2011-09-01", 40)]),
    ("a new client spent 1,200 pounds on 2 May 2011 and 900 on 14 July 2011", [("2011-05-02", 1200), ("2011-07-14", 900)]),
    ("someone bought 25 quids' worth on 3 March 2011, will they come back?", [("2011-03-03", 25)]),
    ("score a customer: 100 pound on 9 June 2011", [("2011-06-09", 100)]),  # an amount is never a customer id
])
def test_order_histories_in_many_forms(planner, question, orders):
    args = expect(planner.plan(question, []), "score_customer", {})
    assert [(o["timestamp"], o["amount"]) for o in args["orders"]] == orders


def test_a_bare_amount_is_an_order_only_in_a_history_written_as_money(planner):
    plan = planner.plan("score a prospect who ordered 300 on 5 May 2011", [])
    assert plan.kind == "clarify" and not plan.calls


@pytest.mark.parametrize("question,tool,expected", [
    ("put the champions into our CRM", "export_audience", {"segments": ["Champions"]}),
    ("I want the lapsing customers for our email platform", "export_audience", {"lifecycle": ["lapsing"]}),
    # a file declined is a list
    ("show the gold customers in Spain, I don't need a file", "find_customers", {"tiers": ["Gold"]}),
    # an export asked for outright is the deliverable: campaign words say whose audience
    ("download the win-back audience with a £400 budget", "export_audience", {"goal": "win_back", "budget": 400}),
])
def test_exports_by_destination_declined_or_of_a_campaign(planner, question, tool, expected):
    expect(planner.plan(question, []), tool, expected)


def test_an_export_without_customers_is_asked_about_then_made(planner):
    asked = planner.plan("download a spreadsheet", [])
    assert asked.kind == "clarify" and asked.intent == "export_audience" and "Which customers" in asked.text
    expect(planner.plan("the lapsed ones in France", [turn(asked)]), "export_audience",
           {"lifecycle": ["lapsed"], "countries": ["France"]})
    expect(planner.plan("export every customer", []), "export_audience", {"tiers": None})
    assert planner.plan("clients", []).kind == "clarify"  # a word for customers alone says neither which nor what


def test_an_export_right_after_an_answer_exports_its_audience(planner):
    listed = planner.plan("lapsing silver clients in Germany", [])
    expect(planner.plan("lovely, could you stick that in Excel?", [turn(listed)]), "export_audience",
           {"lifecycle": ["lapsing"], "tiers": ["Silver"], "countries": ["Germany"]})
    plan = planner.plan("plan a reactivation for lapsed customers with £600", [])
    expect(planner.plan("can I get the mailing file?", [turn(plan)]), "export_audience",
           {"goal": "reactivate", "budget": 600, "source": "campaigns", "lifecycle": ["lapsed"]})
    expect(planner.plan("export all customers instead", [turn(listed)]), "export_audience", {"tiers": None})


@pytest.mark.parametrize("question", ["how much can I rely on the value forecasts?", "are these scores up to date?",
                                      "could I trust the churn predictions before spending my budget?",
                                      "is the tool any better than last period's spend?"])
def test_trusting_the_scores_is_a_model_question(planner, question):
    assert one_call(planner.plan(question, [])) == ("model_report", {})


def test_freshness_words_without_the_scores_stay_lists(planner):
    assert one_call(planner.plan("show me updated figures for Germany", []))[0] == "find_customers"


@pytest.mark.parametrize("question,expected", [
    ("help me persuade silver clients to move up a tier", {"goal": "upgrade", "tiers": ["Silver"]}),
    ("set up a win-back email for lapsed customers", {"goal": "win_back", "lifecycle": ["lapsed"]}),
    # "likely to" is the 50% bound; "might leave" is a possibility, the at-risk flag (README: one "at risk")
    ("a campaign to keep clients who are likely to leave from going", {"goal": "retain", "min_churn_risk": 0.5}),
    ("a campaign to keep clients who might leave from going", {"goal": "retain", "at_risk": True,
                                                                "min_churn_risk": None}),
])
def test_campaign_asks(planner, question, expected):
    expect(planner.plan(question, []), "recommend_campaigns", expected)


def test_contacting_customers_is_refused_but_sending_to_me_is_not(planner):
    listed = planner.plan("lapsed customers in France", [])
    for question in ("ok now text all of them a discount code", "call the gold customers in Spain"):
        plan = planner.plan(question, [turn(listed)])
        assert plan.kind == "refuse" and not plan.calls and "contact customers" in plan.text, question
    assert planner.plan("send them to me as a spreadsheet", [turn(listed)]).kind == "answer"
    assert planner.plan("what should we send them?", [turn(listed)]).kind == "answer"


def test_a_new_subject_never_inherits_the_previous_filter(planner):
    first = planner.plan("gold customers in France", [])
    name, args = one_call(planner.plan("On another note - which customers are in Italy?", [turn(first)]))
    assert args.get("countries") == ["Italy"] and "tiers" not in args


def test_a_scoring_follow_up_adds_orders_or_starts_a_new_history(planner):
    first = planner.plan("score this buyer: £60 on 2011-02-01 and £80 on 2011-05-01", [])
    added = expect(planner.plan("and if they spent another £100 on 2011-09-01?", [turn(first)]), "score_customer", {})
    assert [o["amount"] for o in added["orders"]] == [60, 80, 100]
    again = expect(planner.plan("what about their churn risk?", [turn(first)]), "score_customer", {})
    assert len(again["orders"]) == 2
    other = expect(planner.plan("now a different customer: £10 on 2011-03-01", [turn(first)]), "score_customer", {})
    assert [o["amount"] for o in other["orders"]] == [10]


def test_a_campaign_for_one_customer_is_their_detail_and_says_so(planner, registry):
    cid = registry.call("find_customers", {"limit": 1}).result["customers"][0]["customer_id"]
    lookup = planner.plan(f"tell me about customer {cid}", [])
    plan = planner.plan("plan a campaign for them with a budget of £3k", [turn(lookup)])
    assert one_call(plan) == ("get_customer", {"customer_id": cid}) and plan.variant == "campaign_for_one"
    detail = registry.call("get_customer", {"customer_id": cid}).result
    text, kind = planner.answer(plan, [{"name": "get_customer", "arguments": {"customer_id": cid}, "result": detail}])
    note = text.split("\n\n")[-1]
    assert kind == "answer" and note.startswith("A campaign plan chooses customers from an audience")
    assert detail["tier"] in note and not re.search(r"\d", note)  # no figure the detail does not hold
    if detail.get("next_best_action"):
        # Named as the answers name campaigns ("VIP retention"), never by its playbook id.
        campaign = detail["next_best_action"]["campaign"]
        assert campaign_label(campaign) in note and not re.search(r"\b[a-z]+_[a-z_]+\b", note)
    # without a campaign or a budget, "what should we offer them?" is the detail alone
    assert planner.plan("what should we offer them?", [turn(lookup)]).variant == ""


def test_several_rows_of_a_list_are_each_looked_up(planner, registry):
    first = planner.plan("show the top 5 customers by predicted value", [])
    rows = registry.call(*(lambda c: (c["name"], c["args"]))(first.calls[0])).result["customers"]
    history = [turn(first, [{"customers": rows}])]
    for question, places in (("compare the top three", [0, 1, 2]), ("tell me more about the first 2 ones", [0, 1]),
                             ("compare number 1 and number 4", [0, 3]), ("the second and the last one", [1, 4])):
        plan = planner.plan(question, history)
        assert [c["name"] for c in plan.calls] == ["get_customer"] * len(places), (question, plan)
        assert [c["args"]["customer_id"] for c in plan.calls] == [rows[i]["customer_id"] for i in places], question
    # "the top 3" alone is a shorter list, not three details
    assert one_call(planner.plan("just the top 3", history))[0] == "find_customers"


def test_a_campaign_follow_up_keeps_a_terse_budget_and_reads_a_what_if(planner):
    first = planner.plan("upgrade campaign silver 800", [])
    assert expect(first, "recommend_campaigns", {"budget": 800, "goal": "upgrade", "tiers": ["Silver"]})
    expect(planner.plan("same for france", [turn(first)]), "recommend_campaigns",
           {"budget": 800, "countries": ["France"], "tiers": ["Silver"]})
    for question, budget in (("and if we only had 500?", 500), ("what if we could spend 1.5k instead", 1500)):
        expect(planner.plan(question, [turn(first)]), "recommend_campaigns",
               {"budget": budget, "goal": "upgrade", "tiers": ["Silver"]})


def test_a_restated_audience_asks_the_previous_question_again(planner):
    summary = planner.plan("How many customers per tier?", [])
    expect(planner.plan("what about only the German customers?", [turn(summary)]), "segment_summary",
           {"countries": ["Germany"], "group_by": "tier"})
    breakdown = planner.plan("Break down value at risk by lifecycle stage.", [])
    expect(planner.plan("and just the Platinum clients?", [turn(breakdown)]), "segment_summary",
           {"tiers": ["Platinum"], "group_by": "lifecycle"})


@pytest.mark.parametrize("follow_up,limit,offset", [
    ("Show me the next 20.", 20, 20), ("and the next 10?", 10, 20), ("10 more please", 10, 20),
    ("next page", 20, 20), ("more of them", 20, 20), ("give me another 5", 5, 20)])
def test_the_next_rows_of_a_list(planner, follow_up, limit, offset):
    first = planner.plan("Top 20 customers by customer value in Germany", [])
    shown = {"customers": [{"customer_id": str(i)} for i in range(20)], "returned": 20}
    expect(planner.plan(follow_up, [turn(first, [shown])]), "find_customers",
           {"sort_by": "customer_value", "countries": ["Germany"], "offset": offset, "limit": limit})


def test_the_next_rows_after_a_page_and_a_refined_list_starts_again(planner):
    first = planner.plan("list lapsing customers, 10 of them", [])
    second = planner.plan("next 10", [turn(first, [{"customers": [{"customer_id": "1"}] * 10, "returned": 10}])])
    third = planner.plan("the next 10", [turn(second, [{"customers": [{"customer_id": "1"}] * 10, "returned": 10}])])
    expect(third, "find_customers", {"lifecycle": ["lapsing"], "offset": 20, "limit": 10})
    refined = planner.plan("only the gold ones", [turn(third)])
    assert "offset" not in expect(refined, "find_customers", {"tiers": ["Gold"]})
    # "the next 30 days" is a time, not rows
    assert planner.plan("who will buy in the next 30 days?", [turn(first)]).calls[0]["args"].get("offset") is None


@pytest.mark.parametrize("question,query_word,filters", [
    ("At-risk buyers who mostly buy candles and lighting.", "candle", {"at_risk": True}),
    ("which at risk customers buy lanterns?", "lantern", {"at_risk": True}),
    ("customers likely to churn who love mugs", "mug", {"min_churn_risk": 0.5}),
])
def test_product_interest_with_a_churn_qualifier_is_a_search(planner, question, query_word, filters):
    args = expect(planner.plan(question, []), "search_profiles", filters)
    assert query_word in args["query"]
