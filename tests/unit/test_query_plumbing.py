"""Pure parts of the query path: literal quoting, the set-up message, If-None-Match, page envelope, statements."""

from __future__ import annotations

import uuid

import orjson
import pytest

from core.auth import Principal
from core.begin import quote_literal
from queries.plumbing import begin_sql, if_none_match
from queries.trips import page_body


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "E'plain'"),
        ("it's", "E'it''s'"),
        ("back\\slash", "E'back\\\\slash'"),
        ("'; DROP TABLE trips; --", "E'''; DROP TABLE trips; --'"),
        ("", "E''"),
    ],
)
def test_quote_literal(value: str, literal: str) -> None:
    assert quote_literal(value) == literal


def test_quote_literal_refuses_nul() -> None:
    with pytest.raises(ValueError, match="NUL"):
        quote_literal("a\x00b")


def test_begin_sql_sets_role_and_quoted_claims() -> None:
    user = uuid.uuid4()
    claims = {"sub": str(user), "role": "authenticated", "user_metadata": {"full_name": "O'Brien \\ x"}}
    principal = Principal(claims=claims, user_id=user, role="authenticated", email=None, expires_at=0)
    sql = begin_sql(principal)
    assert sql.startswith("BEGIN READ ONLY; SELECT set_config('role', E'tripsage_api', true),")
    assert r"O''Brien \\\\ x" in sql and sql.endswith(", true)")
    service = Principal(claims={"role": "service_role"}, user_id=None, role="service_role", email=None, expires_at=0)
    assert "'service_role'" in begin_sql(service)


@pytest.mark.parametrize(
    ("header", "tags"),
    [
        (None, None),
        ('"1-abc"', ['"1-abc"']),
        ('W/"1-abc"', ['"1-abc"']),
        ('"a", W/"b" ,', ['"a"', '"b"']),
        ("*", ["*"]),
    ],
)
def test_if_none_match(header: str | None, tags: list[str] | None) -> None:
    assert if_none_match(header) == tags


def test_page_body_is_the_envelope() -> None:
    docs = [b'{"id":1}', b'{"id":2}']
    assert orjson.loads(page_body(docs, "abc")) == {"items": [{"id": 1}, {"id": 2}], "next_cursor": "abc"}
    assert orjson.loads(page_body([], None)) == {"items": [], "next_cursor": None}
