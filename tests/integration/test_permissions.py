"""Every trip command × every role → the contract's status, and a refused command changes nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.command_kit import ROLES, Party, fetch, seed_party, version_of
from tests.support import service_headers


@dataclass
class Scene:
    """A trip with one user per role, an itinerary with an activity, an extra viewer and a newcomer."""

    group: Party
    itinerary: str
    activity: str
    extra: uuid.UUID
    newcomer: uuid.UUID

    @property
    def trip(self) -> str:
        return self.group.trip_id


async def scene(app: FastAPI) -> Scene:
    group, itinerary, activity = await seed_party(app, viewers=("extra",), others=("newcomer",))
    return Scene(group, itinerary, activity, group.users["extra"].id, group.users["newcomer"].id)


def request_for(command: str, s: Scene, role: str) -> tuple[str, str, dict[str, Any] | None]:
    trip = f"/api/trips/{s.trip}"
    itinerary = f"{trip}/itineraries/{s.itinerary}"
    activity = f"{itinerary}/activities/{s.activity}"
    requests: dict[str, tuple[str, str, dict[str, Any] | None]] = {
        "patch_trip": ("PATCH", trip, {"title": f"renamed by {role}"}),
        "delete_trip": ("DELETE", trip, None),
        "add_itinerary": ("POST", f"{trip}/itineraries", {"title": "Day 2"}),
        "patch_itinerary": ("PATCH", itinerary, {"title": f"by {role}"}),
        "delete_itinerary": ("DELETE", itinerary, None),
        "add_activity": ("POST", f"{itinerary}/activities", {"title": "Museum"}),
        "patch_activity": ("PATCH", activity, {"title": f"by {role}"}),
        "delete_activity": ("DELETE", activity, None),
        "share": ("PUT", f"{trip}/collaborators/{s.newcomer}", {"permission": "edit"}),
        "unshare_other": ("DELETE", f"{trip}/collaborators/{s.extra}", None),
        "unshare_self": ("DELETE", f"{trip}/collaborators/{s.group.users[role].id}", None),
    }
    return requests[command]


WRITE = {"owner": 200, "admin": 200, "edit": 200, "view": 403, "stranger": 404}
CREATE = {"owner": 201, "admin": 201, "edit": 201, "view": 403, "stranger": 404}
REMOVE = {"owner": 204, "admin": 204, "edit": 204, "view": 403, "stranger": 404}
EXPECTED: dict[str, dict[str, int]] = {
    "patch_trip": WRITE,
    "delete_trip": {"owner": 204, "admin": 403, "edit": 403, "view": 403, "stranger": 404},
    "add_itinerary": CREATE,
    "patch_itinerary": WRITE,
    "delete_itinerary": REMOVE,
    "add_activity": CREATE,
    "patch_activity": WRITE,
    "delete_activity": REMOVE,
    "share": {"owner": 200, "admin": 200, "edit": 403, "view": 403, "stranger": 404},
    "unshare_other": {"owner": 204, "admin": 204, "edit": 403, "view": 403, "stranger": 404},
    # The owner is no collaborator (404); every collaborator may leave.
    "unshare_self": {"owner": 404, "admin": 204, "edit": 204, "view": 204, "stranger": 404},
}
CASES = [(command, role, status) for command, by_role in EXPECTED.items() for role, status in by_role.items()]


async def snapshot(app: FastAPI, trip: str) -> list[Any]:
    tables = {
        "trips": "SELECT * FROM trips WHERE id = :id",
        "itineraries": "SELECT * FROM itineraries WHERE trip_id = :id ORDER BY id",
        "activities": "SELECT * FROM activities WHERE trip_id = :id ORDER BY id",
        "collaborators": "SELECT * FROM trip_collaborators WHERE trip_id = :id ORDER BY user_id",
    }
    return [await fetch(app, sql, id=trip) for sql in tables.values()]


@pytest.mark.parametrize(("command", "role", "status"), CASES, ids=[f"{c}-{r}" for c, r, _ in CASES])
async def test_permission_matrix(client: httpx.AsyncClient, app: FastAPI, command: str, role: str, status: int) -> None:
    s = await scene(app)
    before = await snapshot(app, s.trip)
    version = before[0][0]["version"]
    method, url, body = request_for(command, s, role)
    response = await client.request(method, url, json=body, headers=s.group.headers(role))
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert "x-consistency-token" not in response.headers
        assert await snapshot(app, s.trip) == before
    elif command == "delete_trip":
        assert await fetch(app, "SELECT 1 FROM trips WHERE id = :id", id=s.trip) == []
    else:
        assert response.headers["x-consistency-token"].startswith("v1.")
        assert (await version_of(app, s.trip))[0] == version + 1


async def test_stranger_and_owner_see_the_same_404_for_a_missing_trip(client: httpx.AsyncClient, app: FastAPI) -> None:
    s = await scene(app)
    missing = f"/api/trips/{uuid.uuid4()}"
    hidden = f"/api/trips/{s.trip}"
    for role in ROLES:
        absent = await client.patch(missing, json={"title": "x"}, headers=s.group.headers(role))
        assert absent.status_code == 404
    not_visible = await client.patch(hidden, json={"title": "x"}, headers=s.group.headers("stranger"))
    absent = await client.patch(missing, json={"title": "x"}, headers=s.group.headers("stranger"))
    assert not_visible.json() == absent.json()


async def test_service_token_may_not_run_user_commands(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/trips", json={}, headers=service_headers())
    assert response.status_code == 403
    unauthenticated = await client.post("/api/trips", json={})
    assert unauthenticated.status_code == 401


async def test_openapi_declares_each_commands_error_statuses(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    trip_ops = [
        ("post", "/api/trips/{trip_id}/itineraries"),
        ("patch", "/api/trips/{trip_id}"),
        ("delete", "/api/trips/{trip_id}"),
        ("patch", "/api/trips/{trip_id}/itineraries/{itinerary_id}"),
        ("delete", "/api/trips/{trip_id}/itineraries/{itinerary_id}/activities/{activity_id}"),
        ("put", "/api/trips/{trip_id}/collaborators/{user_id}"),
        ("delete", "/api/trips/{trip_id}/collaborators/{user_id}"),
    ]
    for method, path in trip_ops:
        operation = doc["paths"][path][method]
        assert {"401", "403", "404", "412", "422"} <= set(operation["responses"]), (method, path)
        assert operation["description"]
        assert "application/problem+json" in operation["responses"]["404"]["content"]
    create = doc["paths"]["/api/trips"]["post"]["responses"]
    assert {"201", "401", "403", "409", "413", "415", "422"} <= set(create)
    assert {"401", "422"} <= set(doc["paths"]["/api/users/me"]["patch"]["responses"])
