"""Tool calls as the harness sees them, and `$from_tool:TOOL:PATH` references into their results.

A query file cannot hard-code the customer ids or amounts an answer must show (they change whenever
the model is retrained), so it points into the tool output instead, e.g.
`$from_tool:find_customers:customers[0].customer_id` or `customers[:3].customer_id`. PATH is a
JMESPath expression (fields, `[n]`, `[a:b]`, `[*]`) evaluated by the `jmespath` library; when a file
is loaded, the path is also checked against the tool's result model so it cannot name a field no
tool returns.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import jmespath
from jmespath.parser import ParsedResult
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, Field

REF_PREFIX = "$from_tool:"
_REF = re.compile(r"^\$from_tool:(?P<tool>[a-z_]+):(?P<path>.+)$")
# A step of a path: a field name, an index (int), a slice, or "*" for every item of a list.
Step = str | int | slice


class Unresolved(Exception):
    """A reference whose tool was not called successfully, or whose path leads nowhere."""


class Call(BaseModel):
    """One tool call as the harness sees it (an agent ToolCallTrace, or a hand-made one in tests)."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: Any = None


def as_call(trace: Any) -> Call:
    """A Call from a trace object or dict."""
    get = (lambda k: trace.get(k)) if isinstance(trace, dict) else (lambda k: getattr(trace, k, None))
    result = get("result")
    # The registry envelope {tool, ok, result, error} and the bare result are both accepted.
    if isinstance(result, dict) and {"tool", "ok"} <= set(result) and "result" in result:
        result = result["result"]
    return Call(name=get("name"), arguments=dict(get("arguments") or {}), result=result, error=get("error"))


def parse_ref(ref: str) -> tuple[str, ParsedResult]:
    """`$from_tool:TOOL:PATH` -> (tool, compiled PATH)."""
    m = _REF.match(ref)
    if not m:
        raise ValueError(f"bad reference {ref!r}; expected $from_tool:TOOL:PATH, e.g. "
                         "$from_tool:find_customers:customers[0].customer_id")
    try:
        return m["tool"], jmespath.compile(m["path"])
    except JMESPathError as exc:
        raise ValueError(f"bad path {m['path']!r} in reference {ref!r}: {exc}") from None


def _steps(node: dict[str, Any], ref: str) -> list[Step]:
    """The steps of a parsed path, for checking it against a result model."""
    kind, children = node["type"], node["children"]
    if kind == "field":
        return [node["value"]]
    if kind == "index":
        return [node["value"]]
    if kind == "slice":
        return [slice(*children)]
    if kind == "identity":
        return []
    if kind in ("subexpression", "index_expression"):
        return [s for child in children for s in _steps(child, ref)]
    if kind == "projection":
        left = _steps(children[0], ref)
        # `xs[*]` parses as a projection over the bare field; `xs[a:b]` already ends in its slice.
        marker = [] if left and isinstance(left[-1], slice) else ["*"]
        return [*left, *marker, *_steps(children[1], ref)]
    raise ValueError(f"reference {ref!r}: {kind} expressions are not supported; use fields, [n], [a:b], [*]")


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner type, is_list) of an annotation, Optional and Annotated removed."""
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
    tool, path = parse_ref(ref)
    from tools.registry import TOOLS

    models = {t.name: t.result_model for t in TOOLS}
    if tool not in models:
        raise ValueError(f"reference {ref!r}: unknown tool {tool!r}")
    current: Any = models[tool]
    is_list = False
    for step in _steps(path.parsed, ref):
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


def resolve(ref: Any, turns_calls: list[list[Call]]) -> Any:
    """A literal, or the referenced value from the latest successful call of the tool: this turn first,
    then earlier turns of the case (most recent first)."""
    if not (isinstance(ref, str) and ref.startswith(REF_PREFIX)):
        return ref
    tool, path = parse_ref(ref)
    for calls in reversed(turns_calls):
        for call in reversed(calls):
            if call.name == tool and call.result is not None and not call.error:
                value = path.search(call.result)
                # JMESPath answers null for a missing key or an index out of range.
                if value is None:
                    raise Unresolved(f"nothing at {path.expression!r} in the {tool} result")
                return value
    raise Unresolved(f"{tool} was not called successfully")
