"""Building blocks of request and response models: strict bodies, NUL-free strings, money, currencies."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic_core import PydanticCustomError
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


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}.*", re.DOTALL)


def _iso_text(kind: type, pattern: re.Pattern[str], form: str) -> BeforeValidator:
    """Accept only a JSON string in ISO 8601 form (or an already parsed value, from Python callers).

    pydantic's lax mode reads a number, or a string holding one, as seconds since 1970: `"day": 0`
    would be 1970-01-01. The contract says a JSON number is never a date or a timestamp.
    """

    def check(value: Any) -> Any:
        if isinstance(value, kind):
            return value
        if isinstance(value, str) and pattern.fullmatch(value):
            return value
        raise PydanticCustomError("iso_string", "must be a string in ISO 8601 form ({form})", {"form": form})

    return BeforeValidator(check)


JsonDate = Annotated[date, _iso_text(date, _ISO_DATE, "YYYY-MM-DD")]
"""A calendar date sent as a JSON string `YYYY-MM-DD` (numbers are refused)."""

JsonDatetime = Annotated[AwareDatetime, _iso_text(datetime, _ISO_DATETIME, "YYYY-MM-DDTHH:MM:SS±HH:MM")]
"""A timestamp with an offset sent as an RFC 3339 JSON string (numbers are refused)."""


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
