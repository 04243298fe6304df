"""The query files: the case schema, loading and validating a YAML file, and selecting cases.

A case is one or more user turns sharing a chat session; each turn says what the agent should do
(`TurnExpect`). Validation is strict (unknown keys, tools, arguments, matcher operators and reference
paths are errors) so that a typo in a query file fails loudly instead of silently matching everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.eval.references import REF_PREFIX, check_ref
from predictor.errors import ValueDeskError
from predictor.settings import REPO_ROOT

DEFAULT_QUERIES = REPO_ROOT / "evals" / "queries.yaml"
# The blind held-out set (issue 15): run by default beside the development set, never tuned on.
HELDOUT_QUERIES = REPO_ROOT / "evals" / "heldout.yaml"
SET_LABELS = {"queries.yaml": "development", "heldout.yaml": "held-out"}
Kind = Literal["answer", "clarify", "refuse"]
MATCHER_KEYS = {"approx", "tol", "range", "one_of", "contains", "contains_any", "startswith", "absent",
                "present", "len", "items"}
MAX_ERRORS_SHOWN = 30


class EvalError(ValueDeskError):
    """The query file or a saved eval report cannot be used; the message names the case and field."""


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


def _tool_specs() -> dict[str, set[str]]:
    """Tool name -> argument names, from the registry every surface uses."""
    global _SPECS
    if _SPECS is None:
        from tools.registry import TOOLS

        _SPECS = {t.name: set(t.args_model.model_fields) for t in TOOLS}
    return _SPECS


_SPECS: dict[str, set[str]] | None = None


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


def _error_text(case_id: str, index: int, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"case {case_id!r} (cases[{index}]), field {loc or '(case)'}: {msg}")
    return out


def _read_case_list(path: Path) -> list[Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"Query file {path} not found; pass --queries PATH (default {DEFAULT_QUERIES}).") from None
    except yaml.YAMLError as exc:
        raise EvalError(f"Query file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cases"), list):
        raise EvalError(f"Query file {path} must be a mapping with a 'cases' list.")
    return raw["cases"]


def load_cases(path: str | Path) -> list[Case]:
    """Parse and validate a query file; every bad case is reported by id and field in one EvalError."""
    path = Path(path)
    cases: list[Case] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(_read_case_list(path)):
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
        shown = "\n  ".join(errors[:MAX_ERRORS_SHOWN])
        if len(errors) > MAX_ERRORS_SHOWN:
            shown += f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more"
        raise EvalError(f"Query file {path} has {len(errors)} invalid field(s):\n  {shown}")
    return cases


def select_cases(cases: list[Case], tags: Iterable[str] | None = None, ids: Iterable[str] | None = None,
                 limit: int | None = None) -> list[Case]:
    """The cases having any of `tags` and one of `ids` (either empty = no filter), the first `limit`."""
    tags = {t.strip() for t in (tags or []) if t.strip()}
    ids = {i.strip() for i in (ids or []) if i.strip()}
    out = [c for c in cases if (not tags or tags & set(c.tags)) and (not ids or c.id in ids)]
    if ids - {c.id for c in cases}:
        raise EvalError(f"Unknown case id(s): {sorted(ids - {c.id for c in cases})}")
    if not out:
        raise EvalError(f"No case matches tags={sorted(tags)} ids={sorted(ids)}.")
    return out[:limit] if limit else out


def _set_label(path: Path) -> str:
    """A query set's name in reports: the two sets of evals/ by role, any other file by its stem."""
    for known, label in ((DEFAULT_QUERIES, "development"), (HELDOUT_QUERIES, "held-out")):
        if path.resolve() == known.resolve():
            return label
    return path.stem


def default_query_sets() -> list[tuple[str, Path]]:
    """The development set, and the held-out set when the checkout has it."""
    sets = [("development", DEFAULT_QUERIES)]
    return sets + [("held-out", HELDOUT_QUERIES)] if HELDOUT_QUERIES.is_file() else sets


def query_sets(specs: Iterable[str] | None) -> list[tuple[str, Path]]:
    """(label, path) for each `--queries` value: `PATH` or `LABEL=PATH`; none = `default_query_sets()`.
    Labels are unique (a repeated one gets a suffix), so a report can hold each set under its label."""
    specs = list(specs or [])
    if not specs:
        return default_query_sets()
    out: list[tuple[str, Path]] = []
    for spec in specs:
        label, sep, rest = spec.partition("=")
        named = bool(sep) and label.strip() and "/" not in label and not Path(spec).exists()
        path = Path(rest if named else spec)
        label = label.strip() if named else _set_label(path)
        taken = {existing for existing, _ in out}
        unique, n = label, 2
        while unique in taken:
            unique, n = f"{label}-{n}", n + 1
        out.append((unique, path))
    return out
