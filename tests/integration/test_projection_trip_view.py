from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from projections.apply import drain
from projections.trip_view import build_documents, refresh_trips
from tests.integration.test_projection_support import Writes, assert_converged, read_model
from tests.support import count_statements


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=3)
    yield eng
    await eng.dispose()


def utc(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def row(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).one()


async def test_document_shape_members_and_etag(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner, friend, viewer = await w.user("Owner Ann"), await w.user("Friend Bo"), await w.user("Viewer Cy")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE user_preferences SET currency = 'EUR', home_airport = 'LIS', travel_style = 'slow',"
                " dietary_restrictions = '{vegan}' WHERE user_id = :id"
            ),
            {"id": owner},
        )
    trip = await w.create_trip(
        owner, 'Ünïcode "trip"', description="Sea & sun", budget=Decimal("1250.5"), destination="Porto"
    )
    await w.patch_trip(owner, trip, tags=["beach", "food"], travelers=2)
    day2 = await w.add_itinerary(owner, trip, "Day two", position=2, day=date(2030, 5, 2))
    day1 = await w.add_itinerary(owner, trip, "Day one", position=1)
    a1 = await w.add_activity(owner, trip, day1, "Dinner", price=Decimal("40.5"), currency="EUR", position=2)
    a2 = await w.add_activity(owner, trip, day1, "Museum", price=Decimal("12"), currency="EUR", position=1)
    a3 = await w.add_activity(owner, trip, day2, "Cancelled boat", price=Decimal("99"), booking_status="cancelled")
    a4 = await w.add_activity(owner, trip, day2, "Free walk", position=3)
    await w.share(owner, trip, friend, "edit")
    await w.share(owner, trip, viewer, "view")
    await drain(engine)

    t = await row(engine, "SELECT * FROM trips WHERE id = :id", id=trip)
    its = {r.id: r for r in (await _rows(engine, "SELECT * FROM itineraries WHERE trip_id = :id", id=trip))}
    acts = {r.id: r for r in (await _rows(engine, "SELECT * FROM activities WHERE trip_id = :id", id=trip))}
    collabs = await _rows(
        engine, "SELECT * FROM trip_collaborators WHERE trip_id = :id ORDER BY created_at, user_id", id=trip
    )

    def activity(aid: uuid.UUID) -> dict[str, Any]:
        a = acts[aid]
        return {
            "id": str(aid),
            "title": a.title,
            "item_type": "activity",
            "starts_at": None,
            "ends_at": None,
            "location": None,
            "price": None if a.price is None else f"{a.price:.2f}",
            "currency": a.currency,
            "booking_status": a.booking_status,
            "notes": None,
            "position": a.position,
        }

    expected = {
        "id": str(trip),
        "title": 'Ünïcode "trip"',
        "description": "Sea & sun",
        "destination": "Porto",
        "start_date": "2030-05-01",
        "end_date": "2030-05-10",
        "budget": "1250.50",
        "currency": "USD",
        "travelers": 2,
        "status": "planning",
        "trip_type": "leisure",
        "tags": ["beach", "food"],
        "version": t.version,
        "created_at": utc(t.created_at),
        "updated_at": utc(t.updated_at),
        "owner": {
            "id": str(owner),
            "display_name": "Owner Ann",
            "preferences": {
                "currency": "EUR",
                "home_airport": "LIS",
                "travel_style": "slow",
                "dietary_restrictions": ["vegan"],
                "accessibility_needs": [],
            },
        },
        "collaborators": [
            {
                "user_id": str(c.user_id),
                "display_name": "Friend Bo" if c.user_id == friend else "Viewer Cy",
                "permission": c.permission,
            }
            for c in collabs
        ],
        "itineraries": [
            {
                "id": str(day1),
                "title": "Day one",
                "day": None,
                "position": 1,
                "activities": [activity(a2), activity(a1)],
            },
            {
                "id": str(day2),
                "title": "Day two",
                "day": "2030-05-02",
                "position": 2,
                "activities": [activity(a3), activity(a4)],
            },
        ],
        "stats": {"itinerary_count": 2, "activity_count": 4, "total_cost": {"EUR": "52.50"}},
    }
    assert its.keys() == {day1, day2}
    docs = await read_model(engine, [trip])
    doc = orjson.loads(docs[trip])
    assert doc == expected
    assert list(doc) == list(expected)  # key order as documented
    assert list(doc["owner"]["preferences"]) == list(expected["owner"]["preferences"])

    view = await row(engine, "SELECT * FROM trip_views WHERE trip_id = :id", id=trip)
    assert view.etag == f'"{t.version}-{hashlib.md5(bytes(view.doc)).hexdigest()[:16]}"'
    assert view.search_text == 'ünïcode "trip" porto sea & sun'
    assert set(view.member_ids) == {owner, friend, viewer} and view.member_ids[0] == owner
    members = {
        (r.user_id, r.role) for r in await _rows(engine, "SELECT * FROM trip_view_members WHERE trip_id = :id", id=trip)
    }
    assert members == {(owner, "owner"), (friend, "shared"), (viewer, "shared")}

    await w.unshare(owner, trip, viewer)
    await w.patch_trip(owner, trip, status="booked")
    await drain(engine)
    members_after = await _rows(engine, "SELECT * FROM trip_view_members WHERE trip_id = :id", id=trip)
    assert {(r.user_id, r.role, r.status) for r in members_after} == {
        (owner, "owner", "booked"),
        (friend, "shared", "booked"),
    }
    await assert_converged(engine, [trip])


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def test_empty_trip_and_stats(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Solo")
    trip = await w.create_trip(owner)
    async with engine.connect() as conn:
        doc = orjson.loads((await build_documents(conn, [trip]))[trip])
    assert doc["collaborators"] == [] and doc["itineraries"] == [] and doc["tags"] == []
    assert doc["budget"] is None and doc["description"] is None
    assert doc["stats"] == {"itinerary_count": 0, "activity_count": 0, "total_cost": {}}
    assert doc["owner"]["preferences"] == {
        "currency": None,
        "home_airport": None,
        "travel_style": None,
        "dietary_restrictions": [],
        "accessibility_needs": [],
    }


async def test_refresh_is_one_statement_idempotent_and_removes_deleted(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Batch")
    trips = [await w.create_trip(owner, f"T{i}") for i in range(5)]
    await drain(engine)
    async with engine.begin() as conn:
        with count_statements(engine) as counter:
            assert await refresh_trips(conn, trips) == 0  # nothing changed: nothing rewritten
    assert counter.count == 1
    async with engine.begin() as conn:
        assert await refresh_trips(conn, []) == 0
    async with engine.connect() as conn:
        assert await build_documents(conn, []) == {}

    await w.delete_trip(owner, trips[0])
    async with engine.begin() as conn:
        assert await refresh_trips(conn, trips) == 1
    assert trips[0] not in await read_model(engine, trips)
    left = await _rows(engine, "SELECT 1 FROM trip_view_members WHERE trip_id = :id", id=trips[0])
    assert left == []


async def test_never_overwrites_a_newer_version(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Versions")
    trip = await w.create_trip(owner)
    await w.patch_trip(owner, trip, title="Newer")
    await drain(engine)
    async with engine.begin() as conn:
        # Pretend the stored document came from a later version than the write model holds.
        await conn.execute(
            text("UPDATE trip_views SET version = version + 10, doc = 'x' WHERE trip_id = :id"), {"id": trip}
        )
        assert await refresh_trips(conn, [trip]) == 0
        assert bytes(await conn.scalar(text("SELECT doc FROM trip_views WHERE trip_id = :id"), {"id": trip})) == b"x"
        await conn.rollback()
