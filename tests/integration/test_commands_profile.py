from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.integration.command_kit import create_trip, fetch, signed_in, version_of
from tests.support import new_user

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
    feed_sql = "SELECT count(*) AS n FROM tripsage.changes WHERE profile_id = :id"
    feed_before = (await fetch(app, feed_sql, id=str(user.id)))[0]["n"]
    same = await client.patch(
        "/api/users/me", json={"display_name": "Grace", "preferences": {"currency": "EUR"}}, headers=user.headers
    )
    assert same.status_code == 200 and same.json()["updated_at"] == second.json()["updated_at"]
    assert (await fetch(app, feed_sql, id=str(user.id)))[0]["n"] == feed_before  # the repeat wrote nothing
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


async def test_profile_validation(client: httpx.AsyncClient) -> None:
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
    for body in cases:
        response = await client.patch("/api/users/me", json=body, headers=user.headers)
        assert response.status_code == 422, (body, response.text)


async def test_a_deleted_profile_is_not_found(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = await signed_in(client)
    async with app.state.ctx.db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM profiles WHERE id = :id"), {"id": user.id})
    response = await client.patch("/api/users/me", json={"display_name": "Ghost"}, headers=user.headers)
    assert response.status_code == 404
