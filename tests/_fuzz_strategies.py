"""Hypothesis strategies and shared constants of the fuzz tests (tests/test_fuzz.py, tests/test_fuzz_mcp.py):
what a broken or hostile client sends."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tools.registry import TOOLS

REPO = Path(__file__).resolve().parent.parent
SERVER_COMMAND = os.environ.get("VALUEDESK_TEST_MCP_COMMAND", str(REPO / ".venv" / "bin" / "valuedesk"))
KEY = "fuzz-key-5e1"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY_LIMIT = 200_000
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))



# ------------------------------------------------------------------------------------------ strategies


class Raw(str):
    """Text spliced into a JSON document verbatim (the nasty tokens a JSON encoder would never write)."""


NASTY = st.one_of(
    st.integers(0xD800, 0xDFFF).map(lambda c: Raw(f'"\\u{c:04x}"')),  # a lone surrogate
    st.integers(0xD800, 0xDBFF).map(lambda c: Raw(f'"x\\u{c:04x}\\u0041"')),  # a high surrogate, no low one
    st.integers(20, 6000).map(lambda n: Raw("9" * n)),  # a huge integer
    st.integers(20, 400).map(lambda n: Raw("-1" + "0" * n + ".5e9")),  # a float literal, many digits
    st.sampled_from([Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e999")]),
    st.integers(65, 60_000).map(lambda n: Raw("[" * n + "]" * n)),  # deep arrays
    st.integers(65, 20_000).map(lambda n: Raw('{"a":' * n + "1" + "}" * n)),  # deep objects
    st.integers(2, 40).map(lambda n: Raw("[" * n + "]" * n)),  # nesting under the limit
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["Gold", "Platinum", "France", "United Kingdom", "at risk", "Champions", "2011-05-01", "tea"]),
)
LEAVES = st.integers(0, 9).flatmap(lambda i: NASTY if i == 0 else SCALARS)  # one nasty leaf in ten
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)

ARG_NAMES = sorted({name for spec in TOOLS for name in spec.args_model.model_fields}
                   | {"message", "session_id", "stream", "messages", "model", "user", "role", "content"})


def encode(value) -> str:
    """JSON text for `value`, with Raw pieces written as they are."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # raw UTF-8; Raw pieces carry the \\udXXX escapes


# Objects whose keys are mostly real argument names, so bodies reach the tools' and agent's own checks.
ARG_OBJECTS = st.dictionaries(st.sampled_from(ARG_NAMES) | st.text(max_size=8), VALUES, max_size=5)


def mostly(good, other=VALUES):
    """`good` four times in five, else anything."""
    return st.integers(0, 4).flatmap(lambda i: other if i == 0 else good)


QUESTIONS = st.sampled_from(["Who are my top 5 customers?", "Break down my customers by tier",
                             "Which Gold customers in France are at risk?", "plan a win-back campaign, budget 500"])
TEXTS = st.text(min_size=1, max_size=120) | QUESTIONS
CHAT_REQUESTS = st.fixed_dictionaries({"message": mostly(TEXTS)}, optional={
    "session_id": mostly(st.text(min_size=1, max_size=12)), "stream": st.booleans()})
CHAT_MESSAGES = st.fixed_dictionaries({"messages": st.lists(st.fixed_dictionaries(
    {"role": mostly(st.sampled_from(["user", "system", "assistant"])), "content": mostly(TEXTS)}),
    min_size=1, max_size=3)}, optional={"stream": st.booleans(), "model": st.just("valuedesk")})


@st.composite
def json_texts(draw) -> str:
    text = encode(draw(st.sampled_from([ARG_OBJECTS, ARG_OBJECTS, CHAT_REQUESTS, CHAT_MESSAGES, VALUES])
                       .flatmap(lambda s: s)))
    cut = draw(st.integers(0, 9))
    if cut == 0 and len(text) > 1:  # a body cut off mid-way
        text = text[: draw(st.integers(1, len(text) - 1))]
    return text


BODIES = st.integers(0, 3).flatmap(lambda i: st.binary(max_size=300) if i == 0 else json_texts().map(str.encode))


