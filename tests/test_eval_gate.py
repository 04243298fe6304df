"""The eval harness on a real build: the semantic answer checks judged on real tool output, the
offline-planner CI gate on the full query file, and a reported (not gated) vLLM subset run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from _eval_support import ScriptedService
from agent.eval import (
    DEFAULT_QUERIES,
    Call,
    check_at_risk_answer,
    check_campaign_non_empty,
    gate_failures,
    load_cases,
    markdown_report,
    match_args,
    parse_gates,
    run_eval,
    select_cases,
    vllm_token_counter,
)

REPO = Path(__file__).resolve().parent.parent
TEST_OUTPUT = REPO / "test-output"


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


def _tool_trace(settings, name: str, arguments: dict) -> dict:
    """A real tool call on the build, as the agent's trace records it."""
    from tools.registry import get_registry

    out = get_registry(settings).call(name, arguments)
    return {"name": name, "arguments": arguments, "result": out.result,
            "error": out.error.model_dump() if out.error else None}


def _ids(rows: list[dict]) -> list[str]:
    return [r["customer_id"] for r in rows]


def _one_turn_case(case_id: str, user: str, tool: str) -> dict:
    return {"id": case_id, "turns": [{"user": user, "expect": {"kind": "answer", "tools": [{"name": tool}]}}]}


@pytest.mark.timeout(2400)
def test_at_risk_answers_are_judged_on_the_rows_at_risk_flag(built_settings, tmp_path):
    """A transcript listing customers whose rows say at_risk false, or rows without the field, fails the
    at-risk check and its turn; the same question answered from at_risk true rows passes."""
    from predictor.customers.tiers import AT_RISK_STAGES

    at_risk = _tool_trace(built_settings, "find_customers", {"at_risk": True, "limit": 10})
    not_at_risk = _tool_trace(built_settings, "find_customers", {"at_risk": False, "limit": 10})
    rows_at_risk, rows_not = at_risk["result"]["customers"], not_at_risk["result"]["customers"]
    assert rows_at_risk and rows_not
    # The premise of the argument matcher: the flag selects a subset of the at-risk lifecycle stages.
    assert {r["lifecycle"] for r in rows_at_risk} <= set(AT_RISK_STAGES)
    assert match_args({"lifecycle": {"contains_any": list(AT_RISK_STAGES)}}, at_risk["arguments"]) == []
    stripped = {**at_risk, "result": {**at_risk["result"], "customers": [
        {k: v for k, v in row.items() if k != "at_risk"} for row in rows_at_risk]}}
    detail = _tool_trace(built_settings, "get_customer", {"customer_id": rows_not[0]["customer_id"]})
    script = {
        "Who are my at-risk customers?": ("At risk: " + ", ".join(_ids(rows_at_risk)), "answer", [at_risk]),
        "who is slipping away?": ("Slipping away: " + ", ".join(_ids(rows_not)), "answer", [not_at_risk]),
        "at-risk customers please": ("At risk: " + ", ".join(_ids(rows_at_risk)), "answer", [stripped]),
        "top at-risk customers and one more": (
            "At risk: " + ", ".join(_ids(rows_at_risk)) + f"; also {rows_not[0]['customer_id']}.", "answer",
            [at_risk, detail]),
    }
    cases = [_one_turn_case(f"case-{i}", user, "find_customers") for i, user in enumerate(script)]
    cases[3]["turns"][0]["expect"]["allow_extra_tools"] = ["get_customer"]
    path = tmp_path / "at_risk.yaml"
    path.write_text(yaml.safe_dump({"cases": cases}))
    report = run_eval(ScriptedService(script), load_cases(path), backend="scripted")
    assert report["tool_selection_accuracy"] == 1.0 and report["semantic_at_risk_answer_turns"] == 4
    assert [c["passed"] for c in report["results"]] == [True, False, False, False]
    problems = {f["case"]: " ".join(f["problems"]) for f in report["semantic_failures"]["at_risk_answer"]}
    assert "not at risk (at_risk false)" in problems["case-1"] and rows_not[0]["customer_id"] in problems["case-1"]
    assert "no at_risk field" in problems["case-2"]
    assert problems["case-3"] == f"the answer lists customers that are not at risk: {rows_not[0]['customer_id']}"


def test_an_at_risk_export_is_judged_on_its_rows(built_settings):
    export = Call(**_tool_trace(built_settings, "export_audience", {"at_risk": True}))
    problems = check_at_risk_answer("export the at-risk customers as a CSV", "Exported.", [export])
    if "at_risk" in export.result["columns"]:
        assert problems == []
    else:  # the file says nothing about the definition: the check cannot pass
        assert len(problems) == 1 and "export_audience rows carry no at_risk field" in problems[0]
    assert check_at_risk_answer("export the Gold customers", "Exported.", [export]) is None


def test_a_campaign_for_a_named_goal_must_have_customers(built_settings):
    plan = Call(**_tool_trace(built_settings, "recommend_campaigns", {"goal": "retain"}))
    assert plan.error is None and any(c["audience_size"] > 0 for c in plan.result["campaigns"])
    assert check_campaign_non_empty("Plan a retention campaign for my VIPs", [plan]) == []
    nobody = Call(**_tool_trace(built_settings, "recommend_campaigns", {"goal": "win_back", "min_value": 1e9}))
    problems = check_campaign_non_empty("Plan a win-back campaign for my biggest spenders", [nobody])
    assert len(problems) == 1 and problems[0].startswith("recommend_campaigns (goal win_back) returned")
    # The goal may come from the user's words alone; a retry that finds customers answers the question.
    unnamed = Call(**{**nobody.model_dump(), "arguments": {"min_value": 1e9}})
    assert check_campaign_non_empty("plan a reactivation campaign", [unnamed]) != []
    assert check_campaign_non_empty("plan a reactivation campaign", [unnamed, plan]) == []
    assert check_campaign_non_empty("what should I do?", [unnamed]) is None
    # A request refused as invalid (a negative budget) is not a plan: the kind check judges it.
    refused = Call(**_tool_trace(built_settings, "recommend_campaigns", {"goal": "win_back", "budget": -5}))
    assert refused.error["code"] == "invalid_arguments"
    assert check_campaign_non_empty("plan a win-back campaign with -5 pounds", [refused]) is None


@pytest.mark.timeout(2400)
def test_the_offline_agent_answers_at_risk_questions_with_at_risk_customers(built_settings, tmp_path):
    """The product's headline questions, through the offline planner on the real build: every at-risk
    answer passes the semantic check (the planner may change; the check's verdict is what is asserted)."""
    from agent.service import AgentService

    cases = [_one_turn_case("ui-example", "Who are my at-risk top customers?", "find_customers"),
             _one_turn_case("readme-wording", "show me the customers who are slipping away", "find_customers"),
             {"id": "follow-up", "turns": [
                 {"user": "at-risk customers in the United Kingdom",
                  "expect": {"kind": "answer", "tools": [{"name": "find_customers"}]}},
                 {"user": "which of them are Gold?",
                  "expect": {"kind": "answer", "tools": [{"name": "find_customers"}]}}]}]
    path = tmp_path / "headline.yaml"
    path.write_text(yaml.safe_dump({"cases": cases}))
    service = AgentService(built_settings.model_copy(update={"llm_backend": "offline"}))
    report = run_eval(service, load_cases(path), backend="offline")
    failures = report["semantic_failures"]["at_risk_answer"]
    assert report["semantic_at_risk_answer_turns"] == 4, [t["tools_called"] for c in report["results"] for t in c["turns"]]
    assert report["semantic_at_risk_answer_accuracy"] == 1.0, failures


# The data build (model, tables, MiniLM index) takes a few CPU minutes; more on a shared machine.
@pytest.mark.timeout(2400)
def test_ci_gate_offline_planner_full_query_file(built_settings):
    """CI GATE: the offline planner over the whole query file must reach tool selection >= 95%,
    arguments >= 90%, groundedness 100%, and every at-risk answer must list only at-risk customers.
    The non-empty campaign check is printed, not gated (on this one-in-four sample a follow-up's
    audience can be a single customer no playbook pays for). Skipped only when agent.service cannot be
    imported."""
    service_mod = pytest.importorskip("agent.service", reason="agent.service is not importable yet")
    service = service_mod.AgentService(built_settings.model_copy(update={"llm_backend": "offline"}))
    report = run_eval(service, load_cases(DEFAULT_QUERIES), backend="offline", model="valuedesk-planner",
                      queries=str(DEFAULT_QUERIES))
    path = _write_output("eval_offline.json", report)
    shown = ('cases', 'cases_passed', 'tool_selection_accuracy', 'argument_accuracy', 'groundedness', 'refusal_accuracy',
             'clarification_accuracy', 'semantic_at_risk_answer_accuracy', 'semantic_campaign_non_empty_accuracy',
             'latency_p50_ms', 'latency_p95_ms')
    print(f"\noffline planner: {json.dumps({k: report[k] for k in shown})} ({path})")
    failures = gate_failures(report, parse_gates("tool_selection=0.95,arguments=0.9,groundedness=1,at_risk_answers=1"))
    assert not failures, f"{failures}; failed turns in {path.with_suffix('.md')}"


from vllm_fixture import requires_vllm  # noqa: E402


@requires_vllm
@pytest.mark.timeout(2400)
def test_vllm_smoke_subset_reports_accuracy(built_settings, vllm_server):
    """REPORT ONLY (not a gate): the real vLLM CPU model on the first smoke case (VALUEDESK_EVAL_VLLM_CASES,
    default 1: a CPU model takes over a minute a turn on CI's 2 cores, and make test must stay under
    25 minutes; `valuedesk eval --backend vllm` runs the whole file). The harness's scoring over many
    cases is tested with the offline planner above; here it is the real server's path. Prints and saves
    its scores. The agent runs with
    its configured settings (VALUEDESK_AGENT_* apply), so the report shows what a user would get."""
    from agent.service import AgentService

    settings = built_settings.model_copy(update={"llm_backend": "vllm", "llm_base_url": vllm_server.base_url,
                                                 "llm_model": vllm_server.model})
    cases = select_cases(load_cases(DEFAULT_QUERIES), tags=["smoke"],
                         limit=int(os.environ.get("VALUEDESK_EVAL_VLLM_CASES", "1")))
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
