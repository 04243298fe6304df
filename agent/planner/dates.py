"""Time slots: recency windows ("not in six months", "ordered in the last quarter", "since March 2011",
"since the first of September") and the dated orders of a history to score ("£120 on 3 March 2011").

Dates are read by `dateparser`, relative to the data's as-of date (the facts'), never to today: "six
months ago" means six months before the scores' date. Month names come from the standard library's
`calendar`; `text2num` turns ordinal words into digits ("the third of March" -> "3rd of march").
"""

from __future__ import annotations

import calendar
import functools
import re
from datetime import datetime
from typing import Any

from text_to_num import alpha2digit

from agent.planner.facts import PlannerFacts
from agent.planner.vocabulary import MONEY_UNIT

MONTH_NAMES = [m.lower() for m in calendar.month_name[1:]]  # "january" ... "december"
MONTH_WORD = (r"(?:" + "|".join(sorted({*MONTH_NAMES, *(m[:3] for m in MONTH_NAMES), "sept"}, key=len, reverse=True))
              + r")[a-z]*")
UNIT = r"(days?|weeks?|fortnights?|months?|years?|quarters?)"
NOT_ORDERED = re.compile(r"\b(haven'?t|have not|hasn'?t|has not|not|no|didn'?t|without|stopped|silent|quiet)\b"
                         r"[^.?!]{0,40}\b(in|for|since|over)\b[^.?!]{0,12}?(?:the )?(?:last |past )?"
                         r"(\d+)?\s?" + UNIT + r"\b")
ORDERED = re.compile(r"\b(ordered|bought|purchased|active|shopped|order|ordering|buying|placed)\b[^.?!]{0,30}?"
                     r"\b(in|within|during|over) (?:the )?(?:last|past|previous) (\d+)?\s?" + UNIT + r"\b")
DAY = r"\d{1,2}(?:st|nd|rd|th)?(?!\d)"
DATE_TEXT = (r"(\d{4}-\d{2}-\d{2}|(?:" + DAY + r" (?:of )?)?" + MONTH_WORD + r"(?: " + DAY + r")?,?(?: \d{4})?|"
             + DAY + r" [a-z]{3,9},? \d{4})")
SINCE = re.compile(r"\bsince (?:the )?(?:start of |beginning of )?" + DATE_TEXT)
# An order's date: "3 march 2011", "2011-03-03", "march 3, 2011", "10/10/2011" (day first, as a UK shop
# writes it) or a month alone ("jan 2011": its first day, enough for a score over months).
ORDER_DATE = (DAY + r" (?:of )?[a-z]{3,9},? \d{4}|\d{4}-\d{2}-\d{2}|" + MONTH_WORD + r" " + DAY + r",? \d{4}|"
              r"\d{1,2}/\d{1,2}/\d{4}|" + MONTH_WORD + r",? \d{4}")
MONEY = r"(?:£|\$|€)\s?(?P<{0}>\d+(?:\.\d+)?)|(?P<{0}w>\d+(?:\.\d+)?) ?" + MONEY_UNIT + r"\b"
# An amount and its date, either way round; or a bare amount right before "on <date>" ("1,800 pounds on
# 5 Aug and 2,400 on 30 Sept"), read only in a history whose other orders are written as money.
ORDER = re.compile(r"(?:" + MONEY.format("a") + r")[^.;£$€]{0,30}?\b(?:on|dated|at)?\s?(?:the )?(?P<d>" + ORDER_DATE
                   + r")|(?P<e>" + ORDER_DATE + r")[^.;£$€]{0,20}?(?:" + MONEY.format("b") + r")|"
                   r"(?<![\d.,/-])(?P<n>\d+(?:\.\d+)?) (?:on|dated) (?:the )?(?P<f>" + ORDER_DATE + r")")
SLASH_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
NOT_MONTH_WORDS = {"st", "nd", "rd", "th", "of", "the"}
# dateparser reads no quarters; a quarter is three months.
QUARTER = re.compile(r"(\d+) quarters?")


@functools.lru_cache(maxsize=1)
def _dateparser():
    import dateparser

    return dateparser


def recency_slots(text: str, facts: PlannerFacts) -> dict[str, float]:
    """min_recency_days (no order for that long) or max_recency_days (an order within it), counted back
    from the data's as-of date."""
    negative, positive = NOT_ORDERED.search(text), ORDERED.search(text)
    window = negative or positive
    as_of = facts.as_of()
    if window:
        days = days_back(int(window.group(3) or 1), window.group(4), as_of)
        if days is None:
            return {}
        return {"min_recency_days" if negative else "max_recency_days": days}
    since = SINCE.search(_ordinals_as_digits(text))
    if since is None or as_of is None:
        return {}
    day = parse_date(since.group(1), as_of)
    if day is None:
        return {}
    days = float(max(0, (as_of - day).days))
    key = "min_recency_days" if re.search(r"\b(haven'?t|not|no|hasn'?t|didn'?t)\b", text) else "max_recency_days"
    return {key: days}


def days_back(count: int, unit: str, as_of: datetime | None) -> float | None:
    """How many days "`count` `unit` ago" lies before the as-of date (months and years as the calendar
    has them; the first of the month when no as-of date is known)."""
    base = as_of or datetime(2000, 1, 1)
    phrase = QUARTER.sub(lambda m: f"{3 * int(m.group(1))} months", f"{count} {unit}") + " ago"
    then = _dateparser().parse(phrase, languages=["en"], settings={"RELATIVE_BASE": base})
    return None if then is None else float((base - then).days)


def parse_date(text: str, as_of: datetime | None = None) -> datetime | None:
    """An ISO date or a written one ("3rd of March, 2011", "the first of september 2011", "march 3 2011",
    "may 2011": the 1st; "march" alone: the latest March before the as-of date). The month word is read
    by its first three letters ("sept", "marchh": typo repair leaves some), and a date with any other
    word ("5 monday 2011") is no date."""
    text = alpha2digit(text.strip().lower().rstrip(".,"), "en", threshold=0)
    words = [w for w in re.findall(r"[a-z]+", text) if w not in NOT_MONTH_WORDS]
    slash = SLASH_DATE.fullmatch(text)
    if slash:
        return _slash_date(*(int(g) for g in slash.groups()))
    if not words:
        try:
            return datetime.fromisoformat(text[:10])
        except ValueError:
            return None
    month = next((m for m in MONTH_NAMES if m[:3] == words[0][:3]), None)
    if month is None or len(words) > 1:
        return None
    text = re.sub(r"\b" + words[0] + r"\b", month, re.sub(r"\bthe\b", "", text), count=1)
    settings: dict[str, Any] = {"PREFER_DAY_OF_MONTH": "first", "PREFER_DATES_FROM": "past",
                                "REQUIRE_PARTS": ["month"]}
    if as_of is not None:
        settings["RELATIVE_BASE"] = as_of
    elif not re.search(r"\d{4}", text):
        return None  # no year and no as-of date to place it before
    return _dateparser().parse(text.strip(), languages=["en"], settings=settings)


def _slash_date(first: int, second: int, year: int) -> datetime | None:
    """"10/11/2011" is the 10th of November (day first, the shop's own convention); "11/25/2011" can only
    be month first."""
    day, month = (second, first) if second > 12 >= first else (first, second)
    try:
        return datetime(year, month, day)
    except ValueError:
        return None


def _ordinals_as_digits(text: str) -> str:
    """"the first of september" -> "the 1st of september": the normalise stage keeps "first" and
    "second" as words, which a date's day is not."""
    return alpha2digit(text, "en", threshold=0)


def orders_in(text: str) -> list[dict[str, Any]]:
    """Amount/date pairs written in the question ("£120 on 3 march 2011", "one order of £450 on 2011-11-20")."""
    out, bare = [], []
    for m in ORDER.finditer(_ordinals_as_digits(text)):
        amount = m.group("a") or m.group("aw") or m.group("b") or m.group("bw")
        day = parse_date(m.group("d") or m.group("e") or m.group("f"))
        if day and (amount or m.group("n")):
            order = {"timestamp": day.date().isoformat(), "amount": float(amount or m.group("n"))}
            (out if amount else bare).append(order)
    return out + bare if out else []
