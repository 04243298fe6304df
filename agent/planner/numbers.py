"""Numbers written in words or shorthand become digits ("top fifty" -> 50, "£1.5k" -> 1500)."""

from __future__ import annotations

import re

UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                    "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
TENS.update({"fourty": 40, "ninty": 90})  # common misspellings
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000,
          "trillion": 1_000_000_000_000, "grand": 1000}
NUMBER_WORD = re.compile(
    r"\b(?:(?:a|an|one)\s+)?(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fourty|fifty|sixty|seventy|eighty|ninety|ninty|"
    r"hundred|thousand|million|billion|trillion|grand|dozen|half)(?:[\s-]+(?:and\s+)?(?:one|two|three|four|five|six|"
    r"seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|"
    r"forty|fourty|fifty|sixty|seventy|eighty|ninety|ninty|hundred|thousand|million|billion|trillion|grand))*\b")
# "1.5k", "2k", "3 grand", "2m": each suffix and the factor it stands for.
SHORTHAND = [(r"(k|grand)", 1000), (r"(m|mn|million)", 1e6), (r"(bn|billion)", 1e9), (r"(tn|trillion)", 1e12)]


def words_to_number(text: str) -> float | None:
    words = [w for w in re.split(r"[\s-]+", text.lower()) if w and w != "and"]
    if words and words[0] in ("a", "an"):
        words[0] = "one"
    if words == ["dozen"] or words == ["one", "dozen"]:
        return 12
    if words == ["half"]:
        return None
    total, current, seen = 0.0, 0.0, False
    for w in words:
        if w in UNITS:
            current += UNITS[w]
        elif w in TENS:
            current += TENS[w]
        elif w == "hundred":
            current = (current or 1) * 100
        elif w in ("thousand", "million", "billion", "trillion", "grand"):
            total += (current or 1) * SCALES[w]
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


def numbers_to_digits(text: str) -> str:
    def repl(m: re.Match) -> str:
        value = words_to_number(m.group(0))
        if value is None:
            return m.group(0)
        return str(int(value)) if value == int(value) else str(value)

    # Shorthand (money and counts alike) goes first: the word pass would read "grand" on its own as
    # a thousand.
    for suffix, factor in SHORTHAND:
        text = re.sub(r"(\d+(?:\.\d+)?)\s?" + suffix + r"\b",
                      lambda m, factor=factor: format_number(float(m.group(1)) * factor), text)
    text = NUMBER_WORD.sub(repl, text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return text


def format_number(v: float) -> str:
    return str(int(v)) if v == int(v) else str(v)


def in_words(value: float) -> str:
    """A round amount in words ("one billion"), so a refusal quotes a limit without an ungrounded figure."""
    names = {v: k for k, v in UNITS.items()}
    for scale, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if value >= scale and value % scale == 0 and value / scale in names:
            return f"{names[int(value / scale)]} {word}"
    return f"{value:,.0f}"
