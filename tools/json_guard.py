"""Strict, bounded JSON parsing for every transport (HTTP bodies, MCP stdio lines).

Python's `json` module raises RecursionError on deep nesting, ValueError ("Exceeds the limit (4300
digits)") on huge integers, and happily returns lone UTF-16 surrogates ("\\ud800") that later fail
deep inside a tool when the text is encoded. `parse` turns each of these into a `JSONProblem` that
says what is wrong and where, so a server can answer with a specific client error instead of a 500:

- `not_utf8`: the bytes are not UTF-8;
- `syntax`: not JSON (including the NaN/Infinity literals Python accepts but JSON does not);
- `too_deep`: arrays/objects nested deeper than `max_depth` (checked with a byte scan before parsing);
- `lone_surrogate`: a string holds a `\\udXXX` escape with no partner, which is not Unicode text;
- `number_out_of_range`: an integer outside the signed 64-bit range, or a number that overflows a double.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
_MAX_INT_DIGITS = len(str(MAX_INT)) + 1  # longer literals are out of range without converting them

# A complete JSON string literal (escapes included); an unterminated one does not match.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# Tokens for recovering a top-level member without parsing: strings, punctuation, bare scalars.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', re.S)
_DEPTH_STEP = np.zeros(256, dtype=np.int8)
_DEPTH_STEP[[ord("["), ord("{")]] = 1
_DEPTH_STEP[[ord("]"), ord("}")]] = -1


class JSONProblem(ValueError):
    """Why a JSON text was refused: `kind` (see the module docstring), a message, and where.

    `path` is the dotted location of the offending value (`countries.0`, `(body)` for the root), or
    None when the text could not be parsed at all."""

    def __init__(self, kind: str, message: str, path: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.path = kind, message, path


class _OutOfRange:
    __slots__ = ("literal",)

    def __init__(self, literal: str):
        self.literal = literal


def _parse_int(literal: str) -> int | _OutOfRange:
    if len(literal) > _MAX_INT_DIGITS:
        return _OutOfRange(literal)
    value = int(literal)
    return value if MIN_INT <= value <= MAX_INT else _OutOfRange(literal)


def _parse_float(literal: str) -> float | _OutOfRange:
    value = float(literal)
    return value if math.isfinite(value) else _OutOfRange(literal)


def _parse_constant(name: str) -> Any:
    raise JSONProblem("syntax", f"{name} is not a JSON value (JSON has no NaN or Infinity).")


def max_depth_of(text: str) -> int:
    """How deeply arrays and objects nest in `text`, counting brackets outside string literals."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    steps = _DEPTH_STEP[np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max())


def check_depth(text: str, max_depth: int) -> None:
    # Cheap bound first: a text cannot nest deeper than it has opening brackets.
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = max_depth_of(text)
    if depth > max_depth:
        raise JSONProblem("too_deep", f"JSON nested {depth} levels deep; the limit is {max_depth} levels.")


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONProblem("not_utf8", f"not valid UTF-8: byte 0x{data[exc.start]:02x} at position {exc.start} "
                                      f"({exc.reason}).") from None


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _lone_surrogate(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"\\u{ord(text[exc.start]):04x}"
    return None


def find_problem(value: Any) -> JSONProblem | None:
    """The first lone surrogate or out-of-range number in a parsed value (iterative: no recursion)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            bad = _lone_surrogate(item)
            if bad:
                return JSONProblem("lone_surrogate", f"{path or '(body)'}: the string has a lone surrogate "
                                   f"({bad}), which is not valid Unicode text.", path or "(body)")
        elif isinstance(item, _OutOfRange):
            shown = item.literal if len(item.literal) <= 24 else f"{item.literal[:12]}...({len(item.literal)} chars)"
            return JSONProblem("number_out_of_range", f"{path or '(body)'}: the number {shown} is out of range "
                               "(integers must fit in 64 bits, other numbers in a double).", path or "(body)")
        elif isinstance(item, dict):
            for key, sub in reversed(item.items()):
                bad = _lone_surrogate(key)
                if bad:
                    where = path or "(body)"
                    return JSONProblem("lone_surrogate", f"{where}: a key has a lone surrogate ({bad}), which is "
                                       "not valid Unicode text.", where)
                stack.append((_join(path, key), sub))
        elif isinstance(item, list):
            stack.extend((_join(path, i), sub) for i, sub in reversed(list(enumerate(item))))
    return None


def parse(data: bytes | str, max_depth: int) -> Any:
    """Parse one JSON text, or raise `JSONProblem` saying what is wrong with it."""
    text = decode_utf8(data) if isinstance(data, (bytes, bytearray)) else data
    check_depth(text, max_depth)
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        raise JSONProblem("syntax", f"not valid JSON: {exc}.") from None
    except RecursionError:  # the depth scan should make this unreachable; never let it become a 500
        raise JSONProblem("too_deep", f"JSON nested too deeply; the limit is {max_depth} levels.") from None
    problem = find_problem(value)
    if problem is not None:
        raise problem
    return value


def top_level_member(text: str, name: str) -> Any:
    """The scalar value of member `name` of a top-level JSON object, found without parsing the whole
    text (so it works on texts that are too deep, hold bad numbers or are cut short). Returns None
    when there is no such member, it is not a string or a 64-bit integer, or the text is no object."""
    depth = 0
    key: Any = None
    after_colon = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "{[":
            if depth == 0 and token != "{":
                return None
            if depth == 1 and after_colon and key == name:
                return None  # the member is a container, not a scalar
            depth += 1
            after_colon = False
            continue
        if token in "}]":
            depth -= 1
            if depth <= 0:
                return None
            continue
        if depth != 1:
            continue
        if token == ":":
            after_colon = True
        elif token == ",":
            key, after_colon = None, False
        elif after_colon:
            if key == name:
                return _scalar(token)
            after_colon = False
        else:
            key = _scalar(token) if token.startswith('"') else None
    return None


def _scalar(token: str) -> str | int | None:
    if token.startswith('"'):
        try:
            value = json.loads(token)
        except ValueError:
            return None
        return value if _lone_surrogate(value) is None else None
    if re.fullmatch(r"-?(?:0|[1-9][0-9]{0,18})", token):
        value = int(token)
        return value if MIN_INT <= value <= MAX_INT else None
    return None
