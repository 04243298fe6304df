"""Shared data of the eval-harness tests (tests/test_eval*.py): a find_customers result to score answers
against, and a markdown-table row check that ignores column padding."""

from __future__ import annotations

import re

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
