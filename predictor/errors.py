"""Exception types a user can act on. Every message says what was wrong and what was expected."""

from __future__ import annotations


class ValueDeskError(Exception):
    """Base class for errors shown to the user as-is (no stack trace)."""


class DataError(ValueDeskError):
    """A transaction file is missing, malformed or does not match the schema."""

    def __init__(self, message: str, *, path: str | None = None, column: str | None = None,
                 row: int | None = None, expected: str | None = None):
        self.path, self.column, self.row, self.expected = path, column, row, expected
        parts = [message]
        where = []
        if path:
            where.append(f"file {path}")
        if row is not None:
            where.append(f"row {row}")
        if column:
            where.append(f"column '{column}'")
        if where:
            parts.append("(" + ", ".join(where) + ")")
        if expected:
            parts.append(f"expected {expected}")
        super().__init__(" ".join(parts[:2]) + (f"; {parts[2]}" if len(parts) > 2 else ""))


class EvaluationWindowError(ValueDeskError):
    """The cutoff or horizon does not fit inside the data."""


class ArtifactError(ValueDeskError):
    """A saved model or score file is missing or incompatible with this version."""
