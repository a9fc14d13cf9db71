"""Helpers of the command tests: users in every role on one trip, and direct reads of the write model."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support import User, new_user

TRIP = {
    "title": "Lisbon long weekend",
    "description": "Pastéis and trams",
    "destination": "Lisbon",
    "start_date": "2026-06-01",
    "end_date": "2026-06-05",
    "budget": "1250.5",
    "currency": "EUR",
    "travelers": 2,
    "status": "planning",
    "trip_type": "leisure",
    "tags": ["food", "city", "food"],
}
ROLES = ("owner", "admin", "edit", "view", "stranger")


@dataclass
class Party:
    """A trip and one user per role on it."""

    trip_id: str
    users: dict[str, User]

    def headers(self, role: str, **extra: str) -> dict[str, str]:
        """Authorization (plus extra headers) of the user in `role`."""
        return self.users[role].headers | extra


async def signed_in(client: httpx.AsyncClient, name: str = "user", full_name: str | None = None) -> User:
    """A user whose profile exists (provisioned by a first request)."""
    user = new_user(name, full_name=full_name)
    response = await client.patch("/api/users/me", json={}, headers=user.headers)
    assert response.status_code == 200, response.text
    return user


async def create_trip(client: httpx.AsyncClient, user: User, **fields: Any) -> dict[str, Any]:
    """POST a trip (the TRIP defaults overridden by `fields`) and return its record."""
    response = await client.post("/api/trips", json=TRIP | fields, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def party(client: httpx.AsyncClient, **fields: Any) -> Party:
    """A fresh trip with an owner, an admin, an editor, a viewer and a stranger."""
    users = {role: await signed_in(client, role) for role in ROLES}
    trip = await create_trip(client, users["owner"], **fields)
    for role in ("admin", "edit", "view"):
        response = await client.put(
            f"/api/trips/{trip['id']}/collaborators/{users[role].id}",
            json={"permission": role},
            headers=users["owner"].headers,
        )
        assert response.status_code == 200, response.text
    return Party(trip["id"], users)


async def fetch(app: FastAPI, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of a statement run (and committed) as the login role, outside RLS: what the model really holds."""
    async with app.state.ctx.db.engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        return [dict(row) for row in result.mappings()]


async def trip_row(app: FastAPI, trip_id: str | uuid.UUID) -> dict[str, Any] | None:
    """The stored trip row, or None."""
    rows = await fetch(app, "SELECT * FROM trips WHERE id = :id", id=str(trip_id))
    return rows[0] if rows else None


async def version_of(app: FastAPI, trip_id: str | uuid.UUID) -> tuple[int, Any]:
    """(version, updated_at) of a stored trip."""
    row = await trip_row(app, trip_id)
    assert row is not None
    return int(row["version"]), row["updated_at"]


async def add_itinerary(client: httpx.AsyncClient, user: User, trip_id: str, **fields: Any) -> dict[str, Any]:
    """POST an itinerary and return its record."""
    response = await client.post(
        f"/api/trips/{trip_id}/itineraries", json={"title": "Day 1"} | fields, headers=user.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_activity(
    client: httpx.AsyncClient, user: User, trip_id: str, itinerary_id: str, **fields: Any
) -> dict[str, Any]:
    """POST an activity and return its record."""
    response = await client.post(
        f"/api/trips/{trip_id}/itineraries/{itinerary_id}/activities",
        json={"title": "Tram 28"} | fields,
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


SEED = text(
    """
    WITH people AS (
      INSERT INTO profiles (id, email, display_name)
      SELECT id, name || '@example.com', name FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[])) AS u(id, name)
      RETURNING id
    ), prefs AS (
      INSERT INTO user_preferences (user_id) SELECT id FROM people
    ), trip AS (
      INSERT INTO trips (id, owner_id, title, destination, start_date, end_date)
      VALUES (:trip_id, :owner_id, 'Seeded', 'Porto', DATE '2026-06-01', DATE '2026-06-05')
    ), shares AS (
      INSERT INTO trip_collaborators (trip_id, user_id, permission)
      SELECT :trip_id, id, permission FROM unnest(CAST(:shared AS uuid[]), CAST(:permissions AS text[])) AS s(id, permission)
    ), day AS (
      INSERT INTO itineraries (id, trip_id, title) VALUES (:itinerary_id, :trip_id, 'Day 1')
    )
    INSERT INTO activities (id, itinerary_id, trip_id, title, currency)
    VALUES (:activity_id, :itinerary_id, :trip_id, 'Tram', 'USD')
    """
)
"""A whole trip scene in one statement, as the login role (fast set-up for matrix tests)."""


async def seed_party(
    app: FastAPI, *, viewers: tuple[str, ...] = (), others: tuple[str, ...] = ()
) -> tuple[Party, str, str]:
    """A seeded trip with one user per role, an itinerary and an activity (trip version 1).

    Args:
        app: The app (its engine).
        viewers: Names of further users the trip is shared with (`view`).
        others: Names of further users with a profile and no access.

    Returns:
        The party (all users by name), the itinerary id and the activity id.
    """
    users = {role: new_user(role) for role in (*ROLES, *viewers, *others)}
    trip_id, itinerary_id, activity_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    permissions = {"admin": "admin", "edit": "edit", "view": "view"} | dict.fromkeys(viewers, "view")
    async with app.state.ctx.db.engine.begin() as conn:
        await conn.execute(
            SEED,
            {
                "ids": [u.id for u in users.values()],
                "names": [f"{role}-{u.id.hex[:8]}" for role, u in users.items()],
                "trip_id": trip_id,
                "owner_id": users["owner"].id,
                "shared": [users[role].id for role in permissions],
                "permissions": list(permissions.values()),
                "itinerary_id": itinerary_id,
                "activity_id": activity_id,
            },
        )
    return Party(str(trip_id), users), str(itinerary_id), str(activity_id)


@asynccontextmanager
async def row_locked(app: FastAPI, sql: str, **params: Any) -> AsyncIterator[AsyncConnection]:
    """Lock rows (`sql` is a SELECT … FOR UPDATE) from another connection; commit what the block did."""
    async with app.state.ctx.db.engine.begin() as conn:
        await conn.execute(text(sql), params)
        yield conn


def trip_locked(app: FastAPI, trip_id: str) -> Any:
    """Hold the trip's row lock from another connection until the block ends."""
    return row_locked(app, "SELECT 1 FROM trips WHERE id = :id FOR UPDATE", id=trip_id)


async def wait_until_blocked(app: FastAPI) -> None:
    """Return once some request of the app waits for a lock."""
    sql = (
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'tripsage' AND wait_event_type = 'Lock'"
    )
    for _ in range(500):
        if (await fetch(app, sql))[0]["n"]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request never blocked")
