"""`Idempotency-Key`: retries replay the first response; misuse is refused; failures store nothing."""

from __future__ import annotations

import asyncio
import json

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.integration.command_kit import (
    TRIP,
    add_itinerary,
    create_trip,
    fetch,
    signed_in,
    trip_locked,
    version_of,
    wait_until_blocked,
)

REPLAYED = ("location", "etag", "x-consistency-token", "content-type")


async def test_retrying_a_create_five_times_creates_one_trip(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    headers = owner.headers | {"Idempotency-Key": "create-lisbon-1"}
    responses = [await client.post("/api/trips", json=TRIP, headers=headers) for _ in range(5)]
    first = responses[0]
    assert first.status_code == 201
    for retry in responses[1:]:
        assert retry.status_code == 201
        assert retry.content == first.content
        assert {h: retry.headers[h] for h in REPLAYED} == {h: first.headers[h] for h in REPLAYED}
        assert retry.headers["idempotent-replayed"] == "true"
    rows = await fetch(app, "SELECT id FROM trips WHERE owner_id = :id", id=str(owner.id))
    assert [str(row["id"]) for row in rows] == [first.json()["id"]]


async def test_same_key_with_another_body_or_path_is_refused(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    headers = owner.headers | {"Idempotency-Key": "k-1"}
    trip = (await client.post("/api/trips", json=TRIP, headers=headers)).json()
    other_body = await client.post("/api/trips", json=TRIP | {"title": "Other"}, headers=headers)
    assert other_body.status_code == 422
    assert other_body.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    other_path = await client.post(f"/api/trips/{trip['id']}/itineraries", json={"title": "x"}, headers=headers)
    assert other_path.status_code == 422
    # Key order and whitespace do not matter: the body is compared in canonical form.
    reordered = await client.post(
        "/api/trips",
        content=json.dumps(dict(reversed(TRIP.items())), indent=2),
        headers=headers | {"Content-Type": "application/json"},
    )
    assert reordered.status_code == 201 and reordered.json()["id"] == trip["id"]
    assert len(await fetch(app, "SELECT id FROM trips WHERE owner_id = :id", id=str(owner.id))) == 1
    assert (await version_of(app, trip["id"]))[0] == 1


async def test_keys_belong_to_their_user(client: httpx.AsyncClient) -> None:
    alice, bob = await signed_in(client, "alice"), await signed_in(client, "bob")
    a = await client.post("/api/trips", json=TRIP, headers=alice.headers | {"Idempotency-Key": "shared"})
    b = await client.post("/api/trips", json=TRIP, headers=bob.headers | {"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"] and b.json()["owner_id"] == str(bob.id)


async def test_a_failed_command_stores_no_key(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    url = f"/api/trips/{trip['id']}/itineraries"
    headers = owner.headers | {"Idempotency-Key": "day-1"}
    refused = await client.post(url, json={"title": "x", "day": "2030-01-01"}, headers=headers)
    assert refused.status_code == 422
    accepted = await client.post(url, json={"title": "x", "day": "2026-06-01"}, headers=headers)
    assert accepted.status_code == 201
    keys = await fetch(app, "SELECT key, status_code FROM idempotency_keys WHERE user_id = :id", id=str(owner.id))
    assert keys == [{"key": "day-1", "status_code": 201}]


async def test_key_length_is_checked(client: httpx.AsyncClient) -> None:
    owner = await signed_in(client)
    for key in ("", "k" * 256):
        response = await client.post("/api/trips", json=TRIP, headers=owner.headers | {"Idempotency-Key": key})
        assert response.status_code == 422


async def test_same_key_while_the_first_runs_is_a_conflict(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    url = f"/api/trips/{trip['id']}/itineraries"
    headers = owner.headers | {"Idempotency-Key": "slow"}
    async with trip_locked(app, trip["id"]):
        first = asyncio.create_task(client.post(url, json={"title": "x"}, headers=headers))
        await wait_until_blocked(app)
        second = await client.post(url, json={"title": "x"}, headers=headers)
        assert second.status_code == 409, second.text
        assert second.headers["retry-after"] == "1"
    done = await first
    assert done.status_code == 201
    retry = await client.post(url, json={"title": "x"}, headers=headers)
    assert retry.status_code == 201 and retry.json() == done.json()
    assert len(await fetch(app, "SELECT 1 FROM itineraries WHERE trip_id = :id", id=trip["id"])) == 1


async def test_a_key_stored_meanwhile_rolls_the_command_back(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    await add_itinerary(client, owner, trip["id"])
    url = f"/api/trips/{trip['id']}/itineraries"
    headers = owner.headers | {"Idempotency-Key": "raced"}
    async with trip_locked(app, trip["id"]):
        first = asyncio.create_task(client.post(url, json={"title": "x"}, headers=headers))
        await wait_until_blocked(app)
        async with app.state.ctx.db.engine.begin() as conn:  # another writer stores the key first
            await conn.execute(
                text("INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES (:id, 'raced', 'other')"),
                {"id": owner.id},
            )
    response = await first
    assert response.status_code == 409
    assert len(await fetch(app, "SELECT 1 FROM itineraries WHERE trip_id = :id", id=trip["id"])) == 1
    assert (await version_of(app, trip["id"]))[0] == 2
