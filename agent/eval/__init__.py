"""Eval harness: replay scripted marketer queries through the agent and measure its answers.

`valuedesk eval --queries evals/queries.yaml --backend offline --json out.json` replays every case
(the turns of one case share a chat session), scores each turn against the case's expectations and
prints a markdown report; without --queries it runs the development set and the blind held-out set
(evals/heldout.yaml) and reports them side by side; `valuedesk eval --compare a.json b.json` puts
saved runs side by side.

Per turn the scorer checks
* tool selection: every expected tool was called, no other tool (unless allowed), no forbidden one;
* arguments: the key arguments of each expected call match (sets are order-insensitive, numbers and
  strings tolerant, see `matching.match_value`), judged on the calls the backend did make;
* kind: answer / clarify / refuse as expected;
* answer checks: ids and numbers that must appear (usually `$from_tool:` references into the tool
  output, since scores change when the model is retrained), phrases that must not appear;
* groundedness: every figure in the answer must appear in the tool outputs of that turn (or in the
  turn's tool arguments or the user's own words), compared at the precision the answer shows it;
* semantic checks, on every turn whatever its case expects (`semantics`): an answer to an at-risk
  question lists only customers whose rows say `at_risk` true; a campaign for a named goal or playbook
  has customers. A failed check fails the turn; each check is its own metric.

Modules, in the order a run uses them: `cases` (the query-file schema, loading, selection),
`references` (tool calls and `$from_tool:` JMESPath references into their results), `runner`
(replaying cases against a chat backend), `scoring` with `matching`, `groundedness` and `semantics`
(judging a turn), `report` (metrics, markdown, JSON, gates), `sets` (several query sets side by side,
gated per set) and `cli` (the `valuedesk eval` command). docs/EVAL.md is the user's guide.
"""

from agent.eval.cases import (
    DEFAULT_QUERIES,
    HELDOUT_QUERIES,
    Case,
    EvalError,
    TurnExpect,
    default_query_sets,
    load_cases,
    query_sets,
    select_cases,
)
from agent.eval.cli import register_eval, run_eval_command, service_for
from agent.eval.groundedness import Evidence, Grounding, figure_matches, groundedness
from agent.eval.matching import implied_args, match_args, match_value
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
from agent.eval.semantics import (
    asks_about_at_risk,
    at_risk_mention,
    check_at_risk_answer,
    check_campaign_non_empty,
    names_a_goal,
    semantic_checks,
)
from agent.eval.sets import combine_sets, parse_set_gates, set_gate_failures, set_reports, sets_markdown

__all__ = [
    "DEFAULT_QUERIES", "HELDOUT_QUERIES", "Call", "Case", "CaseResult", "EvalError", "Evidence", "Grounding",
    "TurnExpect", "TurnResult", "Unresolved", "asks_about_at_risk", "at_risk_mention", "check_at_risk_answer",
    "check_campaign_non_empty", "check_ref", "combine_sets", "compare_markdown", "default_query_sets",
    "figure_matches", "gate_failures", "groundedness", "implied_args", "load_cases", "load_report",
    "markdown_report", "match_args", "match_value", "names_a_goal", "parse_gates", "parse_ref",
    "parse_set_gates", "query_sets", "register_eval", "resolve", "run_case", "run_eval", "run_eval_command",
    "score_turn", "select_cases", "semantic_checks", "service_for", "set_gate_failures", "set_reports",
    "sets_markdown", "summarise", "vllm_token_counter", "write_json",
]
