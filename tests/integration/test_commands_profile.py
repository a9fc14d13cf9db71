from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.integration.command_kit import create_trip, fetch, signed_in, version_of
from tests.support import new_user

STORED = (
    "SELECT p.xmin::text AS profile_row, u.xmin::text AS preferences_row, p.display_name, p.updated_at,"
    " (SELECT count(*) FROM tripsage.changes c WHERE c.profile_id = p.id) AS feed_rows"
    " FROM profiles p LEFT JOIN user_preferences u ON u.user_id = p.id WHERE p.id = :id"
)
"""What is stored for a profile, down to the row versions (`xmin` changes on any write, even a no-op
UPDATE), plus its pending change-feed rows."""

EMPTY_PREFERENCES: dict[str, Any] = {
    "currency": None,
    "home_airport": None,
    "travel_style": None,
    "dietary_restrictions": [],
    "accessibility_needs": [],
}


async def test_first_patch_returns_the_provisioned_profile(client: httpx.AsyncClient) -> None:
    user = new_user("ada", full_name="Ada Lovelace")
    response = await client.patch("/api/users/me", json={}, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["id", "email", "display_name", "preferences", "created_at", "updated_at"]
    assert (body["id"], body["email"], body["display_name"]) == (str(user.id), user.email, "Ada Lovelace")
    assert body["preferences"] == EMPTY_PREFERENCES
    assert response.headers["x-consistency-token"].startswith("v1.")


async def test_patch_profile_merges_preferences(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = await signed_in(client)
    trip = await create_trip(client, user)
    first = await client.patch(
        "/api/users/me",
        json={"display_name": "Grace", "preferences": {"currency": "eur", "dietary_restrictions": ["vegan"]}},
        headers=user.headers,
    )
    assert first.status_code == 200, first.text
    assert first.json()["display_name"] == "Grace"
    assert first.json()["preferences"] == EMPTY_PREFERENCES | {"currency": "EUR", "dietary_restrictions": ["vegan"]}
    second = await client.patch(
        "/api/users/me",
        json={"preferences": {"home_airport": "LIS", "travel_style": "slow", "dietary_restrictions": None}},
        headers=user.headers,
    )
    assert second.status_code == 200, second.text
    assert second.json()["display_name"] == "Grace"
    assert second.json()["preferences"] == {
        "currency": "EUR",
        "home_airport": "LIS",
        "travel_style": "slow",
        "dietary_restrictions": [],
        "accessibility_needs": [],
    }
    assert second.json()["updated_at"] > first.json()["updated_at"]
    before = (await fetch(app, STORED, id=str(user.id)))[0]
    assert before["feed_rows"] >= 1  # a real change queues the profile for the projection
    same = await client.patch(
        "/api/users/me", json={"display_name": "Grace", "preferences": {"currency": "EUR"}}, headers=user.headers
    )
    assert same.status_code == 200 and same.json()["updated_at"] == second.json()["updated_at"]
    # The repeat wrote nothing: neither row has a new version, and nothing more was queued.
    assert (await fetch(app, STORED, id=str(user.id)))[0] == before
    stored = (
        await fetch(
            app,
            "SELECT p.display_name, u.* FROM profiles p JOIN user_preferences u ON u.user_id = p.id WHERE p.id = :id",
            id=str(user.id),
        )
    )[0]
    assert (stored["display_name"], stored["currency"], stored["home_airport"]) == ("Grace", "EUR", "LIS")
    assert stored["dietary_restrictions"] == [] and stored["travel_style"] == "slow"
    assert (await version_of(app, trip["id"]))[0] == 1  # a profile change never bumps a trip


async def test_profile_validation(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = await signed_in(client)
    cases = [
        {"display_name": ""},
        {"display_name": "x" * 101},
        {"display_name": None},
        {"preferences": None},
        {"preferences": {"home_airport": "lis"}},
        {"preferences": {"home_airport": "LISB"}},
        {"preferences": {"currency": "ABC"}},
        {"preferences": {"travel_style": "x" * 51}},
        {"preferences": {"accessibility_needs": ["x"] * 51}},
        {"preferences": {"unknown": 1}},
        {"email": "x@example.com"},
        {"id": str(user.id)},
    ]
    before = (await fetch(app, STORED, id=str(user.id)))[0]
    for body in cases:
        response = await client.patch("/api/users/me", json=body, headers=user.headers)
        assert response.status_code == 422, (body, response.text)
    assert (await fetch(app, STORED, id=str(user.id)))[0] == before  # no refused body wrote anything


async def test_a_deleted_profile_is_not_found(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = await signed_in(client)
    async with app.state.ctx.db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM profiles WHERE id = :id"), {"id": user.id})
    feed = "SELECT count(*) AS n FROM tripsage.changes WHERE profile_id = :id"
    queued = (await fetch(app, feed, id=str(user.id)))[0]["n"]
    response = await client.patch("/api/users/me", json={"display_name": "Ghost"}, headers=user.headers)
    assert response.status_code == 404
    assert await fetch(app, STORED, id=str(user.id)) == []  # not re-created by the PATCH
    assert (await fetch(app, feed, id=str(user.id)))[0]["n"] == queued  # and nothing queued for it
