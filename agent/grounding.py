"""Grounding check: every number and customer id in an answer must come from that turn's tool outputs.

The check is lexical and tolerant of presentation: an answer may round (£1,234 for 1234.4567),
abbreviate (£1.2k, 3.4m), show a 0..1 share or risk as a percentage (73% for 0.7312), or repeat a
number the user wrote themselves ("top 10"). Anything else that looks like a number or an id is
reported as unverified; the agent then asks the model to fix it once and, failing that, says in the
answer which figures it could not verify.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# A number as people write it in prose: optional currency, thousands separators, decimals, and a
# unit suffix. Tokens glued to letters ("P10", "Q4", "revenue_12m", "f_score") are names, not figures.
NUMBER = re.compile(
    r"(?<![\w./])(?P<cur>[£$€])?\s?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?P<suffix>\s?%|\s?(?:k|K|m|M|bn)\b)?(?![\w/])")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?\b")
# Numbered list markers ("1. ", "2) ") at the start of a line are layout, not claims.
LIST_MARKER = re.compile(r"(?m)^\s*\d{1,2}[.)]\s")

SCALE = {"k": 1e3, "m": 1e6, "bn": 1e9}


@dataclass
class Evidence:
    """Everything an answer may quote: numbers and strings from tool outputs and the user's words."""

    numbers: list[float] = field(default_factory=list)
    strings: set[str] = field(default_factory=set)
    text: str = ""

    def add_value(self, value: Any) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, (int, float)):
            if math.isfinite(value):
                self.numbers.append(float(value))
            return
        if isinstance(value, str):
            self.strings.add(value)
            self.text += "\n" + value
            for match in NUMBER.finditer(value):
                parsed = _parse(match)
                if parsed is not None:
                    self.numbers.append(parsed[0])
            return
        if isinstance(value, dict):
            for v in value.values():
                self.add_value(v)
            return
        if isinstance(value, (list, tuple)):
            for v in value:
                self.add_value(v)

    def add_json_text(self, text: str) -> None:
        try:
            self.add_value(json.loads(text))
        except (TypeError, ValueError):
            self.add_value(text)


def _parse(match: re.Match) -> tuple[float, int, str] | None:
    """(value, decimals shown, unit) of a matched number."""
    raw = match.group("num").replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    suffix = (match.group("suffix") or "").strip().lower()
    return value, decimals, suffix


def _matches(value: float, decimals: int, unit: str, candidates: Iterable[float]) -> bool:
    step = 10.0 ** -decimals
    for c in candidates:
        targets = [c]
        if unit == "%":
            targets = [c * 100, c]  # a 0..1 share shown as percent, or a value already in percent
        elif unit in SCALE:
            targets = [c / SCALE[unit]]
        for t in targets:
            # Shown with `decimals` places: the source rounds (either way) to the shown figure.
            if abs(abs(t) - value) <= step / 2 + 1e-9 * max(1.0, abs(t)):
                return True
            # Truncation rather than rounding ("£1,234" for 1234.9) is common enough to accept.
            if decimals == 0 and unit == "" and 0 <= abs(t) - value < 1:
                return True
    return False


def claims(answer: str) -> list[tuple[str, float, int, str]]:
    """(text, value, decimals, unit) of every figure in the answer, dates and list markers excluded."""
    # Paths and URLs carry digits (timestamps in export file names) that are not figures.
    text = re.sub(r"\S*[/\\]\S*", " ", DATE.sub(" ", LIST_MARKER.sub(" ", answer)))
    out = []
    for match in NUMBER.finditer(text):
        parsed = _parse(match)
        if parsed is not None:
            out.append((match.group(0).strip(), *parsed))
    return out


# "under 1%" / "over 99%" (predictor.figures.pct): a bound, grounded by a share beyond it, not a rounding.
BOUNDED_PCT = re.compile(r"\b(under|below|less than|over|above|more than) (\d+(?:\.\d+)?)%")


def _within_bound(word: str, bound: float, numbers: Iterable[float]) -> bool:
    below = word in ("under", "below", "less than")
    return any(0 < n * 100 < bound if below else bound < n * 100 < 100 for n in numbers if 0 < n < 1)


def unverified(answer: str, evidence: Evidence) -> list[str]:
    """Figures, ids and dates in `answer` that no tool output (or the user's message) contains."""
    bad: list[str] = []
    for m in list(BOUNDED_PCT.finditer(answer)):
        if _within_bound(m[1], float(m[2]), evidence.numbers):
            answer = answer.replace(m.group(0), m[1], 1)
    for date in DATE.findall(answer):
        if date[:10] not in evidence.text:
            bad.append(date)
    numbers = evidence.numbers
    for text, value, decimals, unit in claims(answer):
        digits = text.lstrip("£$€ ").rstrip("%kKmMbn ").replace(",", "")
        if digits in evidence.strings or _matches(value, decimals, unit, numbers):
            continue
        if text not in bad:
            bad.append(text)
    return bad


def evidence_from(tool_outputs: Iterable[Any], user_text: str = "") -> Evidence:
    ev = Evidence()
    for out in tool_outputs:
        if isinstance(out, str):
            ev.add_json_text(out)
        else:
            ev.add_value(out)
    if user_text:
        ev.add_value(user_text)
    return ev


def flag_note(bad: list[str]) -> str:
    shown = ", ".join(bad[:8]) + (" and more" if len(bad) > 8 else "")
    return (f"\n\nNote: I could not verify {shown} against the tool results of this question; "
            "treat these figures as unconfirmed.")


def feedback(bad: list[str]) -> str:
    return ("Grounding check: these figures or ids in your answer appear in no tool result of this "
            f"question: {', '.join(bad[:12])}. Rewrite the answer using only numbers and customer ids "
            "copied from the tool results (call a tool if you need a number you do not have).")
