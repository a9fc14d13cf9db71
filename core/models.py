"""Building blocks of request and response models: strict bodies, NUL-free strings, money, currencies."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic_extra_types.currency_code import ISO4217


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def reject_nul(value: Any) -> Any:
    """Raise when any string inside a JSON value (keys included) holds a NUL character."""
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(str(key))
            reject_nul(item)
    elif isinstance(value, list):
        for item in value:
            reject_nul(item)
    return value


SafeStr = Annotated[str, AfterValidator(_no_nul)]
"""Any string field: NUL characters are refused (PostgreSQL text cannot hold them)."""

Currency = Annotated[ISO4217, AfterValidator(lambda value: str(value).upper())]
"""An ISO 4217 currency code, validated against the list."""

Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False),
    PlainSerializer(lambda value: f"{value:.2f}", return_type=str, when_used="json"),
]
"""A non-negative amount with at most 2 decimal places, serialised as a JSON string (`"1250.00"`)."""


UtcDatetime = Annotated[
    datetime,
    PlainSerializer(
        lambda value: value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), return_type=str, when_used="json"
    ),
]
"""A timestamp, serialised in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (the read model uses the same form:
`to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)."""


class Command(BaseModel):
    """Base of every request body: unknown (and read-only) fields are refused with 422."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, frozen=True)


class View(BaseModel):
    """Base of response models (declared for OpenAPI; the hot read path does not run them)."""

    model_config = ConfigDict(from_attributes=True)
