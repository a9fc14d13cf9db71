"""Building blocks of request and response models: strict bodies, NUL-free strings, money, currencies."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
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

_MONEY_TEXT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
MONEY_INPUT_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": f"^{_MONEY_TEXT.pattern}$", "examples": ["1250.00"]},
        {"type": "number", "minimum": 0, "maximum": 999_999_999_999.99, "multipleOf": 0.01},
    ]
}
"""What a request may send for money: a decimal string (the contract's form) or a JSON number."""


def _money_input(value: Any) -> Any:
    """Hold money input to what `MONEY_INPUT_SCHEMA` declares, no more (no `"1e2"`, `" 5"`, `"5."`).

    A float that is a 2-decimal amount but for binary noise (0.57 parsed as 0.5700000000000001)
    is read as that amount.
    """
    if isinstance(value, str) and not _MONEY_TEXT.fullmatch(value):
        raise PydanticCustomError("money_string", "must be a decimal string like 1250.00 (at most 2 decimals)")
    if isinstance(value, float) and math.isfinite(value):
        rounded = round(value, 2)
        if abs(value - rounded) <= 4 * math.ulp(value):
            return Decimal(str(rounded))
    return value


Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False),
    BeforeValidator(_money_input),
    PlainSerializer(lambda value: f"{value:.2f}", return_type=str, when_used="json"),
    WithJsonSchema(MONEY_INPUT_SCHEMA, mode="validation"),
]
"""A non-negative amount with at most 2 decimal places, serialised as a JSON string (`"1250.00"`)."""


def _integral_number(value: Any) -> Any:
    """JSON Schema's `integer` includes `3.0`: read an integral float as that integer (3.5, true stay refused)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


INTEGRAL = BeforeValidator(_integral_number)
"""For a strict int field (`Annotated[int, Field(strict=True, ...), INTEGRAL]`): an integer as JSON
Schema means it, `3` or `3.0`, never `"3"`, `3.5` or `true`."""


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


def _storable_date(value: date) -> date:
    """Refuse the first and last dates: the PostgreSQL driver stores them as -infinity and infinity."""
    if value in (date.min, date.max):
        raise PydanticCustomError("date_range", "must lie between 0001-01-02 and 9999-12-30")
    return value


def _storable_datetime(value: datetime) -> datetime:
    """Refuse instants PostgreSQL cannot hold as sent: beyond the UTC range, or its ±infinity sentinels."""
    try:
        utc = value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is in year 0 in UTC
        utc = datetime.min
    if utc in (datetime.min, datetime.max):
        raise PydanticCustomError(
            "datetime_range", "must lie strictly between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z"
        )
    return value


JsonDate = Annotated[date, _iso_text(date, _ISO_DATE, "YYYY-MM-DD"), AfterValidator(_storable_date)]
"""A calendar date sent as a JSON string `YYYY-MM-DD` (numbers are refused)."""

JsonDatetime = Annotated[
    AwareDatetime,
    _iso_text(datetime, _ISO_DATETIME, "YYYY-MM-DDTHH:MM:SS±HH:MM"),
    AfterValidator(_storable_datetime),
]
"""A timestamp with an offset sent as an RFC 3339 JSON string (numbers are refused)."""


UtcDatetime = Annotated[
    datetime,
    PlainSerializer(
        lambda value: value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), return_type=str, when_used="json"
    ),
]
"""A timestamp, serialised in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (the read model uses the same form:
`to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)."""


def drop_null_branch(schema: dict[str, Any]) -> None:
    """Drop `null` from a JSON schema (and a `null` default), for a value that may be absent but not null."""
    if schema.get("default", ...) is None:
        del schema["default"]
    branches = [branch for branch in schema.pop("anyOf", []) if branch != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches


class Command(BaseModel):
    """Base of every request body: unknown (and read-only) fields are refused with 422."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, frozen=True)


class View(BaseModel):
    """Base of response models (declared for OpenAPI; the hot read path does not run them)."""

    model_config = ConfigDict(from_attributes=True)
