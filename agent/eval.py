"""Eval harness: replay scripted marketer queries through the agent and measure its answers.

`valuedesk eval --queries evals/queries.yaml --backend offline --json out.json` replays every case
(the turns of one case share a chat session), scores each turn against the case's expectations and
prints a markdown report; `valuedesk eval --compare a.json b.json` puts runs side by side.

Per turn the scorer checks
* tool selection: every expected tool was called, no other tool (unless allowed), no forbidden one;
* arguments: the key arguments of each expected call match (sets are order-insensitive, numbers and
  strings tolerant, see `match_value`), judged on the calls the backend did make;
* kind: answer / clarify / refuse as expected;
* answer checks: ids and numbers that must appear (usually references into the tool output, since
  scores change when the model is retrained), phrases that must not appear;
* groundedness: every figure in the answer must appear in the tool outputs of that turn (or in the
  turn's tool arguments or the user's own words), compared at the precision the answer shows it.

The groundedness check here is deliberately independent of agent.grounding: the agent must not be
graded by its own checker.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from predictor.errors import ValueDeskError
from predictor.settings import REPO_ROOT

DEFAULT_QUERIES = REPO_ROOT / "evals" / "queries.yaml"
BACKENDS = ("offline", "vllm", "openai")
Kind = Literal["answer", "clarify", "refuse"]
REF_PREFIX = "$from_tool:"
MATCHER_KEYS = {"approx", "tol", "range", "one_of", "contains", "contains_any", "startswith", "absent",
                "present", "len", "items"}
DEFAULT_REL_TOL = 0.02


class EvalError(ValueDeskError):
    """The query file or a saved eval report cannot be used; the message names the case and field."""


# ---------------------------------------------------------------------------------------------- schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_matcher(value: Any, where: str) -> None:
    """Reject matcher dicts with unknown operators, so a typo cannot silently match everything."""
    if isinstance(value, dict):
        unknown = set(value) - MATCHER_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown matcher key(s) {sorted(unknown)}; use {sorted(MATCHER_KEYS)}")
        if "tol" in value and "approx" not in value:
            raise ValueError(f"{where}: 'tol' needs 'approx'")
        if "range" in value and (not isinstance(value["range"], list) or len(value["range"]) != 2):
            raise ValueError(f"{where}: 'range' must be [low, high]")
        for item in value.get("items", []) or []:
            if not isinstance(item, dict):
                raise ValueError(f"{where}: 'items' entries must be mappings of field -> matcher")
            for k, v in item.items():
                _check_matcher(v, f"{where}.items.{k}")
    elif isinstance(value, str) and value.startswith(REF_PREFIX):
        check_ref(value)


class ToolExpect(_Strict):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_tool_and_args(self) -> ToolExpect:
        specs = _tool_specs()
        if self.name not in specs:
            raise ValueError(f"unknown tool {self.name!r}; tools are {sorted(specs)}")
        fields = specs[self.name]
        for arg, matcher in self.args.items():
            if arg not in fields:
                raise ValueError(f"tool {self.name!r} has no argument {arg!r}; its arguments are {sorted(fields)}")
            _check_matcher(matcher, f"args.{arg}")
        return self


class AnswerChecks(_Strict):
    must_contain_ids: list[str] = Field(default_factory=list)
    must_contain_numbers: list[str | float] = Field(default_factory=list)
    must_contain_any: list[str] = Field(default_factory=list)
    must_not_contain: list[str] = Field(default_factory=list)
    # None = the default: required for turns whose only acceptable kind is "answer".
    numbers_must_match_tool_output: bool | None = None

    @field_validator("must_contain_ids", "must_contain_numbers", "must_contain_any")
    @classmethod
    def _refs_parse(cls, values: list) -> list:
        for v in values:
            if isinstance(v, str) and v.startswith(REF_PREFIX):
                check_ref(v)
        return values


class TurnExpect(_Strict):
    kind: Kind | list[Kind]
    tools: list[ToolExpect] | None = None
    tools_any_of: list[list[ToolExpect]] | None = None
    forbid_tools: list[str] = Field(default_factory=list)
    allow_extra_tools: list[str] = Field(default_factory=list)
    answer: AnswerChecks = Field(default_factory=AnswerChecks)

    @model_validator(mode="after")
    def _one_tool_spec(self) -> TurnExpect:
        if (self.tools is None) == (self.tools_any_of is None):
            raise ValueError("give exactly one of 'tools' (use [] for none) or 'tools_any_of'")
        if self.tools_any_of is not None and not self.tools_any_of:
            raise ValueError("'tools_any_of' needs at least one alternative")
        specs = _tool_specs()
        for name in [*self.forbid_tools, *self.allow_extra_tools]:
            if name not in specs:
                raise ValueError(f"unknown tool {name!r} in forbid_tools/allow_extra_tools")
        return self

    @property
    def kinds(self) -> list[str]:
        return [self.kind] if isinstance(self.kind, str) else list(self.kind)

    @property
    def alternatives(self) -> list[list[ToolExpect]]:
        return self.tools_any_of if self.tools_any_of is not None else [self.tools or []]

    @property
    def require_grounded(self) -> bool:
        flag = self.answer.numbers_must_match_tool_output
        return self.kinds == ["answer"] if flag is None else flag


class Turn(_Strict):
    user: str = Field(min_length=1, max_length=4000)
    expect: TurnExpect


class Case(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)
    tags: list[str] = Field(default_factory=list)
    turns: list[Turn] = Field(min_length=1)


def _tool_specs() -> dict[str, set[str]]:
    """Tool name -> argument names, from the registry every surface uses."""
    global _SPECS
    if _SPECS is None:
        from tools.registry import TOOLS

        _SPECS = {t.name: set(t.args_model.model_fields) for t in TOOLS}
    return _SPECS


_SPECS: dict[str, set[str]] | None = None


def _error_text(case_id: str, index: int, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"case {case_id!r} (cases[{index}]), field {loc or '(case)'}: {msg}")
    return out


def load_cases(path: str | Path) -> list[Case]:
    """Parse and validate a query file; every bad case is reported by id and field in one EvalError."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"Query file {path} not found; pass --queries PATH (default {DEFAULT_QUERIES}).") from None
    except yaml.YAMLError as exc:
        raise EvalError(f"Query file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cases"), list):
        raise EvalError(f"Query file {path} must be a mapping with a 'cases' list.")
    cases: list[Case] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw["cases"]):
        case_id = item.get("id", f"#{i}") if isinstance(item, dict) else f"#{i}"
        try:
            case = Case.model_validate(item)
        except ValidationError as exc:
            errors.extend(_error_text(str(case_id), i, exc))
            continue
        if case.id in seen:
            errors.append(f"case {case.id!r} (cases[{i}]), field id: duplicate of cases[{seen[case.id]}]")
        seen[case.id] = i
        cases.append(case)
    if errors:
        shown = "\n  ".join(errors[:30]) + (f"\n  ... and {len(errors) - 30} more" if len(errors) > 30 else "")
        raise EvalError(f"Query file {path} has {len(errors)} invalid field(s):\n  {shown}")
    return cases


def select_cases(cases: list[Case], tags: Iterable[str] | None = None, ids: Iterable[str] | None = None,
                 limit: int | None = None) -> list[Case]:
    tags = {t.strip() for t in (tags or []) if t.strip()}
    ids = {i.strip() for i in (ids or []) if i.strip()}
    out = [c for c in cases if (not tags or tags & set(c.tags)) and (not ids or c.id in ids)]
    if ids - {c.id for c in cases}:
        raise EvalError(f"Unknown case id(s): {sorted(ids - {c.id for c in cases})}")
    if not out:
        raise EvalError(f"No case matches tags={sorted(tags)} ids={sorted(ids)}.")
    return out[:limit] if limit else out


# ---------------------------------------------------------------------------------------------- traces


class Call(BaseModel):
    """One tool call as the harness sees it (an agent ToolCallTrace, or a hand-made one in tests)."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: Any = None


def _as_call(trace: Any) -> Call:
    get = (lambda k: trace.get(k)) if isinstance(trace, dict) else (lambda k: getattr(trace, k, None))
    result = get("result")
    # The registry envelope {tool, ok, result, error} and the bare result are both accepted.
    if isinstance(result, dict) and {"tool", "ok"} <= set(result) and "result" in result:
        result = result["result"]
    return Call(name=get("name"), arguments=dict(get("arguments") or {}), result=result, error=get("error"))


# ---------------------------------------------------------------------------------------------- references

_REF = re.compile(r"^\$from_tool:(?P<tool>[a-z_]+):(?P<path>.+)$")
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d*)(?::(-?\d*))?\]|\[\*\]")


def parse_ref(ref: str) -> tuple[str, list]:
    """`$from_tool:TOOL:PATH` -> (tool, steps); steps are keys, ints, slices or '*'."""
    m = _REF.match(ref)
    if not m:
        raise ValueError(f"bad reference {ref!r}; expected $from_tool:TOOL:PATH, e.g. "
                         "$from_tool:find_customers:customers[0].customer_id")
    steps: list = []
    for part in m["path"].split("."):
        pos = 0
        while pos < len(part):
            if part.startswith("[*]", pos):
                steps.append("*")
                pos += 3
                continue
            s = _STEP.match(part, pos)
            if not s or s.end() == pos:
                raise ValueError(f"bad path {m['path']!r} in reference {ref!r} at {part[pos:]!r}")
            if s.group(1):
                steps.append(s.group(1))
            elif ":" in s.group(0):
                lo, hi = s.group(2), s.group(3)
                steps.append(slice(int(lo) if lo else None, int(hi) if hi else None))
            else:
                steps.append(int(s.group(2)))
            pos = s.end()
    return m["tool"], steps


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner type, is_list) of an annotation, Optional and Annotated removed."""
    import types
    import typing

    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, False
            annotation = args[0]
        elif origin is list:
            return typing.get_args(annotation)[0], True
        else:
            return annotation, False


def check_ref(ref: str) -> None:
    """Parse a reference and check its path against the tool's result model, so a query file cannot
    point at a field no tool returns."""
    tool, steps = parse_ref(ref)
    from tools.registry import TOOLS

    models = {t.name: t.result_model for t in TOOLS}
    if tool not in models:
        raise ValueError(f"reference {ref!r}: unknown tool {tool!r}")
    current: Any = models[tool]
    is_list = False
    for step in steps:
        if isinstance(step, str) and step != "*":
            if not (isinstance(current, type) and issubclass(current, BaseModel)):
                return  # a free-form dict (e.g. model_report metrics): nothing more to check
            if step not in current.model_fields:
                raise ValueError(f"reference {ref!r}: {current.__name__} has no field {step!r}; "
                                 f"fields are {sorted(current.model_fields)}")
            current, is_list = _unwrap(current.model_fields[step].annotation)
        elif not is_list:
            raise ValueError(f"reference {ref!r}: {step!r} applied to a field that is not a list")
        else:
            is_list = False


class Unresolved(Exception):
    pass


def _walk(value: Any, steps: list, mapped: bool = False) -> Any:
    if not steps:
        return value
    step, rest = steps[0], steps[1:]
    if mapped and isinstance(value, list) and isinstance(step, str) and step != "*":
        return [_walk(v, steps) for v in value]
    if isinstance(step, str) and step != "*":
        if not isinstance(value, dict) or step not in value:
            raise Unresolved(f"no key {step!r}")
        return _walk(value[step], rest, mapped)
    if not isinstance(value, list):
        raise Unresolved(f"{step!r} applied to a non-list")
    if step == "*":
        return _walk(value, rest, True)
    if isinstance(step, slice):
        return _walk(value[step], rest, True)
    if not -len(value) <= step < len(value):
        raise Unresolved(f"index {step} out of range ({len(value)} items)")
    return _walk(value[step], rest, mapped)


def resolve(ref: Any, turns_calls: list[list[Call]]) -> Any:
    """A literal, or the referenced value from the latest successful call of the tool: this turn first,
    then earlier turns of the case (most recent first)."""
    if not (isinstance(ref, str) and ref.startswith(REF_PREFIX)):
        return ref
    tool, steps = parse_ref(ref)
    for calls in reversed(turns_calls):
        for call in reversed(calls):
            if call.name == tool and call.result is not None and not call.error:
                return _walk(call.result, steps)
    raise Unresolved(f"{tool} was not called successfully")


# ---------------------------------------------------------------------------------------------- matching


def _norm_str(s: str) -> str:
    s = s.strip().lower().replace("\u2019", "'")
    return re.sub(r"[\s_\-]+", " ", s)


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.replace(",", "").strip().lstrip("£$€"))
        except ValueError:
            return None
    return None


def _scalar_eq(expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    en, an = _as_number(expected), _as_number(actual)
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return an is not None and math.isclose(en, an, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, str) and isinstance(actual, str):
        return _norm_str(expected) == _norm_str(actual)
    if isinstance(expected, str) and an is not None and en is not None:
        return math.isclose(en, an, rel_tol=1e-6)  # an id written as a number by the model
    return expected == actual


def _set_eq(expected: list, actual: Any) -> bool:
    if not isinstance(actual, list) or len(actual) != len(expected):
        return False
    remaining = list(actual)
    for e in expected:
        hit = next((i for i, a in enumerate(remaining) if match_value(e, a)[0]), None)
        if hit is None:
            return False
        remaining.pop(hit)
    return True


def match_value(expected: Any, actual: Any, turns_calls: list[list[Call]] | None = None) -> tuple[bool, str]:
    """Does an actual argument value satisfy the expectation? Returns (ok, reason when not)."""
    turns_calls = turns_calls or []
    if isinstance(expected, str) and expected.startswith(REF_PREFIX):
        try:
            expected = resolve(expected, turns_calls)
        except Unresolved as exc:
            return False, f"reference unresolved ({exc})"
    if isinstance(expected, dict):
        return _match_ops(expected, actual, turns_calls)
    if isinstance(expected, list):
        ok = _set_eq(expected, actual)
        return ok, "" if ok else f"expected the set {expected}, got {actual!r}"
    ok = _scalar_eq(expected, actual)
    return ok, "" if ok else f"expected {expected!r}, got {actual!r}"


def _match_ops(ops: dict, actual: Any, turns_calls: list[list[Call]]) -> tuple[bool, str]:
    absent = actual is None or actual == []
    if ops.get("absent"):
        return (absent, "" if absent else f"expected no value, got {actual!r}")
    if ops.get("present") and absent:
        return False, "expected a value, got none"
    if "one_of" in ops:
        for option in ops["one_of"]:
            if option is None and absent:
                return True, ""
            if option is not None and match_value(option, actual, turns_calls)[0]:
                return True, ""
        return False, f"expected one of {ops['one_of']}, got {actual!r}"
    if "approx" in ops:
        target, num = float(ops["approx"]), _as_number(actual)
        tol = float(ops.get("tol", DEFAULT_REL_TOL))
        if num is None or not math.isclose(num, target, rel_tol=tol, abs_tol=1e-9):
            return False, f"expected about {target} (±{tol:.0%}), got {actual!r}"
    if "range" in ops:
        lo, hi = ops["range"]
        num = _as_number(actual)
        if num is None or not (lo <= num <= hi):
            return False, f"expected a number in [{lo}, {hi}], got {actual!r}"
    if "startswith" in ops:
        if not isinstance(actual, str) or not _norm_str(actual).startswith(_norm_str(str(ops["startswith"]))):
            return False, f"expected a value starting {ops['startswith']!r}, got {actual!r}"
    if "contains_any" in ops:
        text = _norm_str(json.dumps(actual) if not isinstance(actual, str) else actual)
        if not any(_norm_str(w) in text for w in ops["contains_any"]):
            return False, f"expected one of {ops['contains_any']} in {actual!r}"
    if "contains" in ops:
        if not isinstance(actual, list):
            return False, f"expected a list containing {ops['contains']}, got {actual!r}"
        for e in ops["contains"]:
            if not any(match_value(e, a, turns_calls)[0] for a in actual):
                return False, f"{e!r} missing from {actual!r}"
    if "len" in ops:
        if not isinstance(actual, list) or len(actual) != ops["len"]:
            return False, f"expected {ops['len']} items, got {actual!r}"
    if "items" in ops:
        if not isinstance(actual, list):
            return False, f"expected a list, got {actual!r}"
        remaining = list(actual)
        for spec in ops["items"]:
            hit = next((i for i, a in enumerate(remaining) if isinstance(a, dict) and all(
                match_value(m, a.get(k), turns_calls)[0] for k, m in spec.items())), None)
            if hit is None:
                return False, f"no item matches {spec} in {actual!r}"
            remaining.pop(hit)
    return True, ""


def match_args(expected: dict[str, Any], actual: dict[str, Any],
               turns_calls: list[list[Call]] | None = None) -> list[str]:
    """Mismatch reasons (empty = every key argument matches)."""
    problems = []
    for key, matcher in expected.items():
        ok, why = match_value(matcher, actual.get(key), turns_calls)
        if not ok:
            problems.append(f"{key}: {why}")
    return problems


# ---------------------------------------------------------------------------------------------- groundedness

# A figure as written in prose: currency, thousands separators, decimals, a %/k/m/bn unit.
# Tokens glued to letters, digits or underscores ("P10", "Q4", "revenue_12m", "3rd") are names.
_NUM = re.compile(
    r"(?<![A-Za-z0-9_.])(?P<cur>[£$€]\s?)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s?(?P<unit>%|percent\b|per cent\b|k\b|K\b|m\b|M\b|bn\b|million\b))?(?![A-Za-z0-9_])")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?!\d)")
_MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], 1)}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MON = r"(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WRITTEN_DATES = [
    re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?\s+" + _MON + r",?\s+(?P<year>\d{4})\b", re.I),
    re.compile(r"\b" + _MON + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>\d{4})\b", re.I),
    re.compile(r"\b" + _MON + r"\s+(?P<year>\d{4})\b", re.I),
]
_LIST_MARKER = re.compile(r"(?m)^(\s*)\d{1,2}[.)](?=\s)")
_SCALE = {"k": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9}


class Evidence:
    """Figures and dates an answer may quote: tool outputs, tool arguments and the user's message."""

    def __init__(self) -> None:
        self.numbers: list[float] = []
        self.dates: set[str] = set()

    def add(self, value: Any) -> Evidence:
        if isinstance(value, bool) or value is None:
            return self
        if isinstance(value, (int, float)):
            if math.isfinite(value):
                self.numbers.append(abs(float(value)))
        elif isinstance(value, str):
            # A date's parts are not figures ("12%" must not be grounded by 2011-12-08), but its year is.
            for m in _ISO_DATE.finditer(value):
                self.dates.add(f"{m[1]}-{m[2]}-{m[3]}")
                self.numbers.append(float(m[1]))
            for _, number, _, _ in _figures(value):
                self.numbers.append(number)
        elif isinstance(value, dict):
            for v in value.values():
                self.add(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self.add(v)
        return self


def _figures(text: str) -> list[tuple[str, float, int, str]]:
    """(shown text, value, decimals shown, unit) of each figure; dates and list markers removed."""
    text = _ISO_DATE.sub(" ", text)
    for pattern in _WRITTEN_DATES:
        text = pattern.sub(" ", text)
    text = _LIST_MARKER.sub(r"\1", text)
    out = []
    for m in _NUM.finditer(text):
        raw = m["num"].replace(",", "")
        decimals = len(raw.split(".")[1]) if "." in raw else 0
        unit = (m["unit"] or "").lower()
        unit = "%" if unit in ("percent", "per cent") else unit
        out.append((m.group(0), float(raw), decimals, unit))
    return out


def _date_claims(text: str) -> list[tuple[str, str]]:
    """(shown text, ISO prefix) for each date in the answer: YYYY-MM-DD or YYYY-MM for month-year."""
    out = [(m.group(0), f"{m[1]}-{m[2]}-{m[3]}") for m in _ISO_DATE.finditer(text)]
    rest = _ISO_DATE.sub(" ", text)
    for pattern in _WRITTEN_DATES:
        for m in pattern.finditer(rest):
            month = _MONTHS[m["mon"].lower().rstrip(".")]
            day = m.groupdict().get("day")
            iso = f"{m['year']}-{month:02d}" + (f"-{int(day):02d}" if day else "")
            out.append((m.group(0), iso))
        rest = pattern.sub(" ", rest)
    return out


def figure_matches(value: float, decimals: int, unit: str, candidates: Iterable[float]) -> bool:
    """Is a figure shown with `decimals` places and `unit` a presentation of one of the candidates?

    £1,234.50 == 1234.5; 1,234 == 1234.4 (rounded) or 1234.9 (truncated); 73% == 0.7312 or 73.1;
    £1.2k == 1180; the sign is ignored ("a refund of £20" for -20).
    """
    half_step = 0.5 * 10.0 ** -decimals
    for c in candidates:
        if unit == "%":
            targets = (c * 100, c)
        elif unit in _SCALE:
            targets = (c / _SCALE[unit],)
        else:
            targets = (c,)
        for t in targets:
            if abs(t - value) <= half_step + 1e-9 * max(1.0, t):
                return True
            if decimals == 0 and unit == "" and 0 <= t - value < 1:
                return True
    return False


class Grounding(BaseModel):
    figures: int
    grounded: int
    ungrounded: list[str]


def groundedness(answer: str, evidence: Evidence) -> Grounding:
    bad: list[str] = []
    total = 0
    for shown, iso in _date_claims(answer):
        total += 1
        if not any(d.startswith(iso) for d in evidence.dates):
            bad.append(shown)
    for shown, value, decimals, unit in _figures(answer):
        total += 1
        if not figure_matches(value, decimals, unit, evidence.numbers):
            bad.append(shown.strip())
    return Grounding(figures=total, grounded=total - len(bad), ungrounded=bad)


# ---------------------------------------------------------------------------------------------- scoring


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
    shown = _figures(answer)
    for number in values(expect.answer.must_contain_numbers, "must_contain_numbers"):
        num = _as_number(number)
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


def score_turn(expect: TurnExpect, user: str, answer: str, kind: str, calls: list[Call],
               turns_calls_before: list[list[Call]]) -> TurnResult:
    """Score one turn from its trace. `turns_calls_before` are the earlier turns' calls of the case."""
    turns_calls = [*turns_calls_before, calls]
    called = {c.name for c in calls}
    allowed = set(expect.allow_extra_tools)

    judged: list[tuple[list[ToolExpect], list[str]]] = []
    for option in expect.alternatives:
        names = {t.name for t in option}
        problems = [f"expected {n} was not called" for n in sorted(names - called)]
        problems += [f"unexpected call to {n}" for n in sorted(called - names - allowed)]
        problems += [f"forbidden call to {n}" for n in sorted(called & set(expect.forbid_tools))]
        judged.append((option, problems))
    # Arguments are judged against the alternative the calls fit best (the first on a tie).
    option, tool_problems = min(judged, key=lambda j: len(j[1]))
    selection_ok = not tool_problems

    arg_checks = arg_matches = 0
    arg_problems: list[str] = []
    for tool in option:
        candidates = [c for c in calls if c.name == tool.name]
        if not tool.args or not candidates:
            continue  # argument accuracy is judged on the calls the backend made
        arg_checks += 1
        reasons = [match_args(tool.args, c.arguments, turns_calls) for c in candidates]
        if any(not r for r in reasons):
            arg_matches += 1
        else:
            arg_problems.append(f"{tool.name}: " + "; ".join(min(reasons, key=len)))

    kind_ok = kind in expect.kinds
    answer_problems = _check_answer(expect, answer, turns_calls)
    evidence = Evidence().add(user)
    for c in calls:
        # A tool's error message is its output too ("the audience of 26 has 0 eligible").
        evidence.add(c.result).add(c.arguments).add(c.error)
    # An error message is not an answer: its figures would only blur the measure (errors are counted apart).
    ground = groundedness(answer, evidence) if kind != "error" else Grounding(figures=0, grounded=0, ungrounded=[])
    if expect.require_grounded and ground.ungrounded:
        answer_problems.append(f"figures not in the tool output: {ground.ungrounded[:6]}")
    answer_ok = not answer_problems
    return TurnResult(
        turn=0, user=user, answer=answer, kind=kind, expected_kinds=expect.kinds, kind_ok=kind_ok,
        tools_called=[c.name for c in calls],
        tool_calls=[{"name": c.name, "arguments": c.arguments, "error": c.error} for c in calls],
        tool_selection_ok=selection_ok, tool_problems=tool_problems, arg_checks=arg_checks,
        arg_matches=arg_matches, arg_problems=arg_problems, answer_ok=answer_ok, answer_problems=answer_problems,
        figures=ground.figures, grounded=ground.grounded, ungrounded=ground.ungrounded,
        passed=selection_ok and arg_matches == arg_checks and kind_ok and answer_ok)


# ---------------------------------------------------------------------------------------------- running


class ChatService(Protocol):
    def chat(self, message: str, session_id: str = "default") -> Any: ...


def _completion_tokens(reply: Any) -> int | None:
    usage = getattr(reply, "usage", None)
    if usage is None and isinstance(reply, dict):
        usage = reply.get("usage")
    if isinstance(usage, BaseModel):
        usage = usage.model_dump()
    if isinstance(usage, dict):
        value = usage.get("completion_tokens", usage.get("output_tokens"))
        return int(value) if isinstance(value, (int, float)) else None
    return None


TokenCounter = Callable[[str], "int | None"]


def vllm_token_counter(base_url: str, model: str | None, timeout_s: float = 10.0) -> TokenCounter:
    """Counts an answer's tokens with the served model's own tokenizer (vLLM's POST /tokenize), for
    backends whose replies carry no usage figures. Returns None for a text it could not count."""
    import httpx

    root = base_url.rstrip("/").removesuffix("/v1")
    client = httpx.Client(timeout=timeout_s)

    def count(text: str) -> int | None:
        try:
            resp = client.post(f"{root}/tokenize", json={"model": model, "prompt": text, "add_special_tokens": False})
            resp.raise_for_status()
            return int(resp.json()["count"])
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            return None

    return count


def run_case(service: ChatService, case: Case, run_id: str, token_counter: TokenCounter | None = None) -> CaseResult:
    session = f"eval-{run_id}-{case.id}"
    reset = getattr(service, "reset", None)
    if callable(reset):
        reset(session)
    before: list[list[Call]] = []
    results: list[TurnResult] = []
    for i, turn in enumerate(case.turns):
        start = time.perf_counter()
        try:
            reply = service.chat(turn.user, session_id=session)
            error = None
        except Exception as exc:  # noqa: BLE001 - one broken turn is a measured failure, not a crash
            reply, error = None, f"{type(exc).__name__}: {exc}"
        latency = (time.perf_counter() - start) * 1000
        if reply is None:
            calls, answer, kind, unverified = [], "", "error", []
        else:
            calls = [_as_call(t) for t in (getattr(reply, "tool_calls", None) or [])]
            answer = getattr(reply, "answer", "") or ""
            kind = getattr(reply, "kind", "answer") or "answer"
            unverified = list(getattr(reply, "unverified", None) or [])
        result = score_turn(turn.expect, turn.user, answer, kind, calls, before)
        # An "error" reply (LLM unreachable, context overflow, ...) is a failed turn with its message kept.
        result.turn, result.latency_ms = i, latency
        result.error = error or (f"agent error: {answer[:300]}" if kind == "error" else None)
        result.agent_unverified = unverified
        result.completion_tokens = _completion_tokens(reply)
        if result.completion_tokens is not None:
            result.tokens_source = "usage"
        elif token_counter is not None and reply is not None and answer:
            result.completion_tokens = token_counter(answer)
            result.tokens_source = "tokenize" if result.completion_tokens is not None else None
        if result.error:
            result.passed = False
        results.append(result)
        before.append(calls)
    if callable(reset):
        reset(session)
    return CaseResult(id=case.id, tags=case.tags, passed=all(t.passed for t in results), turns=results)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return round(float(np.percentile(values, q)), 1)


def summarise(results: list[CaseResult], *, backend: str, model: str | None,
              queries: str | None = None) -> dict[str, Any]:
    """The report: headline metrics, per-tag tool selection, and every case's turns."""
    turns = [t for c in results for t in c.turns]

    def kind_accuracy(kind: str) -> float | None:
        # Turns where the kind was expected (as the only right one) or produced: misses and false alarms both count.
        relevant = [t for t in turns if t.expected_kinds == [kind] or t.kind == kind]
        return _ratio(sum(t.kind_ok for t in relevant), len(relevant))

    tokens = [t.completion_tokens for t in turns if t.completion_tokens is not None]
    by_tag: dict[str, list[TurnResult]] = defaultdict(list)
    for c in results:
        for tag in c.tags:
            by_tag[tag].extend(c.turns)
    figures = sum(t.figures for t in turns)
    return {
        "backend": backend,
        "model": model,
        "queries": queries,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cases": len(results),
        "turns": len(turns),
        "cases_passed": sum(c.passed for c in results),
        "tool_selection_accuracy": _ratio(sum(t.tool_selection_ok for t in turns), len(turns)),
        "argument_accuracy": _ratio(sum(t.arg_matches for t in turns), sum(t.arg_checks for t in turns)),
        "argument_checks": sum(t.arg_checks for t in turns),
        "groundedness": _ratio(sum(t.grounded for t in turns), figures),
        "figures": figures,
        "kind_accuracy": _ratio(sum(t.kind_ok for t in turns), len(turns)),
        "refusal_accuracy": kind_accuracy("refuse"),
        "clarification_accuracy": kind_accuracy("clarify"),
        "answer_check_accuracy": _ratio(sum(t.answer_ok for t in turns), len(turns)),
        "latency_p50_ms": _percentile([t.latency_ms for t in turns], 50),
        "latency_p95_ms": _percentile([t.latency_ms for t in turns], 95),
        "tokens_per_answer": round(sum(tokens) / len(tokens), 1) if tokens else None,
        "tokens_source": ",".join(sorted({t.tokens_source for t in turns if t.tokens_source})) or None,
        "errors": sum(t.error is not None for t in turns),
        "by_tag": {tag: {"turns": len(ts), "tool_selection_accuracy": _ratio(sum(t.tool_selection_ok for t in ts), len(ts)),
                         "passed": _ratio(sum(t.passed for t in ts), len(ts))}
                   for tag, ts in sorted(by_tag.items())},
        "results": [c.model_dump() for c in results],
    }


def run_eval(service: ChatService, cases: list[Case], *, backend: str, model: str | None = None,
             queries: str | None = None, progress: Callable[[CaseResult], None] | None = None,
             token_counter: TokenCounter | None = None) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    results = []
    for case in cases:
        result = run_case(service, case, run_id, token_counter)
        results.append(result)
        if progress:
            progress(result)
    return summarise(results, backend=backend, model=model, queries=queries)


# ---------------------------------------------------------------------------------------------- reports

HEADLINE = [
    ("cases", "cases", "{}"),
    ("cases_passed", "cases passed", "{}"),
    ("tool_selection_accuracy", "tool selection", "pct"),
    ("argument_accuracy", "arguments", "pct"),
    ("groundedness", "groundedness", "pct"),
    ("kind_accuracy", "answer/clarify/refuse", "pct"),
    ("refusal_accuracy", "refusals", "pct"),
    ("clarification_accuracy", "clarifications", "pct"),
    ("answer_check_accuracy", "answer checks", "pct"),
    ("latency_p50_ms", "latency p50 (ms)", "{:,.0f}"),
    ("latency_p95_ms", "latency p95 (ms)", "{:,.0f}"),
    ("tokens_per_answer", "tokens per answer", "{:,.0f}"),
    ("tokens_source", "tokens counted by", "{}"),
    ("errors", "errors", "{}"),
]


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "n/a"
    if fmt == "pct":
        return f"{value:.1%}"
    return fmt.format(value)


def _label(report: dict[str, Any]) -> str:
    return f"{report.get('backend')}" + (f" ({report['model']})" if report.get("model") else "")


def markdown_report(report: dict[str, Any], max_failures: int = 40) -> str:
    lines = [f"# ValueDesk eval: {_label(report)}", "",
             f"{report['cases']} cases, {report['turns']} turns from {report.get('queries') or 'queries'}.", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {label} | {_fmt(report.get(key), fmt)} |" for key, label, fmt in HEADLINE if key != "cases"]
    lines += ["", "## By tag (turns)", "", "| tag | turns | tool selection | passed |", "|---|---|---|---|"]
    for tag, row in report.get("by_tag", {}).items():
        lines.append(f"| {tag} | {row['turns']} | {_fmt(row['tool_selection_accuracy'], 'pct')} | "
                     f"{_fmt(row['passed'], 'pct')} |")
    failed = [(c, t) for c in report["results"] for t in c["turns"] if not t["passed"]]
    lines += ["", f"## Failed turns ({len(failed)})", ""]
    for case, turn in failed[:max_failures]:
        why = (turn["tool_problems"] + turn["arg_problems"] + turn["answer_problems"]
               + ([f"kind {turn['kind']}, expected {'/'.join(turn['expected_kinds'])}"] if not turn["kind_ok"] else [])
               + ([turn["error"]] if turn.get("error") else []))
        lines.append(f"- `{case['id']}` turn {turn['turn'] + 1} \u201c{turn['user'][:80]}\u201d: "
                     + "; ".join(why)[:400])
    if len(failed) > max_failures:
        lines.append(f"- ... and {len(failed) - max_failures} more (see the JSON report)")
    return "\n".join(lines) + "\n"


def load_report(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"Eval report {path} not found; write one with `valuedesk eval --json {path}`.") from None
    except json.JSONDecodeError as exc:
        raise EvalError(f"Eval report {path} is not JSON ({exc}).") from None
    missing = [k for k in ("cases", "tool_selection_accuracy", "results") if k not in data]
    if missing:
        raise EvalError(f"{path} is not a `valuedesk eval` report (missing {missing}).")
    return data


def compare_markdown(reports: list[dict[str, Any]], names: list[str] | None = None) -> str:
    """Backends side by side: headline metrics, per-tag tool selection, and cases whose outcome differs."""
    names = names or [_label(r) for r in reports]
    head = "| metric | " + " | ".join(names) + " |"
    sep = "|---|" + "---|" * len(reports)
    lines = ["# ValueDesk eval: comparison", "", head, sep]
    for key, label, fmt in HEADLINE:
        lines.append(f"| {label} | " + " | ".join(_fmt(r.get(key), fmt) for r in reports) + " |")
    tags = sorted({t for r in reports for t in r.get("by_tag", {})})
    lines += ["", "## Tool selection by tag", "", "| tag | " + " | ".join(names) + " |", sep]
    for tag in tags:
        cells = [_fmt(r.get("by_tag", {}).get(tag, {}).get("tool_selection_accuracy"), "pct") for r in reports]
        lines.append(f"| {tag} | " + " | ".join(cells) + " |")
    outcome = [{c["id"]: c["passed"] for c in r["results"]} for r in reports]
    common = sorted(set.intersection(*(set(o) for o in outcome))) if outcome else []
    differ = [cid for cid in common if len({o[cid] for o in outcome}) > 1]
    lines += ["", f"## Cases with different outcomes ({len(differ)} of {len(common)} in common)", ""]
    if differ:
        lines += ["| case | " + " | ".join(names) + " |", sep]
        lines += [f"| {cid} | " + " | ".join("pass" if o[cid] else "FAIL" for o in outcome) + " |" for cid in differ]
    return "\n".join(lines) + "\n"


def _write_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; reports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(report: dict[str, Any], path: str | Path) -> None:
    _write_atomic(path, json.dumps(report, indent=2, default=str) + "\n")


GATES = {"tool_selection": "tool_selection_accuracy", "arguments": "argument_accuracy",
         "groundedness": "groundedness", "refusals": "refusal_accuracy",
         "clarifications": "clarification_accuracy", "kinds": "kind_accuracy"}


def parse_gates(text: str) -> dict[str, float]:
    """'tool_selection=0.95,arguments=0.9' -> {report key: threshold}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name.strip() not in GATES:
            raise EvalError(f"Unknown gate {name.strip()!r} in --fail-under; use {sorted(GATES)}.")
        try:
            out[GATES[name.strip()]] = float(value)
        except ValueError:
            raise EvalError(f"--fail-under {part!r}: the threshold must be a number like 0.95.") from None
    return out


def gate_failures(report: dict[str, Any], gates: dict[str, float]) -> list[str]:
    bad = []
    for key, threshold in gates.items():
        value = report.get(key)
        if value is None or value < threshold:
            bad.append(f"{key} {_fmt(value, 'pct')} < {threshold:.0%}")
    return bad


# ---------------------------------------------------------------------------------------------- CLI


def service_for(backend: str, base_url: str | None = None, model: str | None = None):
    """The agent service for a backend, configured through the one settings object."""
    from agent.service import get_agent_service
    from predictor.settings import get_settings

    update: dict[str, Any] = {"llm_backend": backend}
    if base_url:
        update["llm_base_url"] = base_url
    if model:
        update["llm_model"] = model
    settings = get_settings().model_copy(update=update)
    return get_agent_service(settings)


def _backend_info(service: Any) -> dict[str, Any]:
    info = getattr(service, "backend_info", None)
    if callable(info):
        try:
            return dict(info())
        except Exception:  # noqa: BLE001 - the report still has the requested names
            return {}
    return {}


def _run_cli(args: argparse.Namespace) -> int:
    if args.compare:
        reports = [load_report(p) for p in args.compare]
        text = compare_markdown(reports)
        print(text)
        if args.markdown:
            _write_atomic(args.markdown, text)
        return 0
    if not args.json:
        raise EvalError("--json OUT is required when running the eval (or use --compare A.json B.json).")
    cases = select_cases(load_cases(args.queries), tags=(args.tags or "").split(","),
                         ids=(args.ids or "").split(","), limit=args.limit)
    gates = parse_gates(args.fail_under) if args.fail_under else {}
    service = service_for(args.backend, args.base_url, args.model)

    def progress(result: CaseResult) -> None:
        print(f"{'ok  ' if result.passed else 'FAIL'} {result.id}", file=sys.stderr, flush=True)

    info = _backend_info(service)
    model = info.get("model") or args.model
    counter = None
    if args.backend == "vllm" and (info.get("base_url") or args.base_url):
        counter = vllm_token_counter(info.get("base_url") or args.base_url, model)
    report = run_eval(service, cases, backend=args.backend, model=model, queries=str(args.queries),
                      progress=None if args.quiet else progress, token_counter=counter)
    write_json(report, args.json)
    text = markdown_report(report)
    if args.markdown:
        _write_atomic(args.markdown, text)
    print(text)
    failures = gate_failures(report, gates)
    if failures:
        print("eval gate failed: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


def register_eval(sub: argparse._SubParsersAction) -> None:
    """Add `valuedesk eval`."""
    p = sub.add_parser(
        "eval", help="replay scripted marketer queries through the agent and score the answers",
        description="Replay the query file through the agent (multi-turn cases share a session), score tool "
                    "selection, arguments, groundedness, refusals and clarifications, latency and tokens, "
                    "print a markdown report and write JSON. --compare puts saved reports side by side.")
    p.add_argument("--queries", type=Path, default=DEFAULT_QUERIES, help=f"query file (default {DEFAULT_QUERIES})")
    p.add_argument("--backend", choices=BACKENDS, default="offline", help="agent backend (default offline)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint for vllm/openai (default VALUEDESK_LLM_BASE_URL)")
    p.add_argument("--model", help="model name for vllm/openai (default VALUEDESK_LLM_MODEL)")
    p.add_argument("--limit", type=int, help="run only the first N selected cases")
    p.add_argument("--tags", help="comma-separated tags; run cases having any of them (e.g. smoke)")
    p.add_argument("--ids", help="comma-separated case ids to run")
    p.add_argument("--json", type=Path, help="write the JSON report here")
    p.add_argument("--markdown", type=Path, help="also write the markdown report here")
    p.add_argument("--fail-under", help="exit 1 below these, e.g. tool_selection=0.95,arguments=0.9,groundedness=1")
    p.add_argument("--compare", nargs="+", metavar="REPORT", help="compare saved JSON reports side by side")
    p.add_argument("--quiet", action="store_true", help="no per-case progress on stderr")
    p.set_defaults(handler=_run_cli)
