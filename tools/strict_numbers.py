"""Numbers in tool arguments are numbers: JSON true/false is refused where a field takes an int or a
float (lax pydantic would read them as 1 and 0), with the field named in the error."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel


def _is_number(annotation: Any) -> bool:
    """Whether a field takes a number (int or float, optionally None) and not a bool."""
    options = typing.get_args(annotation) or (annotation,)
    return bool({int, float} & set(options)) and bool not in options


def refuse_bool_numbers(model: type[BaseModel], value: Any, field_name: str | None) -> Any:
    """JSON true/false is not a number: lax pydantic would read `"max_churn_risk": false` as a churn
    ceiling of 0 and answer a different question. Raised per field, so the error names it."""
    field = model.model_fields.get(field_name or "")
    if isinstance(value, bool) and field is not None and _is_number(field.annotation):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value
