from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from core.auth import Principal, TokenVerifier
from tests.integration.command_kit import (
    TRIP,
    add_activity,
    add_itinerary,
    create_trip,
    fetch,
    party,
    signed_in,
    trip_row,
    version_of,
)

TOKEN = re.compile(r"^v1\.(\d+)$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def feed_xids(app: FastAPI, trip_id: str) -> set[int]:
    rows = await fetch(app, "SELECT xid::text AS xid FROM tripsage.changes WHERE trip_id = :id", id=trip_id)
    return {int(row["xid"]) for row in rows}


async def test_create_trip_stores_and_returns_the_record(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    response = await client.post("/api/trips", json=TRIP, headers=owner.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/trips/{body['id']}"
    assert response.headers["etag"] == '"1"'
    token = TOKEN.match(response.headers["x-consistency-token"])
    assert token is not None
    assert list(body) == [
        "id", "owner_id", "title", "description", "destination", "start_date", "end_date", "budget", "currency",
        "travelers", "status", "trip_type", "tags", "version", "created_at", "updated_at",
    ]  # fmt: skip
    assert body["owner_id"] == str(owner.id)
    assert body["budget"] == "1250.50"
    assert body["tags"] == ["food", "city"]
    assert body["version"] == 1
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["updated_at"])
    row = await trip_row(app, body["id"])
    assert row is not None
    assert row["owner_id"] == owner.id
    assert row["title"] == TRIP["title"] and row["description"] == TRIP["description"]
    assert (row["start_date"], row["end_date"]) == (date(2026, 6, 1), date(2026, 6, 5))
    assert row["budget"] == Decimal("1250.50") and row["currency"] == "EUR" and row["travelers"] == 2
    assert row["tags"] == ["food", "city"] and row["version"] == 1
    # The token is the writing transaction's id: the change feed rows of this write carry it.
    assert int(token.group(1)) in await feed_xids(app, body["id"])


async def test_create_trip_defaults(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    minimal = {"title": "T", "destination": "D", "start_date": "2026-01-01", "end_date": "2026-01-01"}
    response = await client.post("/api/trips", json=minimal, headers=owner.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["currency"], body["travelers"], body["status"], body["trip_type"]) == ("USD", 1, "planning", "leisure")
    assert body["tags"] == [] and body["budget"] is None and body["description"] is None
    row = await trip_row(app, body["id"])
    assert row is not None and row["currency"] == "USD" and row["tags"] == []


async def test_patch_trip_bumps_version_once_and_returns_etag(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    response = await client.patch(
        f"/api/trips/{trip['id']}", json={"title": "Porto instead", "tags": ["b", "a", "b"]}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["title"] == "Porto instead" and body["tags"] == ["b", "a"] and body["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert TOKEN.match(response.headers["x-consistency-token"])
    assert body["updated_at"] > trip["updated_at"]
    row = await trip_row(app, trip["id"])
    assert row is not None and row["title"] == "Porto instead" and row["version"] == 2
    assert row["destination"] == TRIP["destination"]  # untouched fields stay


async def test_patch_with_same_values_changes_nothing(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    before = await version_of(app, trip["id"])
    same = {"title": TRIP["title"], "budget": "1250.50", "currency": "eur", "tags": ["food", "city"]}
    response = await client.patch(f"/api/trips/{trip['id']}", json=same, headers=owner.headers)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1 and response.json()["updated_at"] == trip["updated_at"]
    assert response.headers["etag"] == '"1"'
    assert await version_of(app, trip["id"]) == before
    empty = await client.patch(f"/api/trips/{trip['id']}", json={}, headers=owner.headers)
    assert empty.status_code == 200 and await version_of(app, trip["id"]) == before


async def test_patch_null_clears_nullable_fields(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    response = await client.patch(
        f"/api/trips/{trip['id']}", json={"description": None, "budget": None}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["description"] is None and response.json()["budget"] is None
    row = await trip_row(app, trip["id"])
    assert row is not None and row["description"] is None and row["budget"] is None and row["version"] == 2


async def test_if_match_accepts_command_and_view_etags_and_refuses_stale(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    url = f"/api/trips/{trip['id']}"
    ok = await client.patch(url, json={"travelers": 3}, headers=owner.headers | {"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    view_etag = await client.patch(
        url, json={"travelers": 4}, headers=owner.headers | {"If-Match": '"2-0123456789abcdef"'}
    )
    assert view_etag.status_code == 200 and view_etag.json()["version"] == 3
    star = await client.patch(url, json={"travelers": 5}, headers=owner.headers | {"If-Match": "*"})
    assert star.status_code == 200 and star.json()["version"] == 4
    for stale in ('"1"', '"3-0123456789abcdef"', "garbage"):
        refused = await client.patch(url, json={"travelers": 9}, headers=owner.headers | {"If-Match": stale})
        assert refused.status_code == 412, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    row = await trip_row(app, trip["id"])
    assert row is not None and row["travelers"] == 5 and row["version"] == 4


async def test_patch_dates_are_checked_against_the_stored_ones(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    url = f"/api/trips/{trip['id']}"
    late_start = await client.patch(url, json={"start_date": "2026-06-09"}, headers=owner.headers)
    assert late_start.status_code == 422
    assert late_start.json()["errors"][0]["loc"] == ["body", "start_date"]
    early_end = await client.patch(url, json={"end_date": "2026-05-01"}, headers=owner.headers)
    assert early_end.status_code == 422
    assert early_end.json()["errors"][0]["loc"] == ["body", "end_date"]
    moved = await client.patch(url, json={"start_date": "2026-06-08", "end_date": "2026-06-10"}, headers=owner.headers)
    assert moved.status_code == 200 and moved.json()["version"] == 2
    assert await version_of(app, trip["id"]) == (2, (await trip_row(app, trip["id"]) or {})["updated_at"])


async def test_date_change_leaving_an_itinerary_outside_is_refused(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    itinerary = await add_itinerary(client, owner, trip["id"], title="Sintra", day="2026-06-04")
    before = await version_of(app, trip["id"])
    response = await client.patch(f"/api/trips/{trip['id']}", json={"end_date": "2026-06-03"}, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {
            "loc": ["body", "end_date"],
            "msg": f"itinerary {itinerary['id']} (Sintra) on 2026-06-04 falls outside the trip dates",
        }
    ]
    assert await version_of(app, trip["id"]) == before
    early = await client.patch(
        f"/api/trips/{trip['id']}", json={"start_date": "2026-06-05", "end_date": "2026-06-09"}, headers=owner.headers
    )
    assert early.status_code == 422 and early.json()["errors"][0]["loc"] == ["body", "start_date"]
    inside = await client.patch(f"/api/trips/{trip['id']}", json={"end_date": "2026-06-04"}, headers=owner.headers)
    assert inside.status_code == 200 and inside.json()["version"] == before[0] + 1


async def test_delete_trip_cascades(client: httpx.AsyncClient, app: FastAPI) -> None:
    group = await party(client)
    owner = group.users["owner"]
    itinerary = await add_itinerary(client, owner, group.trip_id)
    await add_activity(client, owner, group.trip_id, itinerary["id"])
    chat = await fetch(
        app,
        "INSERT INTO chat_sessions (user_id, trip_id) VALUES (:user, :trip) RETURNING id",
        user=str(group.users["edit"].id),
        trip=group.trip_id,
    )
    url = f"/api/trips/{group.trip_id}"
    stale = await client.delete(url, headers=group.headers("owner", **{"If-Match": '"1"'}))
    assert stale.status_code == 412
    response = await client.delete(url, headers=owner.headers)
    assert response.status_code == 204 and response.content == b""
    token = TOKEN.match(response.headers["x-consistency-token"])
    assert token is not None and int(token.group(1)) in await feed_xids(app, group.trip_id)
    assert await trip_row(app, group.trip_id) is None
    for table in ("itineraries", "activities", "trip_collaborators"):
        assert await fetch(app, f"SELECT 1 FROM {table} WHERE trip_id = :id", id=group.trip_id) == []  # noqa: S608
    # Another user's chat about the trip stays, detached (ON DELETE SET NULL works across RLS).
    assert await fetch(app, "SELECT trip_id FROM chat_sessions WHERE id = :id", id=chat[0]["id"]) == [{"trip_id": None}]
    again = await client.delete(url, headers=owner.headers)
    assert again.status_code == 404


async def test_a_command_verifies_its_token_once(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rate limit and the route both need the caller: the token is verified once per request."""
    owner = await signed_in(client)
    verifier: TokenVerifier = app.state.ctx.verifier
    real, calls = verifier.verify, []

    async def counted(token: str) -> Principal:
        calls.append(token)
        return await real(token)

    monkeypatch.setattr(verifier, "verify", counted)
    created = await client.post("/api/trips", json=TRIP, headers=owner.headers)
    assert created.status_code == 201, created.text
    patched = await client.patch(f"/api/trips/{created.json()['id']}", json={"title": "Once"}, headers=owner.headers)
    assert patched.status_code == 200, patched.text
    assert len(calls) == 2
