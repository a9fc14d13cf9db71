"""ETags and If-Match parsing; consistency tokens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.consistency import HEADER, MAX_XID, make_token, parse_token
from core.errors import ApiError
from core.etag import NEVER_MATCHES, command_etag, parse_if_match, view_etag


def test_etag_forms() -> None:
    assert command_etag(7) == '"7"'
    assert view_etag(7, "ab12") == '"7-ab12"'


@pytest.mark.parametrize(
    ("header", "version"),
    [
        (None, None),
        ("*", None),
        (" * ", None),
        ('"7"', 7),
        ('"7-ab12"', 7),
        ('W/"7-ab12"', 7),
        ("7", 7),
        (' "12" ', 12),
    ],
)
def test_if_match_accepts_command_and_query_etags(header: str | None, version: int | None) -> None:
    assert parse_if_match(header) == version


@pytest.mark.parametrize("header", ["", '"abc"', '""', "null", '"-1"', '"1' + "0" * 18 + '"', "W/", '"7, "8"', '"٣"'])
def test_if_match_that_cannot_match_demands_a_version_no_trip_has(header: str) -> None:
    # the 412 is the command's, after body validation, 404 and 403 (tests/integration/test_command_bad_input.py)
    assert parse_if_match(header) == NEVER_MATCHES


@given(st.integers(min_value=1, max_value=10**17))
def test_if_match_round_trip(version: int) -> None:
    assert parse_if_match(command_etag(version)) == version
    assert parse_if_match(view_etag(version, "d1g3st")) == version


@given(st.integers(min_value=0, max_value=MAX_XID))
def test_consistency_token_round_trip(xid: int) -> None:
    assert parse_token(make_token(xid)) == xid


@pytest.mark.parametrize(
    "token",
    ["", "v1.", "v1.abc", "v2.5", "5", "v1.-5", "v1.5.5", f"v1.{MAX_XID + 1}", "v1." + "9" * 20, "v1.٣"],
)
def test_bad_consistency_token_is_422(token: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_token(token)
    assert info.value.status == 422
    assert info.value.errors == [{"loc": ["header", HEADER], "msg": "invalid consistency token"}]
