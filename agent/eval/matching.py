"""Does an argument the agent passed satisfy the case's expectation?

Plain values compare tolerantly (numbers to 1e-6, strings case-, space- and dash-insensitive), lists as
sets; a mapping is a matcher with operators (`approx`, `range`, `one_of`, `contains`, `items`, ...,
see `cases.MATCHER_KEYS`). Every check returns (ok, reason when not) so a report can say why.

One argument implies another: `at_risk: true` selects customers whose lifecycle is one of
`predictor.customers.tiers.AT_RISK_STAGES` ("at risk", "lapsing") with churn risk at or above the
population's lowest quarter. So when a call sets `at_risk: true` and no lifecycle of its own, an
expectation on `lifecycle` is judged against the stages the flag implies: `{contains_any: [at risk,
lapsing]}` and `[at risk, lapsing]` are met, `[lapsing]` is not (the flag also keeps "at risk"
customers), `{absent: true}` is not (the flag restricts the lifecycle). The other way round there is no
implication: an expected `at_risk: true` is met only by `at_risk: true`, never by a lifecycle list
(which would also keep the low-churn customers the definition leaves out). Booleans match booleans only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from agent.eval.references import REF_PREFIX, Call, Unresolved, resolve

DEFAULT_REL_TOL = 0.02
Outcome = tuple[bool, str]
OK: Outcome = (True, "")


def norm_str(s: str) -> str:
    s = s.strip().lower().replace("\u2019", "'")
    return re.sub(r"[\s_\-]+", " ", s)


def as_number(v: Any) -> float | None:
    """A number, or a string holding one ("£1,234.50"); None for anything else (booleans included)."""
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
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual  # True is not 1, nor "true"
    en, an = as_number(expected), as_number(actual)
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return an is not None and math.isclose(en, an, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, str) and isinstance(actual, str):
        return norm_str(expected) == norm_str(actual)
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


def match_value(expected: Any, actual: Any, turns_calls: list[list[Call]] | None = None) -> Outcome:
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


# ---------------------------------------------------------------- matcher operators
# Each takes (operand, actual, turns_calls). `absent`, `present` and `one_of` decide alone; the rest
# must all hold, checked in the order below so the first failing one gives the reason.


def _one_of(options: list, actual: Any, turns_calls: list[list[Call]]) -> Outcome:
    absent = actual is None or actual == []
    for option in options:
        if option is None and absent:
            return OK
        if option is not None and match_value(option, actual, turns_calls)[0]:
            return OK
    return False, f"expected one of {options}, got {actual!r}"


def _approx(ops: dict, actual: Any) -> Outcome:
    target, num = float(ops["approx"]), as_number(actual)
    tol = float(ops.get("tol", DEFAULT_REL_TOL))
    if num is None or not math.isclose(num, target, rel_tol=tol, abs_tol=1e-9):
        return False, f"expected about {target} (±{tol:.0%}), got {actual!r}"
    return OK


def _range(bounds: list, actual: Any, _: Any) -> Outcome:
    lo, hi = bounds
    num = as_number(actual)
    if num is None or not (lo <= num <= hi):
        return False, f"expected a number in [{lo}, {hi}], got {actual!r}"
    return OK


def _startswith(prefix: Any, actual: Any, _: Any) -> Outcome:
    if not isinstance(actual, str) or not norm_str(actual).startswith(norm_str(str(prefix))):
        return False, f"expected a value starting {prefix!r}, got {actual!r}"
    return OK


def _contains_any(words: list, actual: Any, _: Any) -> Outcome:
    text = norm_str(json.dumps(actual) if not isinstance(actual, str) else actual)
    if not any(norm_str(w) in text for w in words):
        return False, f"expected one of {words} in {actual!r}"
    return OK


def _contains(wanted: list, actual: Any, turns_calls: list[list[Call]]) -> Outcome:
    if not isinstance(actual, list):
        return False, f"expected a list containing {wanted}, got {actual!r}"
    for e in wanted:
        if not any(match_value(e, a, turns_calls)[0] for a in actual):
            return False, f"{e!r} missing from {actual!r}"
    return OK


def _len(n: int, actual: Any, _: Any) -> Outcome:
    if not isinstance(actual, list) or len(actual) != n:
        return False, f"expected {n} items, got {actual!r}"
    return OK


def _items(specs: list[dict], actual: Any, turns_calls: list[list[Call]]) -> Outcome:
    """Each spec (field -> matcher) matches a different item of the list."""
    if not isinstance(actual, list):
        return False, f"expected a list, got {actual!r}"
    remaining = list(actual)
    for spec in specs:
        hit = next((i for i, a in enumerate(remaining) if isinstance(a, dict) and all(
            match_value(m, a.get(k), turns_calls)[0] for k, m in spec.items())), None)
        if hit is None:
            return False, f"no item matches {spec} in {actual!r}"
        remaining.pop(hit)
    return OK


_CHECKS: list[tuple[str, Callable[[Any, Any, list[list[Call]]], Outcome]]] = [
    ("range", _range), ("startswith", _startswith), ("contains_any", _contains_any),
    ("contains", _contains), ("len", _len), ("items", _items)]


def _match_ops(ops: dict, actual: Any, turns_calls: list[list[Call]]) -> Outcome:
    absent = actual is None or actual == []
    if ops.get("absent"):
        return (absent, "" if absent else f"expected no value, got {actual!r}")
    if ops.get("present") and absent:
        return False, "expected a value, got none"
    if "one_of" in ops:
        return _one_of(ops["one_of"], actual, turns_calls)
    if "approx" in ops:
        outcome = _approx(ops, actual)
        if not outcome[0]:
            return outcome
    for key, check in _CHECKS:
        if key in ops:
            outcome = check(ops[key], actual, turns_calls)
            if not outcome[0]:
                return outcome
    return OK


def implied_args(actual: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments with what they imply made explicit: `at_risk: true` without a lifecycle of
    its own restricts the lifecycle to the at-risk stages (see the module docstring)."""
    if actual.get("at_risk") is True and actual.get("lifecycle") in (None, []):
        # Here, not at the top: tiers loads pandas, and `valuedesk --help` imports this package.
        from predictor.customers.tiers import AT_RISK_STAGES

        return {**actual, "lifecycle": list(AT_RISK_STAGES)}
    return actual


def match_args(expected: dict[str, Any], actual: dict[str, Any],
               turns_calls: list[list[Call]] | None = None) -> list[str]:
    """Mismatch reasons (empty = every key argument matches)."""
    problems = []
    effective = implied_args(actual)
    for key, matcher in expected.items():
        ok, why = match_value(matcher, effective.get(key), turns_calls)
        if not ok:
            implied = " (implied by at_risk: true)" if effective.get(key) is not actual.get(key) else ""
            problems.append(f"{key}: {why}{implied}")
    return problems
