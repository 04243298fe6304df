"""The LLM-facing tool schemas are bounded, and the token budget always holds the longest call."""

from __future__ import annotations

import json

import pytest

from agent.tool_schema import (FRACTION_DIGITS, NUMBER_MAX, TEXT_CHARS, bound_schema, max_call_tokens,
                               max_json_chars)


def _longest(schema: dict):
    """A value of maximal compact length for a bounded schema (what a runaway model could write)."""
    if "anyOf" in schema:
        return max((_longest(s) for s in schema["anyOf"]), key=lambda v: len(json.dumps(v)))
    if "enum" in schema:
        return max(schema["enum"], key=lambda v: len(json.dumps(v, ensure_ascii=False)))
    kind = schema.get("type")
    if kind == "string":
        return "\x01" * schema["maxLength"]  # a control character: the longest escape (\u0001)
    if kind == "integer":
        return -schema["maximum"] if abs(schema["minimum"]) >= schema["maximum"] else schema["maximum"]
    if kind == "number":
        return float(f"-{int(schema['maximum']) - 1}.{'9' * FRACTION_DIGITS}")
    if kind == "array":
        return [_longest(schema["items"])] * schema["maxItems"]
    if kind == "object":
        return {k: _longest(v) for k, v in schema["properties"].items()}
    return None


def _registry_schemas():
    from tools.deps import ToolDeps
    from tools.registry import ToolRegistry
    from predictor.settings import Settings

    registry = ToolRegistry(ToolDeps(Settings()))
    return {t["function"]["name"]: t["function"]["parameters"] for t in registry.openai_tools()}


def test_every_array_string_and_number_of_the_agent_tools_is_bounded():
    def walk(node, path="$"):
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "array":
                assert "maxItems" in node, path
            if kind == "string" and "enum" not in node:
                assert node["maxLength"] <= TEXT_CHARS, path
            if kind in ("number", "integer"):
                assert "minimum" in node and "maximum" in node, path
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    for name, params in _registry_schemas().items():
        walk(bound_schema(params), name)


@pytest.mark.parametrize("name", ["find_customers", "segment_summary", "get_customer", "search_profiles",
                                  "recommend_campaigns", "export_audience"])
def test_budget_holds_the_longest_call_of_each_tool(name):
    params = bound_schema(_registry_schemas()[name])
    longest = [{"name": name, "parameters": _longest(params)}]
    # vLLM's compact form, with the space xgrammar 0.2.8 still writes after ',' and ':'
    text = json.dumps(longest, separators=(", ", ": "))
    assert len(text.encode()) <= max_call_tokens({name: params})
    assert max_json_chars(params) >= len(json.dumps(longest[0]["parameters"], separators=(", ", ": ")))


def test_bounds_keep_what_the_schema_already_says():
    schema = bound_schema({"type": "object", "properties": {
        "tier": {"type": "array", "items": {"type": "string", "enum": ["A", "B"]}},
        "country": {"type": "array", "items": {"type": "string"}},
        "query": {"type": "string", "maxLength": 1000},
        "risk": {"type": "number", "minimum": 0, "maximum": 1},
        "limit": {"type": "integer", "minimum": 1}}})
    props = schema["properties"]
    assert props["tier"]["maxItems"] == 2 and props["country"]["maxItems"] == 5
    assert props["query"]["maxLength"] == TEXT_CHARS and props["country"]["items"]["maxLength"] == 40
    assert (props["risk"]["minimum"], props["risk"]["maximum"]) == (0, 1)
    assert (props["limit"]["minimum"], props["limit"]["maximum"]) == (1, NUMBER_MAX)


def test_a_schema_without_a_type_cannot_be_bounded():
    with pytest.raises(ValueError, match="give it a type"):
        max_json_chars({"description": "anything"})
