"""Numbers written in words or shorthand become digits ("top fifty" -> 50, "£1.5k" -> 1500).

Number words are read by `text2num` (alpha2digit / text2num: "one hundred and twenty", "fifteen hundred",
"twenty-five", "fourty"), not by a table of our own. What it leaves to us is money shorthand, which is
not number words: "£2k", "1.5k", "3 grand", "2m", and "a"/"an" before a scale word ("a thousand").
"""

from __future__ import annotations

import re

from text_to_num import alpha2digit, text2num

from agent.planner.vocabulary import MONEY_UNIT

# "1.5k", "2k", "3 grand", "2m": each suffix and the factor it stands for. Applied to digits only, before
# the word pass (which would read "million" on its own as 1000000) and again after it ("two grand" is
# "2 grand" once the word pass has run).
SHORTHAND = [(r"(k|thousand)", 1000), (r"(m|mn|million)", 1e6), (r"(bn|billion)", 1e9),
             (r"(tn|trillion)", 1e12)]
# "Grand" is only ever money: "3 grand" reads "3000 quid", so the amount stays money ("we've got two
# grand to spend" is a budget) and is never taken for a count of customers.
GRAND = re.compile(r"(£|\$|€)?(\d+(?:\.\d+)?)\s?grand\b")
# A dot before exactly three digits in a money amount is a thousands separator ("1.000 pounds", "€2.500"),
# as much of Europe writes it; elsewhere a dot is a decimal point ("churn 0.5", "1.5k").
DOT_THOUSANDS = re.compile(r"(?:(?<=[£$€])|(?<=[£$€] ))([1-9]\d{0,2}(?:\.\d{3})+)(?![\d.])|"
                           r"(?<![\d.])([1-9]\d{0,2}(?:\.\d{3})+)(?=\s?" + MONEY_UNIT + r"\b)")
# "a thousand", "an hundred": the article stands for one; "a dozen" is twelve (text2num has no dozen).
ARTICLE_SCALE = re.compile(r"\b(?:a|an|one)\s+(hundred|thousand|million|billion|trillion|grand)\b")
# "half a grand", "half a million": half the scale (text2num reads "half" as nothing).
HALF_SCALE = re.compile(r"\bhalf (?:a|an|one) (hundred|thousand|k|million|grand)\b")
SCALE = {"hundred": 100, "thousand": 1000, "k": 1000, "million": 1e6, "grand": 1000}
# A comma as the decimal mark, as much of Europe writes it ("churn above 0,6", "2,5k", "12,5%"): a leading
# zero, or one or two digits after the comma before a unit; "1,500" (three digits) stays a thousands separator.
DECIMAL_COMMA = re.compile(r"(?<![\d.,])(0,\d+|\d{1,3},\d{1,2}(?=\s?(?:k|%|percent|grand|thousand|million)\b|\s?"
                           + MONEY_UNIT + r"\b|\s?%))(?![\d,])")
# Currency codes before an amount ("GBP 3,000", "EUR500") read as the symbol.
CURRENCY_CODE = re.compile(r"\b(gbp|eur|usd)\s?(?=\d)")
CODE_SYMBOL = {"gbp": "£", "eur": "€", "usd": "$"}
PLURAL_WORDS = re.compile(r"\b(ones|tens|dozens|hundreds|thousands|millions)\b")
DOZEN = re.compile(r"\b(?:a|one)\s+dozen\b")
# The two ends of a range in words ("between five hundred and a thousand pounds"): text2num would read
# the "and" between them as inside one number (501000), so each end is converted on its own. The first
# end takes every "and" but the last ("between one hundred and twenty and two hundred").
NUMBER_WORD = (r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
               r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fourty|fifty|sixty|seventy|eighty|ninety|"
               r"hundred|thousand|million|grand|a|an|\d+(?:\.\d+)?k?)(?:-[a-z]+)?")
NUMBER_RUN = NUMBER_WORD + r"(?: (?:and )?" + NUMBER_WORD + r")*"
WORD_RANGE = re.compile(r"\bbetween ((?:£|\$|€)?\s?" + NUMBER_RUN + r") and ((?:£|\$|€)?\s?" + NUMBER_RUN + r")\b")


def words_to_number(text: str) -> float | None:
    """The number a phrase of number words says ("two thousand", "a dozen", "3 grand"), or None."""
    phrase = _articles(text.lower().strip())
    if phrase == "12":
        return 12
    grand = re.fullmatch(r"(.+?)\s+grand", phrase)
    if grand:
        value = words_to_number(grand.group(1))
        return None if value is None else value * 1000
    if re.fullmatch(r"\d+(?:\.\d+)?", phrase):
        return float(phrase)
    try:
        return float(text2num(phrase, "en"))
    except (ValueError, TypeError):
        return None


def numbers_to_digits(text: str) -> str:
    """The text with number words, money shorthand and thousands separators as plain digits."""
    text = WORD_RANGE.sub(lambda m: f"between {numbers_to_digits(m.group(1))} and {numbers_to_digits(m.group(2))}",
                          text)
    text = DECIMAL_COMMA.sub(lambda m: m.group(1).replace(",", "."), text)
    text = CURRENCY_CODE.sub(lambda m: CODE_SYMBOL[m.group(1)], text)
    text = _shorthand(_articles(text))
    # Plural number words are no numbers ("the gold ones", "tens of customers"): text2num would read
    # them as 1 and 10, so the text is converted around them.
    parts = PLURAL_WORDS.split(text)
    converted = "".join(p if i % 2 else alpha2digit(p, "en", threshold=0) for i, p in enumerate(parts))
    text = _keep_ordinal_words(text, converted)
    text = _shorthand(text)
    text = DOT_THOUSANDS.sub(lambda m: (m.group(1) or m.group(2)).replace(".", ""), text)
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)


def _keep_ordinal_words(before: str, after: str) -> str:
    """"first" and "second" stay words ("a second order", "the first one", "first-time buyers" are
    phrases, not numbers), unless the question itself wrote "1st"/"2nd" (a date's day)."""
    for digits, word in (("1st", "first"), ("2nd", "second")):
        if not re.search(r"\b" + digits + r"\b", before):
            after = re.sub(r"\b" + digits + r"\b", word, after)
    return after


def _articles(text: str) -> str:
    text = DOZEN.sub("12", text)
    text = HALF_SCALE.sub(lambda m: format_number(SCALE[m.group(1)] / 2) + (" quid" if m.group(1) == "grand" else ""),
                          text)
    return ARTICLE_SCALE.sub(r"one \1", text)


def _shorthand(text: str) -> str:
    text = GRAND.sub(lambda m: f"{m.group(1) or ''}{format_number(float(m.group(2)) * 1000)}"
                     + ("" if m.group(1) else " quid"), text)
    for suffix, factor in SHORTHAND:
        text = re.sub(r"(\d+(?:\.\d+)?)\s?" + suffix + r"\b",
                      lambda m, factor=factor: format_number(float(m.group(1)) * factor), text)
    return text


def format_number(v: float) -> str:
    return str(int(v)) if v == int(v) else str(v)


# Output only (text2num reads words, it does not write them): the multiples a round limit is quoted in.
SMALL_NAMES = "one two three four five six seven eight nine ten".split()


def in_words(value: float) -> str:
    """A round amount in words ("one billion"), so a refusal quotes a limit without a figure that the
    grounding check would look for in a tool's output."""
    for scale, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if value >= scale and value % scale == 0 and 1 <= value / scale <= len(SMALL_NAMES):
            return f"{SMALL_NAMES[int(value / scale) - 1]} {word}"
    return f"{value:,.0f}"
