"""Opaque keyset cursors: the last row's sort key, url-safe base64 JSON. Garbage → 422."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from core.errors import ApiError


def encode_cursor(*key: Any) -> str:
    """Encode a sort key (strings, numbers) as an opaque cursor."""
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """Decode a cursor made by `encode_cursor` with `arity` parts.

    Args:
        cursor: The client's cursor.
        arity: How many key parts it must hold.

    Returns:
        The key parts.

    Raises:
        ApiError: 422 when the cursor is not one of ours.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise invalid_cursor() from exc
    if not isinstance(key, list) or len(key) != arity or not all(isinstance(p, str | int | float) for p in key):
        raise invalid_cursor()
    return key


def invalid_cursor() -> ApiError:
    """The 422 for a cursor that is not one of ours."""
    return ApiError(422, "the cursor is invalid", errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}])
