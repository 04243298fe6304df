"""Is every figure and date in an answer backed by the turn's evidence?

Evidence is what the answer may quote: the tool outputs of the turn (values, and the period a field
is named for: `revenue_12m` backs "the last 12 months"), its tool arguments and the user's own words. A figure counts as grounded when it is a presentation of one of the evidence numbers
at the precision the answer shows it (rounded or truncated, as a percentage, in k/m/bn); a date when
an evidence date starts with it (a month-year matches any day of that month).

Deliberately independent of agent.grounding: the agent must not be graded by its own checker.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from dateutil.parser import parserinfo
from pydantic import BaseModel

# A figure as written in prose: currency, thousands separators, decimals, a %/k/m/bn unit.
# Tokens glued to letters, digits or underscores ("P10", "Q4", "revenue_12m", "3rd") are names.
_NUM = re.compile(
    r"(?<![A-Za-z0-9_.])(?P<cur>[£$€]\s?)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s?(?P<unit>%|percent\b|per cent\b|k\b|K\b|m\b|M\b|bn\b|million\b))?(?![A-Za-z0-9_])")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?!\d)")
# English month names and abbreviations ("Sep", "Sept", "September") from dateutil, whatever the locale.
_MONTH_NAMES = parserinfo()
_MON = (r"(?P<mon>" + "|".join(sorted((n for names in parserinfo.MONTHS for n in names), key=len, reverse=True))
        + r")\.?")
_WRITTEN_DATES = [
    re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?\s+" + _MON + r",?\s+(?P<year>\d{4})\b", re.I),
    re.compile(r"\b" + _MON + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>\d{4})\b", re.I),
    re.compile(r"\b" + _MON + r"\s+(?P<year>\d{4})\b", re.I),
]
_LIST_MARKER = re.compile(r"(?m)^(\s*)\d{1,2}[.)](?=\s)")
_SCALE = {"k": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9}
# A field named for the period it covers ("revenue_12m"): the answer may say "the last 12 months".
_PERIOD_KEY = re.compile(r"_(\d+)(?:d|w|m|y)$")


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
            self._add_text(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                period = _PERIOD_KEY.search(str(k))
                if period:
                    self.numbers.append(float(period[1]))
                self.add(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self.add(v)
        return self

    def _add_text(self, text: str) -> None:
        # A date's parts are not figures ("12%" must not be grounded by 2011-12-08), but its year is.
        for m in _ISO_DATE.finditer(text):
            self.dates.add(f"{m[1]}-{m[2]}-{m[3]}")
            self.numbers.append(float(m[1]))
        for _, number, _, _ in figures(text):
            self.numbers.append(number)


def figures(text: str) -> list[tuple[str, float, int, str]]:
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
            month = _MONTH_NAMES.month(m["mon"].rstrip("."))
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


# "under 1%" / "over 99%": a bound, not a rounding (predictor.figures.pct writes them for shares beyond it).
_BOUNDED_PCT = re.compile(r"\b(under|below|less than|over|above|more than) (\d+(?:\.\d+)?)%")


def _bound_holds(word: str, bound: float, candidates: Iterable[float]) -> bool:
    """Some evidence share (0..1) lies strictly beyond the bound on the stated side, and inside 0..100%."""
    below = word in ("under", "below", "less than")
    return any(0 < c * 100 < bound if below else bound < c * 100 < 100 for c in candidates if 0 < c < 1)


def groundedness(answer: str, evidence: Evidence) -> Grounding:
    """Count the figures and dates in `answer` and list those the evidence does not back."""
    bad: list[str] = []
    total = 0
    for m in list(_BOUNDED_PCT.finditer(answer)):
        if _bound_holds(m[1], float(m[2]), evidence.numbers):
            total += 1
            answer = answer.replace(m.group(0), m[1], 1)  # grounded as a bound; not re-read as a rounding
    for shown, iso in _date_claims(answer):
        total += 1
        if not any(d.startswith(iso) for d in evidence.dates):
            bad.append(shown)
    for shown, value, decimals, unit in figures(answer):
        total += 1
        if not figure_matches(value, decimals, unit, evidence.numbers):
            bad.append(shown.strip())
    return Grounding(figures=total, grounded=total - len(bad), ungrounded=bad)
