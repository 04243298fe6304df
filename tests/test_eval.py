"""The eval harness (agent/eval/): argument and value matching, references into tool results,
groundedness of answers and turn scoring."""

from __future__ import annotations


import pytest

from _eval_support import FIND_RESULT
from agent.eval import (
    Call,
    Evidence,
    TurnExpect,
    Unresolved,
    asks_about_at_risk,
    at_risk_mention,
    check_ref,
    groundedness,
    match_args,
    match_value,
    names_a_goal,
    resolve,
    score_turn,
)



def expect(**kw) -> TurnExpect:
    return TurnExpect.model_validate(kw)


# ------------------------------------------------------------------ argument matching


@pytest.mark.parametrize("expected,actual,ok", [
    (["Gold", "Platinum"], ["platinum", "Gold"], True),           # order- and case-insensitive set
    (["Gold", "Platinum"], ["Gold"], False),                      # a missing member is wrong
    (["Gold"], ["Gold", "Silver"], False),                        # an extra member is wrong for a set
    (["at risk"], ["at_risk"], True),                             # separators normalised
    (["Can't Lose Them"], ["can\u2019t lose them"], True),        # typographic apostrophe
    (2000, 2000.0, True),
    (2000, "2000", True),
    (2000, 2100, False),
    ("12347", 12347, True),                                       # an id sent as a number
    ({"approx": 0.7}, 0.71, True),                                # default 2% relative tolerance
    ({"approx": 0.7}, 0.75, False),
    ({"approx": 0.7, "tol": 0.1}, 0.75, True),
    ({"range": [85, 95]}, 90, True),
    ({"range": [85, 95]}, 180, False),
    ({"one_of": ["value_at_risk", None]}, None, True),            # null option = argument left out
    ({"one_of": ["value_at_risk", None]}, "churn_risk", False),
    ({"one_of": [["EIRE"], ["Ireland"]]}, ["ireland"], True),
    ({"contains": ["Gold"]}, ["Silver", "Gold"], True),
    ({"contains": ["Gold"]}, ["Silver"], False),
    ({"contains_any": ["tea", "cup"]}, "Vintage Tea Sets", True),
    ({"contains_any": ["tea"]}, "cake stands", False),
    ({"absent": True}, None, True),
    ({"absent": True}, ["Gold"], False),
    ({"len": 2}, [1, 2], True),
    ({"len": 2}, [1], False),
])
def test_match_value_tolerance_rules(expected, actual, ok):
    assert match_value(expected, actual)[0] is ok


def test_items_match_order_insensitive_and_distinct():
    orders = [{"timestamp": "2011-04-10", "amount": 80.0}, {"timestamp": "2011-03-03T00:00:00", "amount": 120}]
    spec = {"items": [{"amount": 120, "timestamp": {"startswith": "2011-03-03"}},
                      {"amount": 80, "timestamp": {"startswith": "2011-04-10"}}]}
    assert match_value(spec, orders)[0]
    # Two specs cannot both be satisfied by the same order.
    twice = {"items": [{"amount": 80}, {"amount": 80}]}
    assert not match_value(twice, orders)[0]


def test_match_args_only_checks_key_arguments_and_explains_mismatch():
    actual = {"tiers": ["Platinum"], "lifecycle": ["lapsing"], "limit": 20, "sort_by": "value_at_risk"}
    assert match_args({"tiers": ["Platinum"], "lifecycle": ["lapsing"]}, actual) == []
    problems = match_args({"tiers": ["Gold"], "limit": 20}, actual)
    assert len(problems) == 1 and problems[0].startswith("tiers:")


@pytest.mark.parametrize("expected,ok", [
    ({"contains_any": ["at risk", "lapsing"]}, True),             # how the held-out set writes an at-risk turn
    (["lapsing", "at risk"], True),                               # exactly the stages the flag implies
    ({"contains": ["lapsing"]}, True),
    (["lapsing"], False),                                         # the flag also keeps "at risk" customers
    (["active"], False),
    ({"absent": True}, False),                                    # the flag restricts the lifecycle
    ({"one_of": [["at risk", "lapsing"], None]}, True),
])
def test_at_risk_flag_meets_lifecycle_expectations_its_definition_implies(expected, ok):
    assert (match_args({"lifecycle": expected}, {"at_risk": True, "tiers": ["Gold"]}) == []) is ok
    # Only where the call names no lifecycle of its own, and only for at_risk true.
    assert match_args({"lifecycle": ["lapsing"]}, {"at_risk": True, "lifecycle": ["lapsing"]}) == []
    assert match_args({"lifecycle": {"contains_any": ["at risk"]}}, {"at_risk": False}) != []


def test_an_expected_at_risk_flag_is_met_by_the_flag_only():
    assert match_args({"at_risk": True}, {"at_risk": True}) == []
    for actual in ({"lifecycle": ["at risk", "lapsing"]}, {"at_risk": 1}, {"at_risk": "true"}, {"at_risk": False}):
        problems = match_args({"at_risk": True}, actual)
        assert len(problems) == 1 and problems[0].startswith("at_risk:"), actual


def test_the_expansion_uses_the_one_definition_of_the_stages():
    from predictor.customers.tiers import AT_RISK_STAGES

    problems = match_args({"lifecycle": ["new"]}, {"at_risk": True})
    assert problems and all(stage in problems[0] for stage in AT_RISK_STAGES) and "implied by at_risk" in problems[0]


def test_references_resolve_this_turn_first_then_earlier_turns():
    earlier = [Call(name="find_customers", arguments={}, result=FIND_RESULT)]
    later_result = {**FIND_RESULT, "customers": FIND_RESULT["customers"][1:]}
    now = [Call(name="find_customers", arguments={}, result=later_result)]
    ref = "$from_tool:find_customers:customers[0].customer_id"
    assert resolve(ref, [earlier]) == "14646"
    assert resolve(ref, [earlier, now]) == "17850"
    assert resolve("$from_tool:find_customers:customers[:2].customer_id", [earlier]) == ["14646", "17850"]
    assert resolve("$from_tool:find_customers:customers[*].tier", [earlier]) == ["Platinum", "Gold", "Silver"]
    # A failed call is not a source.
    failed = [Call(name="find_customers", arguments={}, result=None, error={"code": "not_built"})]
    assert resolve(ref, [earlier, failed]) == "14646"
    ok, why = match_value(ref, "14646", [[Call(name="get_customer", result={"customer_id": "1"})]])
    assert not ok and "unresolved" in why


def test_reference_paths_are_checked_against_the_tool_result_models():
    check_ref("$from_tool:find_customers:customers[:3].customer_id")
    check_ref("$from_tool:recommend_campaigns:campaigns[0].customer_ids[:3]")
    with pytest.raises(ValueError, match="no field 'customer'"):
        check_ref("$from_tool:find_customers:customer[0].customer_id")
    with pytest.raises(ValueError, match="not a list"):
        check_ref("$from_tool:find_customers:total_matching[0]")
    with pytest.raises(ValueError, match="bad reference"):
        check_ref("$from_tool:find_customers")
    # Paths are JMESPath; only the steps the checker can follow against a model are accepted.
    with pytest.raises(ValueError, match="not supported"):
        check_ref("$from_tool:find_customers:customers[?tier=='Gold'].customer_id")
    with pytest.raises(ValueError, match="bad path"):
        check_ref("$from_tool:find_customers:customers[0")


def test_a_reference_to_nothing_is_unresolved_not_none():
    calls = [[Call(name="find_customers", arguments={}, result=FIND_RESULT)]]
    with pytest.raises(Unresolved, match="nothing at"):
        resolve("$from_tool:find_customers:customers[7].customer_id", calls)
    with pytest.raises(Unresolved, match="nothing at"):
        resolve("$from_tool:find_customers:segments", calls)
    assert resolve("$from_tool:find_customers:customers[-1].tier", calls) == "Silver"
    assert resolve("$from_tool:find_customers:customers[5:].tier", calls) == []


# ------------------------------------------------------------------ groundedness


@pytest.mark.parametrize("answer", [
    "Customer 14646 has £123,456.79 predicted.",                  # thousands separators, 2 decimals
    "Customer 14646 has £123,457 predicted.",                     # rounded to the pound
    "Customer 14646 has £123,456 predicted.",                     # truncated to the pound
    "Customer 14646 has about £123.5k predicted.",                # k suffix at the shown precision
    "Customer 14646 has about £0.12m predicted.",
    "Churn risk 94% for 17850.",                                  # fraction shown as a percentage
    "Churn risk 94.1% for 17850.",
    "Churn risk 0.94 for 17850.",                                 # fraction rounded
    "Value at risk £1,234.50 for 17850.",                         # 1234.5 == £1,234.50
    "4,372 customers match; the last order was on 8 December 2011 (2011-12-08).",
    "Last order in Feb 2011.",
    "Last orders on Dec. 7th, 2011 and the 10th of February 2011.",  # written dates, any month spelling
    "1. 14646\n2. 17850\n3. 12347",                               # list markers are layout, not claims
    "Over the next 180 days, Silver customer 12347 is worth £1,520.",
])
def test_grounded_answers(answer):
    g = groundedness(answer, Evidence().add(FIND_RESULT))
    assert g.figures > 0 and g.ungrounded == [], g


@pytest.mark.parametrize("answer,bad", [
    ("Customer 14646 has £123,458 predicted.", "£123,458"),       # off by more than the shown precision
    ("Churn risk 95% for 17850.", "95%"),
    ("Value at risk £1,235.50 for 17850.", "£1,235.50"),
    ("Customer 99999 is new.", "99999"),                          # an id no tool returned
    ("The last order was on 9 December 2011.", "9 December 2011"),
    ("Nothing ordered since SEPT 2011.", "SEPT 2011"),
    ("Revenue will grow 12% next year.", "12%"),
])
def test_ungrounded_figures_are_reported(answer, bad):
    g = groundedness(answer, Evidence().add(FIND_RESULT))
    assert bad in g.ungrounded and g.grounded == g.figures - len(g.ungrounded)


def test_names_with_digits_are_not_figures_and_user_numbers_count():
    g = groundedness("The P10-P90 interval uses revenue_12m and the f_score.", Evidence())
    assert g.figures == 0
    ev = Evidence().add("Show me the top 50 customers")
    assert groundedness("Here are the top 50 customers.", ev).ungrounded == []


def test_a_field_named_for_its_period_backs_the_period():
    row = {"group": "Gold", "revenue_12m": 1492688.79}
    answer = "Gold: revenue over the last 12 months £1,492,689."
    assert groundedness(answer, Evidence().add(row)).ungrounded == []
    assert groundedness(answer, Evidence().add({"group": "Gold", "revenue": 1492688.79})).ungrounded == ["12"]


# ------------------------------------------------------------------ semantic checks: which turns they apply to


@pytest.mark.parametrize("message,mention", [
    ("Who are my at-risk top customers?", True),                  # the UI's first example
    ("custmers at risk in france pls", True),
    ("export the at-risk Platinum customers as a CSV", True),
    ("Who is slipping away?", True),                              # the README's wording
    ("AT RISK gold customers", True),
    ("At risk customers in Germany", True),                       # sentence start, not the segment's name
    ("high value customers at risk of churning", True),
    ("what are the sales from at-risk customers?", True),
    ("Top customers by value at risk", False),
    ("How much revenue do we have at risk?", False),
    ("value-at-risk by tier", False),
    ("show value_at_risk for gold", False),
    ("Which customers are not at risk?", False),
    ("customers in the At Risk segment", False),                  # the RFM segment by name
    ("List the At Risk and Can't Lose Them customers", False),
    ("Show me the 'At Risk' RFM segment", False),
    ("Silver tier customers in the at risk stage", False),        # the lifecycle stage by name
    ("Top 20 customers by predicted value", None),
])
def test_which_messages_ask_about_at_risk_customers(message, mention):
    assert at_risk_mention(message) is mention


def test_a_follow_up_that_refers_back_keeps_the_at_risk_question():
    first = ["Who are my at-risk top customers?"]
    assert asks_about_at_risk("which of them are in Germany?", first)
    assert not asks_about_at_risk("top 10 by predicted value in Germany", first)
    assert not asks_about_at_risk("which of them are in Germany?", ["Top 20 by predicted value"])
    assert not asks_about_at_risk("which of them are not at risk?", first)


@pytest.mark.parametrize("message,named", [
    ("Plan a win-back campaign for lapsed gold customers with a £2,000 budget", True),
    ("What campaign should I run to keep my VIPs from churning?", True),
    ("set up a reactivation push for dormant buyers", True),
    ("plan a cross sell for silver", True),
    ("what should I do about my customers?", False),
    ("keep it short", False),
])
def test_which_messages_name_a_campaign_goal(message, named):
    assert names_a_goal(message) is named


# ------------------------------------------------------------------ turn scoring


def test_tool_selection_extra_forbidden_and_alternatives():
    exp = expect(kind="answer", tools=[{"name": "find_customers", "args": {"limit": 20}}])
    good = [Call(name="find_customers", arguments={"limit": 20}, result=FIND_RESULT)]
    r = score_turn(exp, "top 20", "Top: 14646.", "answer", good, [])
    assert r.tool_selection_ok and r.arg_checks == 1 and r.arg_matches == 1 and r.passed

    extra = good + [Call(name="model_report", result={})]
    r = score_turn(exp, "top 20", "Top: 14646.", "answer", extra, [])
    assert not r.tool_selection_ok and "unexpected call to model_report" in r.tool_problems

    wrong_args = [Call(name="find_customers", arguments={"limit": 10}, result=FIND_RESULT)]
    r = score_turn(exp, "top 20", "Top: 14646.", "answer", wrong_args, [])
    assert r.tool_selection_ok and r.arg_matches == 0 and not r.passed

    # Arguments are judged only on calls made: a missed call is a selection error, not an argument one.
    r = score_turn(exp, "top 20", "I don't know.", "answer", [], [])
    assert not r.tool_selection_ok and r.arg_checks == 0

    alt = expect(kind="answer", tools_any_of=[[{"name": "segment_summary"}],
                                              [{"name": "find_customers", "args": {"tiers": ["Platinum"]}}]])
    calls = [Call(name="find_customers", arguments={"tiers": ["platinum"]}, result=FIND_RESULT)]
    r = score_turn(alt, "how many platinum", "4,372 customers.", "answer", calls, [])
    assert r.tool_selection_ok and r.arg_matches == 1 and r.passed

    # Alternatives naming the same tool with different arguments: the arguments are judged against the
    # alternative they fit, wherever it is listed.
    same_tool = expect(kind="answer", tools_any_of=[
        [{"name": "find_customers", "args": {"lifecycle": ["lapsed"]}}],
        [{"name": "find_customers", "args": {"segments": ["Lost"]}}]])
    lost = [Call(name="find_customers", arguments={"segments": ["Lost"]}, result=FIND_RESULT)]
    r = score_turn(same_tool, "who have we lost", "4,372 customers.", "answer", lost, [])
    assert r.tool_selection_ok and (r.arg_checks, r.arg_matches) == (1, 1) and r.passed
    neither = [Call(name="find_customers", arguments={"tiers": ["Gold"]}, result=FIND_RESULT)]
    r = score_turn(same_tool, "who have we lost", "4,372 customers.", "answer", neither, [])
    assert r.arg_matches == 0 and not r.passed and "lifecycle" in " ".join(r.arg_problems)

    refuse = expect(kind="refuse", tools=[], forbid_tools=["export_audience"])
    r = score_turn(refuse, "email it out", "Sorry, I can't send data anywhere.", "refuse",
                   [Call(name="export_audience", result={"path": "x.csv", "rows": 1, "columns": [], "preview": []})], [])
    assert not r.tool_selection_ok and "forbidden call to export_audience" in r.tool_problems
    assert not score_turn(refuse, "email it out", "Here you go.", "answer", [], []).kind_ok


def test_answer_checks_ids_numbers_phrases_and_grounding():
    calls = [Call(name="find_customers", arguments={}, result=FIND_RESULT)]
    exp = expect(kind="answer", tools=[{"name": "find_customers"}], answer={
        "must_contain_ids": ["$from_tool:find_customers:customers[:2].customer_id"],
        "must_contain_numbers": ["$from_tool:find_customers:total_matching"],
        "must_not_contain": ["I have sent"]})
    good = "4,372 customers match; the top two are 14646 and 17850."
    assert score_turn(exp, "q", good, "answer", calls, []).answer_ok
    missing_id = "4,372 customers match; the top one is 14646."
    r = score_turn(exp, "q", missing_id, "answer", calls, [])
    assert not r.answer_ok and any("17850" in p for p in r.answer_problems)
    r = score_turn(exp, "q", good + " I have sent them to bob.", "answer", calls, [])
    assert any("forbidden phrase" in p for p in r.answer_problems)
    # Numbers must match the tool output by default for answers: an invented figure fails the turn.
    r = score_turn(exp, "q", good + " Revenue grows 12%.", "answer", calls, [])
    assert not r.answer_ok and r.ungrounded == ["12%"]
    # ...but not for a refusal, unless the case asks for it.
    refuse = expect(kind="refuse", tools=[])
    assert score_turn(refuse, "q", "I cannot help with 2013 figures.", "refuse", [], []).answer_ok


# ------------------------------------------------------------------ query file schema
