"""What cleaning did, rule by rule: the report a load returns and `valuedesk score` prints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class RuleResult(BaseModel):
    """What one cleaning rule did. Money is the signed sum of the affected line amounts, so
    `amount_read - sum(amount_removed) == amount_kept`."""

    name: str
    description: str
    action: Literal["removed", "capped", "kept", "flagged", "skipped"]
    rows_removed: int = 0
    rows_flagged: int = 0
    amount_removed: float = 0.0
    amount_flagged: float = 0.0


class CleaningReport(BaseModel):
    source: str
    source_schema: str
    column_map: dict[str, str]
    cleaning_version: str = Field(description="predictor.data.cleaning.CLEANING_VERSION of the rules applied")
    timestamp_format: str = Field(description="'iso', 'native' (typed column) or the strptime format used")
    rows_read: int
    rows_kept: int
    customers_read: int = Field(description="distinct non-empty customer ids in the source")
    customers_kept: int
    amount_read: float = Field(description="sum of line amounts as read, before any rule")
    amount_kept: float
    first_timestamp: datetime | None
    last_timestamp: datetime | None
    outlier_threshold: float | None = Field(None, description="line amount above which a purchase is flagged")
    rules: list[RuleResult]

    def rule(self, name: str) -> RuleResult:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_table(self) -> str:
        """A plain-text table a marketer can read in a terminal or a chat message."""
        head = ("rule", "action", "rows removed", "rows flagged", "money removed", "money flagged")
        body = [(r.name, r.action, f"{r.rows_removed:,}", f"{r.rows_flagged:,}",
                 f"{r.amount_removed:,.2f}", f"{r.amount_flagged:,.2f}") for r in self.rules]
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

        def fmt(row: tuple[str, ...]) -> str:
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
            cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
            return "  ".join(cells)

        rule_line = "-" * len(fmt(head))
        span = ("-" if self.first_timestamp is None
                else f"{self.first_timestamp:%Y-%m-%d %H:%M} .. {self.last_timestamp:%Y-%m-%d %H:%M}")
        lines = [
            f"source: {self.source} (schema {self.source_schema})",
            f"read: {self.rows_read:,} rows, {self.customers_read:,} customers, money {self.amount_read:,.2f}",
            rule_line, fmt(head), rule_line, *[fmt(b) for b in body], rule_line,
            f"kept: {self.rows_kept:,} rows, {self.customers_kept:,} customers, money {self.amount_kept:,.2f}",
            f"dates: {span}",
        ]
        if self.outlier_threshold is not None:
            lines.append(f"outlier threshold: line amount above {self.outlier_threshold:,.2f}")
        lines += [f"  {r.name}: {r.description}" for r in self.rules]
        return "\n".join(lines)
