"""Shared data of the eval-harness tests (tests/test_eval*.py): a find_customers result to score answers
against, a scripted stand-in for the agent service, and a markdown-table row check that ignores column
padding."""

from __future__ import annotations

import re
from types import SimpleNamespace


def has_row(markdown: str, *cells: str) -> bool:
    """A table row with these cells, whatever the column padding."""
    pattern = r"^\|" + r"\|".join(rf" *{re.escape(c)} *" for c in cells) + r"\|$"
    return re.search(pattern, markdown, re.M) is not None


FIND_RESULT = {
    "total_matching": 4372, "returned": 3, "sort_by": "value_at_risk", "currency": "GBP", "horizon_days": 180,
    "customers": [
        {"customer_id": "14646", "tier": "Platinum", "predicted_value": 123456.789, "churn_risk": 0.0731,
         "value_at_risk": 9023.4, "last_order": "2011-12-08T12:12:00"},
        {"customer_id": "17850", "tier": "Gold", "predicted_value": 0.0, "churn_risk": 0.9412,
         "value_at_risk": 1234.5, "last_order": "2011-02-10T14:38:00"},
        {"customer_id": "12347", "tier": "Silver", "predicted_value": 1520.0, "churn_risk": 0.25,
         "value_at_risk": 380.0, "last_order": "2011-12-07T15:52:00"},
    ]}


class ScriptedService:
    """Stands in for AgentService in the eval tests only: replies are scripted per question as
    (answer, kind, tool calls); a question not in the script raises, as a backend that is down."""

    def __init__(self, script: dict[str, tuple[str, str, list[dict]]]):
        self.script = script
        self.sessions: list[tuple[str, str]] = []
        self.resets: list[str] = []

    def reset(self, session_id: str) -> None:
        self.resets.append(session_id)

    def chat(self, message: str, session_id: str = "default"):
        self.sessions.append((session_id, message))
        if message not in self.script:
            raise RuntimeError("backend down")
        answer, kind, calls = self.script[message]
        return SimpleNamespace(answer=answer, kind=kind, unverified=[], latency_ms=1.0,
                               tool_calls=[SimpleNamespace(**{"error": None, "duration_ms": 1.0, **c}) for c in calls],
                               usage={"completion_tokens": len(answer.split())})
