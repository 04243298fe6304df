"""The eval harness end to end on a scripted stand-in: query-file validation, the runner, metrics,
sessions, reports, gates and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from _eval_support import FIND_RESULT, has_row
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
