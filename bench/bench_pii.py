"""Recall and precision of the PII masker (agent/privacy.py) on seeded synthetic marketer questions.

1. Generates `--questions` questions from `--seed`: about three in four carry planted personal data
   (e-mails, phones in UK, US and international formats, Luhn-valid Visa / Mastercard / Amex numbers
   with spaces, dashes or none, and person names after the cues the masker knows), at the start, in the
   middle or at the end, mixed with customer ids, amounts, dates, percentages and order numbers; the
   rest carry only those (negatives).
2. Runs `masker().detect` on each question and scores, per entity type: recall (planted values whose
   whole span a detection of the same type covers) and precision (detections that overlap a planted
   value of their type); on the negatives, the questions with any detection at all.
3. Times `masker().mask` per question (median and p95 ms, after the one-off build).

    .venv/bin/python bench/bench_pii.py                       # --seed 42 --questions 600
    .venv/bin/python bench/bench_pii.py --seed 7 --questions 2000 --show-misses 10

The generator (`generate`) is also what tests/test_privacy_masker.py scores on.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "PERSON")
FIRST = ["Priya", "James", "Olivia", "Mohammed", "Chen", "Siobhan", "Oluwaseun", "Zofia", "Mateo", "Aisha",
         "Liam", "Fatima", "Hiroshi", "Ana", "Grzegorz", "Emily", "Kwame", "Ingrid", "Rahul", "Sophie",
         "Jane", "Tom", "Lucía", "Niamh", "Dmitri", "Amara", "Ben", "Chloé", "Yusuf", "Hannah"]
LAST = ["Patel", "Smith", "O'Brien", "Nguyen", "Kowalski", "García", "Smith-Jones", "McDonald", "MacLeod",
        "Okafor", "Müller", "Johansson", "Khan", "Dubois", "Rossi", "Williams", "Brown", "Tanaka", "Murphy",
        "Doe", "Ahmed", "Novak", "Fernández", "Schmidt", "Evans", "Kim", "Lefebvre", "Walsh", "Osei", "Clarke"]
DOMAINS = ["example.co.uk", "example.com", "gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk",
           "shop.de", "boutique.fr", "retail.io", "company.org", "mail.ie", "store.com.au"]
US_AREAS = ["415", "212", "646", "312", "617", "206", "303", "512", "702", "305"]

POSITIVE = [
    "export the at-risk customers and send them to {email}",
    "{email} needs the list of gold customers who ordered since {date}",
    "send the churn report for customer {id} to {email} and {email2}",
    "Email the win-back plan for the {amount} budget to {email} before {date}",
    "can you share the top 50 customers with my colleague ({email})?",
    "call me on {phone} about customer {id}",
    "{phone} is my mobile, text me when the {amount} campaign is planned",
    "my number is {phone}; which customers lapsed after {date}?",
    "ring {phone} if customer {id}'s churn risk is above {pct}",
    "the customer's phone is {phone}, what's their predicted value? also try {phone2}",
    "charge card {card} for the {amount} campaign",
    "use {card} to pay for the reactivation campaign starting {date}",
    "my company card is {card}, expiry 09/27, budget {amount}",
    "Customer {id} paid with {card} on {date}, is that customer at risk?",
    "{card} was declined for {order}, what do we do?",
    "my name is {name}, plan a win-back for lapsed gold customers",
    "Hi, I'm {name}, what's the churn risk of customer {id}?",
    "Dear {first},\nhere are the top customers since {date}",
    "write an offer letter to Mrs {last} for {pct} off",
    "draft a note for Dr {last} about {order}",
    "a customer called {name} complained about {order}, check their value",
    "contact {name} at {email} about the {pct} discount",
    "e-mail {first} about the {amount} campaign results",
    "plan the Christmas campaign for gold customers. Regards, {name}",
    "which of my customers churned after {date}?\nThanks,\n{first}",
    "a shopper named {name} spent {amount} since {date}; is she at risk?",
    "I'm {name}, reach me at {email} or {phone}",
    "my name is {name}, card {card}, phone {phone}: set up the {amount} campaign",
    "Mr {last} ({phone}) wants to pay {amount} with {card}",
    # No cue before the name: the masker's known limit (docstring of agent/privacy.py), kept to show it.
    "{name} from finance approved {amount} for the spring campaign",
    "forward the plan to {name} in finance",
]
NEGATIVE = [
    "what's the churn risk of customer {id}?",
    "plan a win-back for lapsed gold customers with a budget of {amount}",
    "show orders between {date} and {date2} for customer {id}",
    "how many customers spent more than {amount} after {date}?",
    "give a {pct} discount to customers {id}, {id2} and {id3}",
    "why was {order} refunded?",
    "compare revenue of {date} with {date2}: is it up {pct}?",
    "customer {id} placed {order} worth {amount} on {date}",
    "what happened to {order} and {order2}?",
    "split the {amount} budget 60/40 between gold and silver customers from {date}",
    "top 100 customers by predicted 12-month value, excluding {id}",
    # Capitalised words after the masker's name cues.
    "Dear Team,\nshow the customers who lapsed since {date}",
    "Hi All, what's the churn risk of customer {id}?",
    "email Gold customers about the {pct} offer",
    "I'm Planning a {amount} campaign for March, who should we target?",
    "this is Urgent: customers who lapsed after {date}",
    "call Customer Services about {order}",
]


@dataclass
class Case:
    """One question and the personal data planted in it: (entity, start, end) spans."""

    text: str
    planted: list[tuple[str, int, int]] = field(default_factory=list)


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    total = 0
    for i, digit in enumerate(reversed(body)):
        d = int(digit) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def card(rng: random.Random) -> str:
    kind = rng.choice(["visa", "mastercard", "mastercard2", "amex"])
    if kind == "amex":
        digits = luhn_complete(rng.choice(["34", "37"]), 15, rng)
        groups = [digits[:4], digits[4:10], digits[10:]]
    else:
        prefix = {"visa": "4", "mastercard": str(rng.randint(51, 55)), "mastercard2": str(rng.randint(2221, 2720))}
        digits = luhn_complete(prefix[kind], 16, rng)
        groups = [digits[i:i + 4] for i in range(0, 16, 4)]
    return rng.choice([" ", "-", ""]).join(groups)


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def phone(rng: random.Random) -> str:
    """UK mobiles (with Ofcom's drama range 07700 900xxx) and London numbers, US numbers (with the
    555-01xx range) and international E.164 numbers, in the formats people type."""
    d, r = (lambda n: digits(rng, n)), rng.randint
    mobile = rng.choice(["7700 900", "7911 ", "7456 ", "7123 ", "7987 "])
    mobile += d(3 if mobile.endswith("900") else 6)
    london = f"20 7946 0{d(3)}" if rng.random() < 0.5 else f"20 {r(3, 8)}{d(3)} {d(4)}"
    area, ex, sub = rng.choice(US_AREAS), *(("555", f"01{d(2)}") if rng.random() < 0.5 else (f"{r(2, 9)}{d(2)}", d(4)))
    return rng.choice([
        f"0{mobile}", f"+44 {mobile}", "+44" + mobile.replace(" ", ""), f"0044 {mobile}",
        f"0{london}", f"+44 {london}", f"(0{london[:2]}) {london[3:]}",
        f"+1 ({area}) {ex}-{sub}", f"{area}-{ex}-{sub}", f"({area}) {ex}-{sub}", f"+1 {area} {ex} {sub}",
        f"{area}.{ex}.{sub}", f"+1{area}{ex}{sub}",
        f"+33 {r(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}", f"+49 30 {r(2, 9)}{d(6)}", f"+49 15{rng.choice('129')} {d(8)}",
        f"+353 8{rng.choice('3579')} {d(3)} {d(4)}", f"+91 9{d(4)} {d(5)}", f"+61 4{d(2)} {d(3)} {d(3)}",
        f"+34 6{d(2)} {d(3)} {d(3)}", f"+31 6 {d(8)}",
    ])


def email(rng: random.Random, first: str, last: str) -> str:
    clean = [re.sub(r"[^a-z]", "", s.lower().translate(str.maketrans("íéüá", "ieua"))) for s in (first, last)]
    local = rng.choice([f"{clean[0]}.{clean[1]}", f"{clean[0][0]}{clean[1]}", f"{clean[0]}{rng.randint(1, 99)}",
                        f"{clean[0]}_{clean[1]}", f"{clean[1]}.{clean[0]}+news"])
    address = f"{local}@{rng.choice(DOMAINS)}"
    return address.upper() if rng.random() < 0.05 else address


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def innocuous(slot: str, rng: random.Random) -> str:
    """Customer ids, amounts, dates, percentages and order numbers: never personal data."""
    r = rng.randint
    day, month, year = r(1, 28), MONTHS[r(0, 11)], rng.choice([2010, 2011])
    iso = f"{year}-{MONTHS.index(month) + 1:02d}-{day:02d}"
    choices = {
        "id": [str(r(12346, 18287))],
        "amount": [f"£{r(1, 99)},{r(0, 999):03d}", f"{r(100, 9999)} pounds", f"${r(1, 9)}.{r(1, 9)}k", f"€{r(50, 900)}",
                   f"£{r(1, 99)}.{r(0, 99):02d}", f"{r(1, 9)},{r(100, 999)},000"],
        "date": [iso, f"{day} {month} {year}", f"{month} {day}, {year}", f"{iso[8:]}/{iso[5:7]}/{year}",
                 f"{month[:3]} {year}", f"{iso} 08:30"],
        "pct": [f"{r(5, 60)}%", f"{r(1, 30)}.5%", f"{r(5, 40)} per cent"],
        "order": [f"order {r(536365, 581587)}", f"invoice C{r(536365, 581587)}", f"order #{r(1000000, 9999999)}",
                  f"order no. {r(10000000, 99999999)}", f"ORD-{year}-{r(0, 999999):06d}",
                  f"order {r(1000000000, 9999999999)}"],
    }
    return rng.choice(choices[re.sub(r"\d$", "", slot)])


def fill(template: str, rng: random.Random) -> Case:
    """The template with each slot filled; planted spans recorded as the text is built."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    pii = {"email": ("EMAIL_ADDRESS", lambda: email(rng, first, last)), "phone": ("PHONE_NUMBER", lambda: phone(rng)),
           "card": ("CREDIT_CARD", lambda: card(rng)), "name": ("PERSON", lambda: f"{first} {last}"),
           "first": ("PERSON", lambda: first), "last": ("PERSON", lambda: last)}
    text, planted = "", []
    for i, part in enumerate(re.split(r"\{(\w+)\}", template)):
        if i % 2 == 0:
            text += part
            continue
        kind = pii.get(re.sub(r"\d$", "", part))
        value = kind[1]() if kind else innocuous(part, rng)
        if kind:
            planted.append((kind[0], len(text), len(text) + len(value)))
        text += value
    return Case(text, planted)


def generate(seed: int = 42, n: int = 600, negative_share: float = 0.25) -> list[Case]:
    """`n` seeded questions; about `negative_share` of them carry no personal data."""
    rng = random.Random(seed)
    return [fill(rng.choice(NEGATIVE if rng.random() < negative_share else POSITIVE), rng) for _ in range(n)]


def score(cases: list[Case], detect) -> dict:
    """Per entity: planted, found (fully covered by a same-type detection), detections, correct; plus
    the negatives with any detection and the misses and false alarms as (entity, text, question)."""
    stats = {e: {"planted": 0, "found": 0, "detected": 0, "correct": 0} for e in ENTITIES}
    out = {"stats": stats, "negatives": 0, "negatives_flagged": 0, "misses": [], "false": []}
    for case in cases:
        spans = detect(case.text)
        out["negatives"] += not case.planted
        out["negatives_flagged"] += bool(spans) and not case.planted
        for entity, start, end in case.planted:
            stats[entity]["planted"] += 1
            hit = any(s.entity == entity and s.start <= start and s.end >= end for s in spans)
            stats[entity]["found"] += hit
            if not hit:
                out["misses"].append((entity, case.text[start:end], case.text))
        for s in spans:
            stats[s.entity]["detected"] += 1
            ok = any(e == s.entity and s.start < end and s.end > start for e, start, end in case.planted)
            stats[s.entity]["correct"] += ok
            if not ok:
                out["false"].append((s.entity, case.text[s.start:s.end], case.text))
    return out


def ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def report(result: dict, timings: list[float], build_s: float, args: argparse.Namespace) -> None:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    print("command:", " ".join([python, *sys.argv]))
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"questions: {args.questions}, seed: {args.seed}, masker build: {build_s:.2f} s (one-off)\n")
    print(f"{'entity':<15}{'planted':>8}{'found':>7}{'recall':>8}{'masked':>8}{'correct':>8}{'precision':>10}")
    for entity, s in result["stats"].items():
        print(f"{entity:<15}{s['planted']:>8}{s['found']:>7}{ratio(s['found'], s['planted']):>8}"
              f"{s['detected']:>8}{s['correct']:>8}{ratio(s['correct'], s['detected']):>10}")
    print(f"\nnegative questions (ids, amounts, dates, percentages, orders only): {result['negatives']}, "
          f"with any masking: {result['negatives_flagged']} "
          f"({ratio(result['negatives_flagged'], result['negatives'])})")
    print(f"mask() per question: median {statistics.median(timings):.3f} ms, "
          f"p95 {sorted(timings)[int(0.95 * (len(timings) - 1))]:.3f} ms, max {max(timings):.3f} ms")
    for title, rows in (("missed", result["misses"]), ("false alarms", result["false"])):
        for entity, value, text in rows[:args.show_misses]:
            print(f"  {title}: {entity} {value!r} in {text!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--questions", type=int, default=600)
    parser.add_argument("--show-misses", type=int, default=5, help="print up to N misses and false alarms")
    args = parser.parse_args(argv)

    from agent.privacy import masker

    started = time.perf_counter()
    pii = masker()
    build_s = time.perf_counter() - started
    cases = generate(args.seed, args.questions)
    timings = []
    for case in cases:
        started = time.perf_counter()
        pii.mask(case.text)
        timings.append((time.perf_counter() - started) * 1000)
    report(score(cases, pii.detect), timings, build_s, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
