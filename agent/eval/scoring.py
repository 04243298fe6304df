"""Judging one turn of a case against its expectations: tool selection, arguments, the kind of reply
(answer / clarify / refuse), the answer checks, groundedness, and the semantic checks every turn gets
whatever its case expects (`semantics`: an at-risk answer lists only at-risk customers, a campaign for a
named goal is not empty)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agent.eval.cases import ToolExpect, TurnExpect
from agent.eval.groundedness import Evidence, Grounding, figure_matches, figures, groundedness
from agent.eval.matching import as_number, match_args
from agent.eval.references import Call, Unresolved, resolve
from agent.eval.semantics import semantic_checks


class TurnResult(BaseModel):
    turn: int
    user: str
    answer: str
    kind: str
    expected_kinds: list[str]
    kind_ok: bool
    tools_called: list[str]
    tool_calls: list[dict[str, Any]]
    tool_selection_ok: bool
    tool_problems: list[str] = Field(default_factory=list)
    arg_checks: int = 0
    arg_matches: int = 0
    arg_problems: list[str] = Field(default_factory=list)
    answer_ok: bool = True
    answer_problems: list[str] = Field(default_factory=list)
    figures: int = 0
    grounded: int = 0
    ungrounded: list[str] = Field(default_factory=list)
    agent_unverified: list[str] = Field(default_factory=list)
    # Semantic check name -> its problems (empty = passed), for the checks that applied to this turn.
    semantic_checks: dict[str, list[str]] = Field(default_factory=dict)
    latency_ms: float = 0.0
    completion_tokens: int | None = None
    # "usage": reported by the backend (every generated token); "tokenize": the answer text counted
    # with the model's tokenizer (tool-call tokens not included).
    tokens_source: str | None = None
    error: str | None = None
    passed: bool = False


class CaseResult(BaseModel):
    id: str
    tags: list[str]
    passed: bool
    turns: list[TurnResult]


def _norm_text(s: str) -> str:
    return re.sub(r"\s+", " ", s.replace("\u2019", "'")).lower()


def _flatten(v: Any) -> list[Any]:
    return [x for item in v for x in _flatten(item)] if isinstance(v, list) else [v]


def _check_answer(expect: TurnExpect, answer: str, turns_calls: list[list[Call]]) -> list[str]:
    """Problems with the answer text: ids and numbers it must show, phrases it must not."""
    problems: list[str] = []
    text = _norm_text(answer)

    def values(entries: list, label: str) -> list[Any]:
        out: list[Any] = []
        for entry in entries:
            try:
                out.extend(_flatten(resolve(entry, turns_calls)))
            except Unresolved as exc:
                problems.append(f"{label} {entry}: unresolved ({exc})")
        return out

    for cid in values(expect.answer.must_contain_ids, "must_contain_ids"):
        if not re.search(rf"(?<![A-Za-z0-9]){re.escape(str(cid))}(?![A-Za-z0-9])", answer):
            problems.append(f"id {cid} missing from the answer")
    shown = figures(answer)
    for number in values(expect.answer.must_contain_numbers, "must_contain_numbers"):
        num = as_number(number)
        if num is None or not any(figure_matches(v, d, u, [abs(num)]) for _, v, d, u in shown):
            problems.append(f"number {number} missing from the answer")
    options = values(expect.answer.must_contain_any, "must_contain_any")
    if expect.answer.must_contain_any and options:
        # A file path may be shown by its name only.
        texts = {_norm_text(str(o)) for o in options} | {_norm_text(Path(str(o)).name) for o in options}
        if not any(t and t in text for t in texts):
            problems.append(f"none of {options[:3]} in the answer")
    for phrase in expect.answer.must_not_contain:
        if _norm_text(phrase) in text:
            problems.append(f"forbidden phrase {phrase!r} in the answer")
    return problems


def _selection_problems(expect: TurnExpect, option: list[ToolExpect], calls: list[Call]) -> list[str]:
    called = {c.name for c in calls}
    names = {t.name for t in option}
    problems = [f"expected {n} was not called" for n in sorted(names - called)]
    problems += [f"unexpected call to {n}" for n in sorted(called - names - set(expect.allow_extra_tools))]
    problems += [f"forbidden call to {n}" for n in sorted(called & set(expect.forbid_tools))]
    return problems


def _judge(expect: TurnExpect, calls: list[Call], turns_calls: list[list[Call]]
           ) -> tuple[list[str], tuple[int, int, list[str]]]:
    """The expected alternative the calls fit best: fewest selection problems, then fewest argument
    mismatches (alternatives may name the same tool with different arguments), the first on a tie.
    Returns its selection problems and its (checks, matches, problems) of arguments."""
    judged = []
    for option in expect.alternatives:
        problems = _selection_problems(expect, option, calls)
        args = _judge_args(option, calls, turns_calls)
        judged.append((len(problems), args[0] - args[1], problems, args))
    best = min(judged, key=lambda j: (j[0], j[1]))
    return best[2], best[3]


def _judge_args(option: list[ToolExpect], calls: list[Call],
                turns_calls: list[list[Call]]) -> tuple[int, int, list[str]]:
    """(checks, matches, problems): one check per expected tool with key arguments that was called;
    it matches when any call of that tool has them all."""
    checks = matches = 0
    problems: list[str] = []
    for tool in option:
        candidates = [c for c in calls if c.name == tool.name]
        if not tool.args or not candidates:
            continue  # argument accuracy is judged on the calls the backend made
        checks += 1
        reasons = [match_args(tool.args, c.arguments, turns_calls) for c in candidates]
        if any(not r for r in reasons):
            matches += 1
        else:
            problems.append(f"{tool.name}: " + "; ".join(min(reasons, key=len)))
    return checks, matches, problems


def _ground(user: str, answer: str, kind: str, calls: list[Call]) -> Grounding:
    # An error message is not an answer: its figures would only blur the measure (errors are counted apart).
    if kind == "error":
        return Grounding(figures=0, grounded=0, ungrounded=[])
    evidence = Evidence().add(user)
    for c in calls:
        # A tool's error message is its output too ("the audience of 26 has 0 eligible").
        evidence.add(c.result).add(c.arguments).add(c.error)
    return groundedness(answer, evidence)


def score_turn(expect: TurnExpect, user: str, answer: str, kind: str, calls: list[Call],
               turns_calls_before: list[list[Call]], earlier_users: list[str] | None = None) -> TurnResult:
    """Score one turn from its trace. `turns_calls_before` are the earlier turns' calls of the case and
    `earlier_users` their messages (a follow-up's "them" may refer to an at-risk question)."""
    turns_calls = [*turns_calls_before, calls]
    # Arguments are judged against the alternative the calls fit best.
    tool_problems, (arg_checks, arg_matches, arg_problems) = _judge(expect, calls, turns_calls)
    selection_ok = not tool_problems
    kind_ok = kind in expect.kinds
    answer_problems = _check_answer(expect, answer, turns_calls)
    ground = _ground(user, answer, kind, calls)
    if expect.require_grounded and ground.ungrounded:
        answer_problems.append(f"figures not in the tool output: {ground.ungrounded[:6]}")
    answer_ok = not answer_problems
    semantic = semantic_checks(user, answer, calls, earlier_users)
    return TurnResult(
        turn=0, user=user, answer=answer, kind=kind, expected_kinds=expect.kinds, kind_ok=kind_ok,
        tools_called=[c.name for c in calls],
        tool_calls=[{"name": c.name, "arguments": c.arguments, "error": c.error} for c in calls],
        tool_selection_ok=selection_ok, tool_problems=tool_problems, arg_checks=arg_checks,
        arg_matches=arg_matches, arg_problems=arg_problems, answer_ok=answer_ok, answer_problems=answer_problems,
        figures=ground.figures, grounded=ground.grounded, ungrounded=ground.ungrounded, semantic_checks=semantic,
        passed=(selection_ok and arg_matches == arg_checks and kind_ok and answer_ok
                and not any(semantic.values())))
