"""Opaque keyset cursors: round trip, and 422 for anything not made by us."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ApiError
from core.pagination import decode_cursor, encode_cursor, invalid_cursor

PARTS = st.one_of(st.text(max_size=40), st.integers(min_value=-(2**53), max_value=2**53))


@given(st.lists(PARTS, min_size=1, max_size=3))
def test_round_trip(parts: list[str | int]) -> None:
    cursor = encode_cursor(*parts)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor, len(parts)) == parts


def test_real_looking_key() -> None:
    cursor = encode_cursor("2030-01-01T00:00:00.000000Z", "3f1c0d5e-0000-4000-8000-000000000000")
    assert decode_cursor(cursor, 2) == ["2030-01-01T00:00:00.000000Z", "3f1c0d5e-0000-4000-8000-000000000000"]


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "a",
        "not base64 at all",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        _b64({"a": 1}),
        _b64("text"),
        _b64(["only-one"]),
        _b64(["a", "b", "c"]),
        _b64(["a", None]),
        _b64(["a", ["nested"]]),
        _b64(["a", {"k": 1}]),
    ],
)
def test_garbage_is_422(cursor: str) -> None:
    with pytest.raises(ApiError) as info:
        decode_cursor(cursor, 2)
    assert info.value.status == 422
    assert info.value.errors == [{"loc": ["query", "cursor"], "msg": "invalid cursor"}]


@given(st.text(max_size=60))
def test_any_text_is_a_cursor_or_a_422(cursor: str) -> None:
    try:
        decode_cursor(cursor, 2)
    except ApiError as exc:
        assert exc.status == 422


def test_invalid_cursor_error() -> None:
    assert invalid_cursor().status == 422
