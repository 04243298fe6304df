"""Time slots: recency windows ("not in six months", "ordered in the last quarter", "since March 2011")
and the dated orders of a history to score ("£120 on 3 March 2011")."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from dateutil import parser as dateparser

from agent.planner.facts import PlannerFacts
from agent.planner.vocabulary import MONTHS

UNIT_DAYS = {"day": 1, "days": 1, "week": 7, "weeks": 7, "month": 30, "months": 30, "year": 365, "years": 365,
             "quarter": 90, "quarters": 90}
NOT_ORDERED = re.compile(r"\b(haven'?t|have not|hasn'?t|has not|not|no|didn'?t|without|stopped|silent|quiet)\b"
                         r"[^.?!]{0,40}\b(in|for|since|over)\b[^.?!]{0,12}?(?:the )?(?:last |past )?"
                         r"(\d+)?\s?(days?|weeks?|months?|years?|quarters?)\b")
ORDERED = re.compile(r"\b(ordered|bought|purchased|active|shopped|order|ordering|buying|placed)\b[^.?!]{0,30}?"
                     r"\b(in|within|during|over) (?:the )?(?:last|past|previous) (\d+)?\s?"
                     r"(days?|weeks?|months?|years?|quarters?)\b")
SINCE = re.compile(r"\bsince (\d{4}-\d{2}-\d{2}|\d{1,2} [a-z]+ \d{4}|[a-z]+ \d{4})")
DATE_TEXT = (r"(\d{4}-\d{2}-\d{2}|\d{1,2}(?:st|nd|rd|th)? (?:of )?[a-z]{3,9},? \d{4}|"
             r"(?:january|february|march|april|may|june|july|august|september|october|november|december|"
             r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec) \d{1,2}(?:st|nd|rd|th)?,? \d{4})")
ORDER = re.compile(r"(?:£|\$|€)\s?(\d+(?:\.\d+)?)[^.;£$€]{0,30}?\b(?:on|dated|at)?\s?" + DATE_TEXT
                   + r"|" + DATE_TEXT + r"[^.;£$€]{0,20}?(?:£|\$|€)\s?(\d+(?:\.\d+)?)")
MONTH_NAMES = list(MONTHS)[:12]  # "january" ... "december"
NOT_MONTH_WORDS = {"st", "nd", "rd", "th", "of"}  # "3rd of march"
FIRST_OF_MONTH = datetime(2000, 1, 1)  # what dateutil fills in for a missing day


def recency_slots(text: str, facts: PlannerFacts) -> dict[str, float]:
    """min_recency_days (no order for that long) or max_recency_days (an order within it)."""
    negative, positive = NOT_ORDERED.search(text), ORDERED.search(text)
    if negative:
        return {"min_recency_days": float(int(negative.group(3) or 1) * UNIT_DAYS[negative.group(4)])}
    if positive:
        return {"max_recency_days": float(int(positive.group(3) or 1) * UNIT_DAYS[positive.group(4)])}
    since = SINCE.search(text)
    as_of = facts.as_of() if since else None
    if as_of is None:
        return {}
    day = parse_date(since.group(1))
    if day is None:
        return {}
    days = float(max(0, (as_of - day).days))
    key = "min_recency_days" if re.search(r"\b(haven'?t|not|no|hasn'?t|didn'?t)\b", text) else "max_recency_days"
    return {key: days}


def parse_date(text: str) -> datetime | None:
    """An ISO date or a written one ("3rd of March, 2011", "march 3 2011", "may 2011": the 1st). The
    month word is read by its first three letters ("sept", "marchh": typo repair leaves some), and a
    date with any other word ("5 monday 2011") is no date."""
    text = text.strip().lower().rstrip(".,")
    words = [w for w in re.findall(r"[a-z]+", text) if w not in NOT_MONTH_WORDS]
    if not words:
        try:
            return datetime.fromisoformat(text[:10])
        except ValueError:
            return None
    month = MONTHS.get(words[0]) or MONTHS.get(words[0][:3])
    if month is None or len(words) > 1:
        return None
    text = re.sub(r"\b" + words[0] + r"\b", MONTH_NAMES[month - 1], text, count=1)
    try:
        return dateparser.parse(text, default=FIRST_OF_MONTH)
    except (ValueError, OverflowError):
        return None


def orders_in(text: str) -> list[dict[str, Any]]:
    """Amount/date pairs written in the question ("£120 on 3 march 2011", "one order of £450 on 2011-11-20")."""
    out = []
    for m in ORDER.finditer(text):
        amount = m.group(1) or m.group(4)
        day = parse_date(m.group(2) or m.group(3))
        if amount and day:
            out.append({"timestamp": day.date().isoformat(), "amount": float(amount)})
    return out
