"""The eval harness (agent/eval/): matching rules, groundedness, query-file validation, the runner and
report on a scripted stand-in, the offline-planner CI gate, and a reported (not gated) vLLM subset run."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from agent.eval import (
    DEFAULT_QUERIES,
    Call,
    EvalError,
    Evidence,
    TurnExpect,
    Unresolved,
    check_ref,
    compare_markdown,
    gate_failures,
    groundedness,
    load_cases,
    markdown_report,
    match_args,
    match_value,
    parse_gates,
    register_eval,
    resolve,
    run_eval,
    score_turn,
    select_cases,
    vllm_token_counter,
)

REPO = Path(__file__).resolve().parent.parent
TEST_OUTPUT = REPO / "test-output"


def expect(**kw) -> TurnExpect:
    return TurnExpect.model_validate(kw)


def has_row(markdown: str, *cells: str) -> bool:
    """A table row with these cells, whatever the column padding."""
    pattern = r"^\|" + r"\|".join(rf" *{re.escape(c)} *" for c in cells) + r"\|$"
    return re.search(pattern, markdown, re.M) is not None


FIND_RESULT = {
    "total_matching": 4372, "returned": 3, "sort_by": "value_at_risk", "currency": "GBP", "horizon_days": 180,
    "customers": [
        {"customer_id": "14646", "tier": "Platinum", "predicted_value": 123456.789, "churn_risk": 0.0731,
         "value_at_risk": 9023.4, "last_order": "2011-12-08T12:12:00"},
        {"customer_id": "17850", "tier": "Gold", "predicted_value": 0.0, "churn_risk": 0.9412,
         "value_at_risk": 1234.5, "last_order": "2011-02-10T14:38:00"},
        {"customer_id": "12347", "tier": "Silver", "predicted_value": 1520.0, "churn_risk": 0.25,
         "value_at_risk": 380.0, "last_order": "2011-12-07T15:52:00"},
    ]}


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


def _write_cases(tmp_path: Path, cases: list[dict]) -> Path:
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump({"cases": cases}))
    return path


GOOD_CASE = {"id": "ok-case", "tags": ["x"], "turns": [
    {"user": "top 20", "expect": {"kind": "answer", "tools": [{"name": "find_customers", "args": {"limit": 20}}]}}]}


@pytest.mark.parametrize("mutate,field,message", [
    (lambda c: c["turns"][0]["expect"]["tools"][0]["args"].update(tier=["Gold"]),
     "turns.0.expect.tools.0", "has no argument 'tier'"),
    (lambda c: c["turns"][0]["expect"]["tools"][0].update(name="find_customer"),
     "turns.0.expect.tools.0", "unknown tool 'find_customer'"),
    (lambda c: c["turns"][0]["expect"].pop("kind"), "turns.0.expect.kind", "Field required"),
    (lambda c: c["turns"][0]["expect"].update(kind="maybe"), "turns.0.expect.kind", "answer"),
    (lambda c: c["turns"][0]["expect"].pop("tools"), "turns.0.expect", "exactly one of 'tools'"),
    (lambda c: c["turns"][0]["expect"]["tools"][0]["args"].update(limit={"aprox": 20}),
     "turns.0.expect.tools.0", "unknown matcher key"),
    (lambda c: c["turns"][0]["expect"].update(answer={"must_contain_ids": ["$from_tool:find_customers:ids[0]"]}),
     "turns.0.expect.answer.must_contain_ids", "has no field 'ids'"),
    (lambda c: c["turns"][0]["expect"].update(answr={}), "turns.0.expect.answr", "Extra inputs"),
    (lambda c: c.update(turns=[]), "turns", "at least 1"),
])
def test_bad_case_is_reported_by_id_and_field(tmp_path, mutate, field, message):
    import copy

    bad = copy.deepcopy(GOOD_CASE)
    bad["id"] = "broken-case"
    mutate(bad)
    path = _write_cases(tmp_path, [GOOD_CASE, bad])
    with pytest.raises(EvalError) as info:
        load_cases(path)
    text = str(info.value)
    assert "case 'broken-case' (cases[1])" in text and f"field {field}" in text and message in text
    assert "ok-case" not in text


def test_duplicate_ids_and_bad_files(tmp_path):
    with pytest.raises(EvalError, match="duplicate of cases\\[0\\]"):
        load_cases(_write_cases(tmp_path, [GOOD_CASE, GOOD_CASE]))
    with pytest.raises(EvalError, match="not found"):
        load_cases(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("cases: [\n")
    with pytest.raises(EvalError, match="not valid YAML"):
        load_cases(tmp_path / "bad.yaml")


def test_the_query_file_covers_every_tool_and_intent():
    from tools.registry import TOOLS

    cases = load_cases(DEFAULT_QUERIES)
    assert len(cases) >= 100
    tags = {t for c in cases for t in c.tags}
    intents = {"plain", "paraphrase", "typo", "non_native", "numbers_in_words", "dates_in_words", "multi_turn",
               "ambiguous", "out_of_scope", "adversarial", "smoke"}
    assert intents <= tags, intents - tags
    expected_tools = {t.name for c in cases for turn in c.turns for alt in turn.expect.alternatives for t in alt}
    assert expected_tools == {t.name for t in TOOLS}
    kinds = {k for c in cases for turn in c.turns for k in turn.expect.kinds}
    assert kinds == {"answer", "clarify", "refuse"}
    multi = [c for c in cases if len(c.turns) > 1]
    assert len(multi) >= 10 and all("multi_turn" in c.tags for c in multi)
    assert len(select_cases(cases, tags=["smoke"])) >= 10


# ------------------------------------------------------------------ runner on a scripted stand-in


class ScriptedService:
    """Stands in for AgentService in these tests only: replies are scripted per question."""

    def __init__(self, script: dict[str, tuple[str, str, list[dict]]]):
        self.script = script
        self.sessions: list[tuple[str, str]] = []
        self.resets: list[str] = []

    def reset(self, session_id: str) -> None:
        self.resets.append(session_id)

    def chat(self, message: str, session_id: str = "default"):
        self.sessions.append((session_id, message))
        if message not in self.script:
            raise RuntimeError("backend down")
        answer, kind, calls = self.script[message]
        return SimpleNamespace(answer=answer, kind=kind, unverified=[], latency_ms=1.0,
                               tool_calls=[SimpleNamespace(**{"error": None, "duration_ms": 1.0, **c}) for c in calls],
                               usage={"completion_tokens": len(answer.split())})


CASES_YAML = {"cases": [
    {"id": "multi", "tags": ["multi_turn"], "turns": [
        {"user": "top 3 at risk", "expect": {"kind": "answer", "tools": [
            {"name": "find_customers", "args": {"limit": 3}}],
            "answer": {"must_contain_ids": ["$from_tool:find_customers:customers[0].customer_id"]}}},
        {"user": "tell me about the first one", "expect": {"kind": "answer", "tools": [
            {"name": "get_customer",
             "args": {"customer_id": "$from_tool:find_customers:customers[0].customer_id"}}]}}]},
    {"id": "refuse", "tags": ["out_of_scope"], "turns": [
        {"user": "weather?", "expect": {"kind": "refuse", "tools": []}}]},
    {"id": "clarify", "tags": ["ambiguous"], "turns": [
        {"user": "what about them?", "expect": {"kind": "clarify", "tools": []}}]},
    {"id": "broken", "tags": ["plain"], "turns": [
        {"user": "unscripted", "expect": {"kind": "answer", "tools": [{"name": "model_report"}]}}]},
]}

SCRIPT = {
    "top 3 at risk": ("Top at risk: 14646, 17850 and 12347 (4,372 match).", "answer",
                      [{"name": "find_customers", "arguments": {"limit": 3}, "result": FIND_RESULT}]),
    "tell me about the first one": ("Customer 14646 is Platinum, churn risk 7%.", "answer",
                                    [{"name": "get_customer", "arguments": {"customer_id": "14646"},
                                      "result": {"customer_id": "14646", "churn_risk": 0.0731}}]),
    "weather?": ("Sorry, I can only help with customers and campaigns.", "refuse", []),
    # A clarification asked where one was due, but the second number (3) is not grounded.
    "what about them?": ("Which customers do you mean?", "answer", []),
}


def test_run_eval_metrics_sessions_and_report(tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(CASES_YAML))
    service = ScriptedService(SCRIPT)
    report = run_eval(service, load_cases(path), backend="scripted", model="stand-in")

    # Turns of one case share a session; each case has its own.
    sessions = [s for s, _ in service.sessions]
    assert sessions[0] == sessions[1] and len(set(sessions)) == 4
    assert set(service.resets) == set(sessions)

    for key in ("cases", "tool_selection_accuracy", "argument_accuracy", "groundedness", "latency_p50_ms",
                "latency_p95_ms", "refusal_accuracy", "clarification_accuracy", "tokens_per_answer", "backend",
                "model", "results"):
        assert key in report
    assert report["cases"] == 4 and report["turns"] == 5
    # The unscripted turn raised: recorded as an error that fails selection (model_report not called).
    assert report["errors"] == 1
    assert report["tool_selection_accuracy"] == pytest.approx(4 / 5)
    assert report["argument_accuracy"] == 1.0 and report["argument_checks"] == 2
    assert report["refusal_accuracy"] == 1.0
    assert report["clarification_accuracy"] == 0.0  # answered instead of asking
    assert report["groundedness"] == 1.0
    assert report["cases_passed"] == 2
    assert report["tokens_per_answer"] == pytest.approx(
        sum(len(SCRIPT[m][0].split()) for m in SCRIPT) / 4)
    by_id = {c["id"]: c for c in report["results"]}
    assert by_id["multi"]["passed"] and not by_id["clarify"]["passed"]
    assert by_id["broken"]["turns"][0]["error"].startswith("RuntimeError")

    md = markdown_report(report)
    assert has_row(md, "tool selection", "80.0%") and "`clarify` turn 1" in md

    other = json.loads(json.dumps(report))
    other.update(backend="other", tool_selection_accuracy=0.5)
    other["results"][0]["passed"] = False
    side = compare_markdown([report, other])
    assert has_row(side, "tool selection", "80.0%", "50.0%")
    assert has_row(side, "multi", "pass", "FAIL")


def test_tokens_fall_back_to_the_counter_without_usage(tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump({"cases": [CASES_YAML["cases"][1]]}))

    class NoUsage(ScriptedService):
        def chat(self, message, session_id="default"):
            reply = super().chat(message, session_id)
            reply.usage = None
            return reply

    offline = run_eval(NoUsage(SCRIPT), load_cases(path), backend="offline")
    assert offline["tokens_per_answer"] is None and offline["tokens_source"] is None
    counted = run_eval(NoUsage(SCRIPT), load_cases(path), backend="vllm", token_counter=lambda text: len(text))
    assert counted["tokens_per_answer"] == len(SCRIPT["weather?"][0]) and counted["tokens_source"] == "tokenize"


def test_agent_error_replies_count_as_errors(tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump({"cases": [CASES_YAML["cases"][1]]}))
    script = {"weather?": ("The agent failed unexpectedly (context length exceeded).", "error", [])}
    report = run_eval(ScriptedService(script), load_cases(path), backend="vllm")
    turn = report["results"][0]["turns"][0]
    assert report["errors"] == 1 and turn["error"].startswith("agent error: The agent failed")
    assert report["refusal_accuracy"] == 0.0 and report["cases_passed"] == 0


def test_gates():
    gates = parse_gates("tool_selection=0.95,arguments=0.9,groundedness=1")
    report = {"tool_selection_accuracy": 0.96, "argument_accuracy": 0.85, "groundedness": None}
    failures = gate_failures(report, gates)
    assert len(failures) == 2 and failures[0].startswith("argument_accuracy")
    with pytest.raises(EvalError, match="Unknown gate"):
        parse_gates("speed=1")


def _cli(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    register_eval(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", *argv])
    args.settings = SimpleNamespace()  # what the `valuedesk` entry point passes; the stand-in ignores it
    return args.handler(args)


def test_cli_runs_writes_json_and_compares(tmp_path, monkeypatch, capsys):
    import agent.eval.cli as eval_cli

    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(CASES_YAML))
    monkeypatch.setattr(eval_cli, "service_for",
                        lambda settings, backend, base_url=None, model=None: ScriptedService(SCRIPT))
    out = tmp_path / "a.json"
    rc = _cli(["--queries", str(path), "--backend", "offline", "--tags", "multi_turn,out_of_scope",
               "--json", str(out), "--markdown", str(tmp_path / "a.md"), "--quiet"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["cases"] == 2 and report["backend"] == "offline"
    assert (tmp_path / "a.md").read_text().startswith("# ValueDesk eval: offline")
    # A gate that is not met makes the command fail.
    assert _cli(["--queries", str(path), "--json", str(tmp_path / "b.json"), "--quiet",
                 "--fail-under", "tool_selection=0.95"]) == 1
    capsys.readouterr()
    assert _cli(["--compare", str(out), str(tmp_path / "b.json")]) == 0
    assert has_row(capsys.readouterr().out, "tool selection", "100.0%", "80.0%")
    with pytest.raises(EvalError, match="--json OUT is required"):
        _cli(["--queries", str(path)])


# ------------------------------------------------------------------ real runs on the built data

def _built_settings(tmp_path_factory):
    """A real `valuedesk build` (model, customer tables, profile index) on one Online Retail customer in four."""
    from _tiers_data import fast_config, sample_csv
    from agent.settings import AgentSettings
    from predictor.build import build

    # The agent's settings group (it extends the data and model settings the build reads).
    settings = AgentSettings(data_dir=tmp_path_factory.mktemp("eval_data"), threads=1)
    # Product suggestions and clusters do not change which tools a question needs; skipping them saves minutes.
    build(settings, data_path=sample_csv(), schema="online_retail", with_index=True, progress=False,
          with_suggestions=False, with_clusters=False, training_config=fast_config(settings))
    return settings


@pytest.fixture(scope="module")
def built_settings(tmp_path_factory):
    return _built_settings(tmp_path_factory)


def _write_output(name: str, report: dict) -> Path:
    from agent.eval import write_json

    path = TEST_OUTPUT / name
    write_json(report, path)
    (TEST_OUTPUT / name.replace(".json", ".md")).write_text(markdown_report(report))
    return path


# The data build (model, tables, MiniLM index) takes a few CPU minutes; more on a shared machine.
@pytest.mark.timeout(2400)
def test_ci_gate_offline_planner_full_query_file(built_settings):
    """CI GATE: the offline planner over the whole query file must reach tool selection >= 95%,
    arguments >= 90% and groundedness 100%. Skipped only when agent.service cannot be imported."""
    service_mod = pytest.importorskip("agent.service", reason="agent.service is not importable yet")
    service = service_mod.AgentService(built_settings.model_copy(update={"llm_backend": "offline"}))
    report = run_eval(service, load_cases(DEFAULT_QUERIES), backend="offline", model="valuedesk-planner",
                      queries=str(DEFAULT_QUERIES))
    path = _write_output("eval_offline.json", report)
    print(f"\noffline planner: {json.dumps({k: report[k] for k in ('cases', 'cases_passed', 'tool_selection_accuracy', 'argument_accuracy', 'groundedness', 'refusal_accuracy', 'clarification_accuracy', 'latency_p50_ms', 'latency_p95_ms')})} ({path})")
    failures = gate_failures(report, parse_gates("tool_selection=0.95,arguments=0.9,groundedness=1"))
    assert not failures, f"{failures}; failed turns in {path.with_suffix('.md')}"


from vllm_fixture import requires_vllm  # noqa: E402


@requires_vllm
@pytest.mark.timeout(2400)
def test_vllm_smoke_subset_reports_accuracy(built_settings, vllm_server):
    """REPORT ONLY (not a gate): the real vLLM CPU model on the first smoke cases (VALUEDESK_EVAL_VLLM_CASES,
    default 4: a CPU model takes up to a minute a turn); prints and saves its scores. The agent runs with
    its configured settings (VALUEDESK_AGENT_* apply), so the report shows what a user would get."""
    from agent.service import AgentService

    settings = built_settings.model_copy(update={"llm_backend": "vllm", "llm_base_url": vllm_server.base_url,
                                                 "llm_model": vllm_server.model})
    cases = select_cases(load_cases(DEFAULT_QUERIES), tags=["smoke"],
                         limit=int(os.environ.get("VALUEDESK_EVAL_VLLM_CASES", "4")))
    report = run_eval(AgentService(settings), cases, backend="vllm", model=vllm_server.model,
                      queries=str(DEFAULT_QUERIES),
                      token_counter=vllm_token_counter(vllm_server.base_url, vllm_server.model))
    path = _write_output("eval_vllm_smoke.json", report)
    print(f"\nvLLM {vllm_server.model} on {report['cases']} smoke cases: tool selection "
          f"{report['tool_selection_accuracy']}, arguments {report['argument_accuracy']}, groundedness "
          f"{report['groundedness']}, p50 {report['latency_p50_ms']} ms, {report['tokens_per_answer']} tokens "
          f"per answer ({path})")
    # Only the harness itself is asserted: every turn was replayed and scored, and the served
    # configuration fits the agent's prompt (a context overflow is a setup error, not model quality).
    assert report["turns"] == sum(len(c.turns) for c in cases)
    assert "maximum context length" not in path.with_suffix(".md").read_text()
