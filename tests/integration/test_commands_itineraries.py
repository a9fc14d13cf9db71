from __future__ import annotations

import re
from datetime import date

import httpx
from fastapi import FastAPI

from tests.integration.command_kit import add_activity, add_itinerary, create_trip, fetch, signed_in, version_of

TOKEN = re.compile(r"^v1\.\d+$")


async def test_add_itinerary_stores_it_and_bumps_the_trip(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    response = await client.post(
        f"/api/trips/{trip['id']}/itineraries",
        json={"title": "Alfama", "day": "2026-06-02", "position": 3},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    assert TOKEN.match(response.headers["x-consistency-token"])
    body = response.json()
    assert list(body) == ["id", "trip_id", "title", "day", "position", "created_at", "updated_at", "trip_version"]
    assert (body["trip_id"], body["title"], body["day"], body["position"]) == (trip["id"], "Alfama", "2026-06-02", 3)
    assert body["trip_version"] == 2
    rows = await fetch(app, "SELECT * FROM itineraries WHERE id = :id", id=body["id"])
    assert rows[0]["day"] == date(2026, 6, 2) and rows[0]["position"] == 3 and rows[0]["title"] == "Alfama"
    assert (await version_of(app, trip["id"]))[0] == 2
    undated = await add_itinerary(client, owner, trip["id"])
    assert undated["day"] is None and undated["position"] == 0 and undated["trip_version"] == 3


async def test_itinerary_day_must_lie_within_the_trip(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    url = f"/api/trips/{trip['id']}/itineraries"
    for day in ("2026-05-31", "2026-06-06"):
        response = await client.post(url, json={"title": "x", "day": day}, headers=owner.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["body", "day"]
    first = await client.post(url, json={"title": "first", "day": "2026-06-01"}, headers=owner.headers)
    last = await client.post(url, json={"title": "last", "day": "2026-06-05"}, headers=owner.headers)
    assert first.status_code == last.status_code == 201
    moved = await client.patch(f"{url}/{first.json()['id']}", json={"day": "2026-07-01"}, headers=owner.headers)
    assert moved.status_code == 422 and moved.json()["errors"][0]["loc"] == ["body", "day"]
    assert (await version_of(app, trip["id"]))[0] == 3


async def test_patch_itinerary(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    itinerary = await add_itinerary(client, owner, trip["id"], day="2026-06-02")
    url = f"/api/trips/{trip['id']}/itineraries/{itinerary['id']}"
    response = await client.patch(url, json={"title": "Belém", "day": None, "position": 7}, headers=owner.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["title"], body["day"], body["position"], body["trip_version"]) == ("Belém", None, 7, 3)
    assert body["updated_at"] > itinerary["updated_at"] and body["created_at"] == itinerary["created_at"]
    row = (await fetch(app, "SELECT * FROM itineraries WHERE id = :id", id=itinerary["id"]))[0]
    assert (row["title"], row["day"], row["position"]) == ("Belém", None, 7)
    same = await client.patch(url, json={"title": "Belém", "position": 7}, headers=owner.headers)
    assert same.status_code == 200 and same.json()["trip_version"] == 3
    assert same.json()["updated_at"] == body["updated_at"]
    assert (await version_of(app, trip["id"]))[0] == 3


async def test_delete_itinerary_deletes_its_activities(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    itinerary = await add_itinerary(client, owner, trip["id"])
    await add_activity(client, owner, trip["id"], itinerary["id"])
    await add_activity(client, owner, trip["id"], itinerary["id"], title="Lunch", item_type="meal")
    url = f"/api/trips/{trip['id']}/itineraries/{itinerary['id']}"
    response = await client.delete(url, headers=owner.headers)
    assert response.status_code == 204 and TOKEN.match(response.headers["x-consistency-token"])
    assert await fetch(app, "SELECT 1 FROM itineraries WHERE id = :id", id=itinerary["id"]) == []
    assert await fetch(app, "SELECT 1 FROM activities WHERE itinerary_id = :id", id=itinerary["id"]) == []
    assert (await version_of(app, trip["id"]))[0] == 5
    again = await client.delete(url, headers=owner.headers)
    assert again.status_code == 404


async def test_itinerary_of_another_trip_is_not_found(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    other = await create_trip(client, owner)
    itinerary = await add_itinerary(client, owner, other["id"])
    url = f"/api/trips/{trip['id']}/itineraries/{itinerary['id']}"
    assert (await client.patch(url, json={"title": "x"}, headers=owner.headers)).status_code == 404
    assert (await client.delete(url, headers=owner.headers)).status_code == 404
    activity = await client.post(f"{url}/activities", json={"title": "x"}, headers=owner.headers)
    assert activity.status_code == 404
    assert (await version_of(app, trip["id"]))[0] == 1
