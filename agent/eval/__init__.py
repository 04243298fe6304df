"""Eval harness: replay scripted marketer queries through the agent and measure its answers.

`valuedesk eval --queries evals/queries.yaml --backend offline --json out.json` replays every case
(the turns of one case share a chat session), scores each turn against the case's expectations and
prints a markdown report; `valuedesk eval --compare a.json b.json` puts runs side by side.

Per turn the scorer checks
* tool selection: every expected tool was called, no other tool (unless allowed), no forbidden one;
* arguments: the key arguments of each expected call match (sets are order-insensitive, numbers and
  strings tolerant, see `matching.match_value`), judged on the calls the backend did make;
* kind: answer / clarify / refuse as expected;
* answer checks: ids and numbers that must appear (usually `$from_tool:` references into the tool
  output, since scores change when the model is retrained), phrases that must not appear;
* groundedness: every figure in the answer must appear in the tool outputs of that turn (or in the
  turn's tool arguments or the user's own words), compared at the precision the answer shows it.

Modules, in the order a run uses them: `cases` (the query-file schema, loading, selection),
`references` (tool calls and `$from_tool:` JMESPath references into their results), `runner`
(replaying cases against a chat backend), `scoring` with `matching` and `groundedness` (judging a
turn), `report` (metrics, markdown, JSON, gates) and `cli` (the `valuedesk eval` command).
"""

from agent.eval.cases import DEFAULT_QUERIES, Case, EvalError, TurnExpect, load_cases, select_cases
from agent.eval.cli import register_eval, run_eval_command, service_for
from agent.eval.groundedness import Evidence, Grounding, figure_matches, groundedness
from agent.eval.matching import match_args, match_value
from agent.eval.references import Call, Unresolved, check_ref, parse_ref, resolve
from agent.eval.report import (
    compare_markdown,
    gate_failures,
    load_report,
    markdown_report,
    parse_gates,
    summarise,
    write_json,
)
from agent.eval.runner import run_case, run_eval, vllm_token_counter
from agent.eval.scoring import CaseResult, TurnResult, score_turn

__all__ = [
    "DEFAULT_QUERIES", "Call", "Case", "CaseResult", "EvalError", "Evidence", "Grounding", "TurnExpect",
    "TurnResult", "Unresolved", "check_ref", "compare_markdown", "figure_matches",
    "gate_failures", "groundedness", "load_cases", "load_report", "markdown_report", "match_args",
    "match_value", "parse_gates", "parse_ref", "register_eval", "resolve", "run_case", "run_eval", "run_eval_command",
    "score_turn", "select_cases", "service_for", "summarise", "vllm_token_counter", "write_json",
]
