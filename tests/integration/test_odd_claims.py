"""Whatever a valid token's claims hold, a user's requests answer 2xx/4xx, never 5xx (contract §3).

PostgreSQL's jsonb cannot hold `\\u0000`, and text cannot hold a lone surrogate: the claims are set
in the database on every request, so one such character in `user_metadata` used to fail every
request of that user with a 500.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt
import pytest

from tests.support import TEST_JWT_SECRET
from tests.tokens import claims

ODD_CLAIMS: dict[str, dict[str, Any]] = {
    "NUL in full_name": {"user_metadata": {"full_name": "Ada\x00Lovelace"}},
    "only a NUL as full_name": {"user_metadata": {"full_name": "\x00"}},
    "NUL in a metadata key": {"user_metadata": {"a\x00b": 1}},
    "NUL in app_metadata": {"app_metadata": {"provider": "e\x00mail"}},
    "NUL in email": {"email": "ada\x00@example.com"},
    "lone surrogate in full_name": {"user_metadata": {"full_name": "Ada \ud800 L"}},
    "20 KB name": {"user_metadata": {"full_name": "n" * 20_000}},
    "200 KB of metadata": {"user_metadata": {"blob": ["x" * 1000] * 200}},
    "RTL, zero-width and emoji": {"user_metadata": {"full_name": "\u202eadA\u200d\U0001f600"}},
    "combining marks only": {"user_metadata": {"full_name": "\u0301\u0301\u0301"}},
    "metadata not an object": {"user_metadata": ["full_name", 5]},
    "deep nesting": {"user_metadata": {"a": [[[[[[[[[[{"b": None}]]]]]]]]]]}},
    "email of 400 characters": {"email": "a" * 390 + "@example.com"},
    "no email at all": {"email": None, "user_metadata": None},
    "numbers where strings go": {"email": 5, "user_metadata": {"full_name": 7}},
}


@pytest.mark.parametrize("case", sorted(ODD_CLAIMS))
async def test_odd_claims_never_5xx(client: httpx.AsyncClient, case: str) -> None:
    token = jwt.encode(claims(sub=str(uuid.uuid4()), **ODD_CLAIMS[case]), TEST_JWT_SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    me = await client.get("/api/users/me", headers=headers)
    assert me.status_code == 200, me.text
    assert 1 <= len(me.json()["display_name"]) <= 100 and "\x00" not in me.json()["display_name"]
    trip = {"title": "t", "destination": "d", "start_date": "2027-01-01", "end_date": "2027-01-02"}
    created = await client.post("/api/trips", json=trip, headers=headers)
    assert created.status_code == 201, created.text
    listed = await client.get("/api/trips", headers=headers)
    assert listed.status_code == 200, listed.text
