"""The eval harness end to end on a scripted stand-in: query-file validation, the runner, metrics,
sessions, reports, gates and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from _eval_support import FIND_RESULT, ScriptedService, has_row
from agent.eval import (
    DEFAULT_QUERIES,
    EvalError,
    compare_markdown,
    gate_failures,
    load_cases,
    markdown_report,
    parse_gates,
    register_eval,
    run_eval,
    select_cases,
)



# ------------------------------------------------------------------ argument matching


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


CASES_YAML = {"cases": [
    {"id": "multi", "tags": ["multi_turn"], "turns": [
        {"user": "top 3 by value at risk", "expect": {"kind": "answer", "tools": [
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
    "top 3 by value at risk": ("Top by value at risk: 14646, 17850 and 12347 (4,372 match).", "answer",
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


# ------------------------------------------------------------------ semantic checks in the report


SEMANTIC_YAML = {"cases": [
    {"id": "at-risk", "tags": ["plain"], "turns": [
        {"user": "Who are my at-risk customers?", "expect": {"kind": "answer", "tools": [{"name": "find_customers"}]}}]},
    {"id": "win-back", "tags": ["plain"], "turns": [
        {"user": "Plan a win-back campaign", "expect": {"kind": "answer", "tools": [{"name": "recommend_campaigns"}]}}]},
    {"id": "any-campaign", "tags": ["plain"], "turns": [
        {"user": "what should I do next?", "expect": {"kind": "answer", "tools": [{"name": "recommend_campaigns"}]}}]},
]}
EMPTY_PLAN = {"campaigns": [], "total_cost": 0.0, "expected_net_value": 0.0, "currency": "GBP"}
SEMANTIC_SCRIPT = {
    # FIND_RESULT's rows carry no at_risk field: the check cannot pass on them.
    "Who are my at-risk customers?": ("At risk: 14646, 17850 and 12347.", "answer",
                                      [{"name": "find_customers", "arguments": {"at_risk": True},
                                        "result": FIND_RESULT}]),
    "Plan a win-back campaign": ("No campaign could be planned.", "answer",
                                 [{"name": "recommend_campaigns", "arguments": {"goal": "win_back"},
                                   "result": EMPTY_PLAN}]),
    # No goal asked for or passed: the non-empty rule does not apply.
    "what should I do next?": ("No campaign could be planned.", "answer",
                               [{"name": "recommend_campaigns", "arguments": {}, "result": EMPTY_PLAN}]),
}


def test_semantic_checks_are_metrics_and_fail_their_turns(tmp_path):
    path = _write_cases(tmp_path, SEMANTIC_YAML["cases"])
    report = run_eval(ScriptedService(SEMANTIC_SCRIPT), load_cases(path), backend="scripted")
    assert report["tool_selection_accuracy"] == 1.0 and report["groundedness"] == 1.0
    assert report["cases_passed"] == 1  # only the case no semantic rule applies to
    assert report["semantic_at_risk_answer_turns"] == 1 and report["semantic_at_risk_answer_accuracy"] == 0.0
    assert report["semantic_campaign_non_empty_turns"] == 1 and report["semantic_campaign_non_empty_accuracy"] == 0.0
    [at_risk] = report["semantic_failures"]["at_risk_answer"]
    assert at_risk["case"] == "at-risk" and "no at_risk field" in at_risk["problems"][0]
    [campaign] = report["semantic_failures"]["campaign_non_empty"]
    assert campaign["case"] == "win-back" and "goal win_back" in campaign["problems"][0]
    md = markdown_report(report)
    assert has_row(md, "semantic: at-risk answers", "0.0%") and has_row(md, "semantic: campaign not empty", "0.0%")
    assert "#### campaign_non_empty failures (1)" not in md and "### campaign_non_empty failures (1)" in md
    assert "`win-back` turn 1" in md.split("## Failed turns")[1]


# ------------------------------------------------------------------ several query sets


def _two_sets(tmp_path: Path) -> tuple[Path, Path]:
    dev = tmp_path / "dev.yaml"
    dev.write_text(yaml.safe_dump(CASES_YAML))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(SEMANTIC_YAML))
    return dev, other


def _scripted(monkeypatch):
    import agent.eval.cli as eval_cli

    monkeypatch.setattr(eval_cli, "service_for", lambda settings, backend, base_url=None, model=None:
                        ScriptedService({**SCRIPT, **SEMANTIC_SCRIPT}))


def test_cli_runs_several_sets_side_by_side(tmp_path, monkeypatch, capsys):
    _scripted(monkeypatch)
    dev, other = _two_sets(tmp_path)
    out = tmp_path / "sets.json"
    assert _cli(["--queries", f"dev={dev}", "--queries", str(other), "--json", str(out), "--quiet"]) == 0
    md = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["labels"] == ["dev", "other"] and set(report["sets"]) == {"dev", "other"}
    assert report["sets"]["dev"]["cases"] == 4 and report["sets"]["other"]["cases"] == 3
    assert has_row(md, "metric", "dev", "other") and has_row(md, "tool selection", "80.0%", "100.0%")
    assert has_row(md, "semantic: at-risk answers", "n/a", "0.0%")
    assert "### Failed turns: dev (2)" in md and "### Failed turns: other (2)" in md
    # nargs: one --queries with two files reads the same; a repeated file gets its own label.
    assert _cli(["--queries", str(dev), str(dev), "--json", str(tmp_path / "twice.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "twice.json").read_text())["labels"] == ["dev", "dev-2"]
    # A saved multi-set report compares as one column per set.
    capsys.readouterr()
    assert _cli(["--compare", str(out)]) == 0
    assert has_row(capsys.readouterr().out, "tool selection", "80.0%", "100.0%")


def test_gates_apply_to_each_set_or_to_the_one_named(tmp_path, monkeypatch, capsys):
    _scripted(monkeypatch)
    dev, other = _two_sets(tmp_path)
    run = ["--queries", f"dev={dev}", f"other={other}", "--json", str(tmp_path / "g.json"), "--quiet", "--fail-under"]
    assert _cli([*run, "other:tool_selection=0.95"]) == 0
    assert _cli([*run, "tool_selection=0.95"]) == 1
    assert "dev: tool_selection_accuracy 80.0% < 95%" in capsys.readouterr().err
    assert _cli([*run, "other:at_risk_answers=1"]) == 1
    err = capsys.readouterr().err
    assert "other: semantic_at_risk_answer_accuracy 0.0%" in err and "dev:" not in err
    with pytest.raises(EvalError, match="no query set labelled 'held-out'"):
        _cli([*run, "held-out:arguments=0.9"])


def test_the_default_run_is_the_development_and_the_held_out_set(tmp_path, monkeypatch):
    import agent.eval.cases as eval_cases

    _scripted(monkeypatch)
    dev, other = _two_sets(tmp_path)
    monkeypatch.setattr(eval_cases, "DEFAULT_QUERIES", dev)
    monkeypatch.setattr(eval_cases, "HELDOUT_QUERIES", other)
    out = tmp_path / "default.json"
    assert _cli(["--json", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["labels"] == ["development", "held-out"]
    # Without the held-out file the default is the development set alone, in the single-set shape.
    monkeypatch.setattr(eval_cases, "HELDOUT_QUERIES", tmp_path / "absent.yaml")
    assert _cli(["--json", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["cases"] == 4
    # --ids picks cases from whichever set holds them.
    monkeypatch.setattr(eval_cases, "HELDOUT_QUERIES", other)
    assert _cli(["--json", str(out), "--quiet", "--ids", "refuse,win-back"]) == 0
    picked = json.loads(out.read_text())
    assert {label: r["cases"] for label, r in picked["sets"].items()} == {"development": 1, "held-out": 1}


def test_a_blind_set_prints_aggregates_only(tmp_path, monkeypatch, capsys):
    # Whoever runs the eval must not read a held-out set's failing cases (or their ids) on the console:
    # the next tuning round is judged on it blind. The JSON keeps them.
    _scripted(monkeypatch)
    dev, other = _two_sets(tmp_path)
    out = tmp_path / "blind.json"
    assert _cli(["--queries", f"dev={dev}", "--queries", f"held-out-x={other}", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    report = json.loads(out.read_text())
    blind_ids = [c["id"] for c in report["sets"]["held-out-x"]["results"]]
    failed = [c["id"] for c in report["sets"]["held-out-x"]["results"] if not c["passed"]]
    assert failed  # the set has failing cases to hide
    assert "### Failed turns: dev" in captured.out and "Cases of the blind set `held-out-x` are not printed" in captured.out
    assert has_row(captured.out, "tool selection", "80.0%", "100.0%")  # its aggregate figures are printed
    for case_id in blind_ids:  # as failure listings (`id` turn n) and progress lines (FAIL [set] id) name them
        assert f"`{case_id}`" not in captured.out and f"] {case_id}\n" not in captured.err
    # A blind set run alone: the same.
    assert _cli(["--queries", f"held-out-x={other}", "--json", str(tmp_path / "alone.json")]) == 0
    alone = capsys.readouterr()
    assert "not printed" in alone.out
    assert not any(f"`{i}`" in alone.out or f" {i}\n" in alone.err for i in blind_ids)
