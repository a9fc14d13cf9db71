from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
from fastapi import FastAPI

from tests.integration.command_kit import add_activity, add_itinerary, create_trip, fetch, signed_in, version_of

FULL = {
    "title": "Fado dinner",
    "item_type": "meal",
    "starts_at": "2026-06-02T20:00:00+01:00",
    "ends_at": "2026-06-02T23:30:00+01:00",
    "location": "Alfama",
    "price": 85.5,
    "currency": "usd",
    "booking_status": "reserved",
    "notes": "window table",
    "position": 2,
}


async def test_add_activity_stores_every_field(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    itinerary = await add_itinerary(client, owner, trip["id"])
    response = await client.post(
        f"/api/trips/{trip['id']}/itineraries/{itinerary['id']}/activities", json=FULL, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert list(body) == [
        "id", "trip_id", "itinerary_id", "title", "item_type", "starts_at", "ends_at", "location", "price",
        "currency", "booking_status", "notes", "position", "created_at", "updated_at", "trip_version",
    ]  # fmt: skip
    assert body["starts_at"] == "2026-06-02T19:00:00.000000Z" and body["ends_at"] == "2026-06-02T22:30:00.000000Z"
    assert (body["price"], body["currency"], body["trip_version"]) == ("85.50", "USD", 3)
    row = (await fetch(app, "SELECT * FROM activities WHERE id = :id", id=body["id"]))[0]
    assert row["starts_at"] == datetime(2026, 6, 2, 19, tzinfo=UTC)
    assert (row["price"], row["currency"], row["item_type"], row["booking_status"]) == (
        Decimal("85.50"),
        "USD",
        "meal",
        "reserved",
    )
    assert (str(row["trip_id"]), str(row["itinerary_id"])) == (trip["id"], itinerary["id"])


async def test_activity_currency_defaults_to_the_trips(client: httpx.AsyncClient) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner, currency="JPY")
    itinerary = await add_itinerary(client, owner, trip["id"])
    activity = await add_activity(client, owner, trip["id"], itinerary["id"])
    assert activity["currency"] == "JPY"
    assert (activity["item_type"], activity["booking_status"], activity["position"]) == ("activity", "planned", 0)
    assert activity["price"] is None and activity["starts_at"] is None


async def test_patch_activity_merges_and_checks_times(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    itinerary = await add_itinerary(client, owner, trip["id"])
    activity = await add_activity(client, owner, trip["id"], itinerary["id"], **FULL)
    url = f"/api/trips/{trip['id']}/itineraries/{itinerary['id']}/activities/{activity['id']}"
    backwards = await client.patch(url, json={"ends_at": "2026-06-02T18:00:00Z"}, headers=owner.headers)
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["loc"] == ["body", "ends_at"]
    late_start = await client.patch(url, json={"starts_at": "2026-06-03T00:00:00Z"}, headers=owner.headers)
    assert late_start.status_code == 422 and late_start.json()["errors"][0]["loc"] == ["body", "starts_at"]
    response = await client.patch(
        url, json={"price": None, "booking_status": "cancelled", "notes": None}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["price"], body["booking_status"], body["notes"], body["title"]) == (
        None,
        "cancelled",
        None,
        "Fado dinner",
    )
    assert body["trip_version"] == 4
    same_instant = await client.patch(url, json={"starts_at": "2026-06-02T19:00:00Z"}, headers=owner.headers)
    assert same_instant.status_code == 200 and same_instant.json()["trip_version"] == 4
    assert (await version_of(app, trip["id"]))[0] == 4
    row = (await fetch(app, "SELECT * FROM activities WHERE id = :id", id=activity["id"]))[0]
    assert row["price"] is None and row["booking_status"] == "cancelled"


async def test_delete_activity(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    itinerary = await add_itinerary(client, owner, trip["id"])
    activity = await add_activity(client, owner, trip["id"], itinerary["id"])
    url = f"/api/trips/{trip['id']}/itineraries/{itinerary['id']}/activities/{activity['id']}"
    response = await client.delete(url, headers=owner.headers)
    assert response.status_code == 204
    assert await fetch(app, "SELECT 1 FROM activities WHERE id = :id", id=activity["id"]) == []
    assert (await version_of(app, trip["id"]))[0] == 4
    assert (await client.delete(url, headers=owner.headers)).status_code == 404


async def test_activity_under_another_itinerary_is_not_found(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    first = await add_itinerary(client, owner, trip["id"])
    second = await add_itinerary(client, owner, trip["id"])
    activity = await add_activity(client, owner, trip["id"], first["id"])
    url = f"/api/trips/{trip['id']}/itineraries/{second['id']}/activities/{activity['id']}"
    assert (await client.patch(url, json={"title": "x"}, headers=owner.headers)).status_code == 404
    assert (await client.delete(url, headers=owner.headers)).status_code == 404
    assert (await version_of(app, trip["id"]))[0] == 4
