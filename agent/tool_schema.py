"""Tool schemas as the LLM sees them: every value bounded, so a constrained call always closes.

vLLM decodes a `tool_choice="required"` call under a grammar built from these schemas (xgrammar).
A grammar only forbids invalid JSON; it cannot stop a small model from repeating "Gold", "Gold", ...
or writing digits forever, and a call cut off by `max_tokens` is no call at all. So the schemas the
model sees give every array a `maxItems`, every free string a `maxLength`, and every number both
ends of its range (xgrammar then allows at most 6 fraction digits and no exponent: checked against
xgrammar 0.2.8). `max_call_tokens` turns those bounds into a token budget that provably holds the
longest possible call; the agent passes it as `max_tokens` on the constrained step.

The registry still validates every call with its own (unbounded) models; these bounds only narrow
what the model can write, never what the tools accept from other callers.
"""

from __future__ import annotations

import json
from typing import Any

FREE_ARRAY_ITEMS = 5  # arrays of free text (country names): a question names a few
FREE_STRING_CHARS = 40  # a country or product name
TEXT_CHARS = 200  # the longest text the model may write into any argument (a search query)
NUMBER_MAX = 1_000_000_000  # money, days, counts: far above any real filter value
FRACTION_DIGITS = 6  # what xgrammar allows after the point for a ranged number
BYTES_PER_CHAR = 6  # a string character costs at most 6 bytes on the wire (`\uXXXX`); a token is >= 1 byte


def bound_schema(schema: Any) -> Any:
    """A copy of a JSON schema with every array, free string and number bounded."""
    if isinstance(schema, list):
        return [bound_schema(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: bound_schema(v) for k, v in schema.items()}
    kind = out.get("type")
    if kind == "array" and "maxItems" not in out:
        items = out.get("items") or {}
        out["maxItems"] = len(items["enum"]) if isinstance(items, dict) and items.get("enum") else FREE_ARRAY_ITEMS
    elif kind == "string" and "enum" not in out:
        out["maxLength"] = min(int(out.get("maxLength", FREE_STRING_CHARS)), TEXT_CHARS)
    elif kind in ("number", "integer"):
        out.setdefault("minimum", -NUMBER_MAX)
        out.setdefault("maximum", NUMBER_MAX)
    return out


def max_json_chars(schema: Any, defs: dict[str, Any] | None = None) -> int:
    """An upper bound on the length of any compact JSON value `schema` admits (after bound_schema).

    Compact means no whitespace but one space after ',' and ':' (vLLM's disable_any_whitespace;
    xgrammar 0.2.8 still emits the space after a comma), so every separator counts 2 characters.
    """
    if not isinstance(schema, dict):
        return 0
    defs = {**(defs or {}), **schema.get("$defs", {})}
    if "$ref" in schema:  # pydantic writes nested models as '#/$defs/Name'; they are not recursive here
        return max_json_chars(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema or "oneOf" in schema:
        return max(max_json_chars(s, defs) for s in schema.get("anyOf") or schema.get("oneOf"))
    if "enum" in schema:
        return max(len(json.dumps(v, ensure_ascii=False).encode()) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return 4
    if kind == "boolean":
        return 5
    if kind == "string":
        return 2 + BYTES_PER_CHAR * int(schema["maxLength"])
    if kind in ("number", "integer"):
        digits = len(str(int(max(abs(schema["minimum"]), abs(schema["maximum"])))))
        return 1 + digits + (0 if kind == "integer" else 1 + FRACTION_DIGITS)
    if kind == "array":
        return 2 + int(schema["maxItems"]) * (max_json_chars(schema.get("items") or {}, defs) + 2)
    if kind == "object":
        props = schema.get("properties") or {}
        return 2 + sum(len(json.dumps(k)) + 2 + max_json_chars(v, defs) + 2 for k, v in props.items())
    raise ValueError(f"cannot bound a JSON value of schema {schema!r}: give it a type")


def max_call_tokens(tools: dict[str, dict[str, Any]]) -> int:
    """Tokens that always hold one required call, `[{"name": "<tool>", "parameters": {...}}]`, for any of
    `tools` (name -> bounded parameters schema). A token is at least one byte, so bytes bound tokens."""
    envelope = len('[{"name": "", "parameters": }]') + 4  # the separators' optional spaces, and the end
    return max(envelope + len(name.encode()) + max_json_chars(params) for name, params in tools.items())
