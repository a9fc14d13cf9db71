"""Migration 0013 (`add_activity` counts its caps once): upgrade from 0012 holding data; same answers; downgrade."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import orjson
import pytest
from alembic import command

from core.migrate import alembic_config, migrate
from tests.integration.test_migration_0012 import ADMIN, DATA, EDITOR, ITINERARY, MISSING, OWNER, STRANGER, TRIP, VIEWER
from tests.integration.test_migrations import SNAPSHOT, _dsn, database_at, sql
from tests.support import TestServers as Servers

OTHER_TRIP, OTHER_ITINERARY = "00000000-0000-0000-0000-0000000000f2", "00000000-0000-0000-0000-0000000000e2"
MORE_DATA = f"""
INSERT INTO trips (id, owner_id, title, destination, start_date, end_date, currency)
  VALUES ('{OTHER_TRIP}', '{OWNER}', 'U', 'D', '2027-02-01', '2027-02-03', 'JPY');
INSERT INTO itineraries (id, trip_id, title) VALUES ('{OTHER_ITINERARY}', '{OTHER_TRIP}', 'Day');
"""
CALL = """
SELECT title, item_type, price, currency, booking_status, notes, "position", itinerary_id, trip_id, trip_version,
       created_at = now() AND updated_at = now() AS stamped_now
FROM tripsage.add_activity($1, $2, $3, $4, $5, $6, 'New', 'meal', NULL, NULL, NULL, $7, $8, 'planned', NULL, 1)
"""
AFTER = """
SELECT (SELECT version FROM trips WHERE id = $1), (SELECT count(*) FROM activities WHERE trip_id = $1),
       (SELECT count(*) FROM tripsage.changes)
"""
# (caller, trip, itinerary, If-Match version, cap per itinerary, cap per trip, price, currency)
CASES = [
    (OWNER, TRIP, ITINERARY, None, 100, 100, "12.50", None),  # the trip's currency
    (EDITOR, TRIP, ITINERARY, 3, 100, 100, "0", "USD"),  # If-Match current
    (ADMIN, TRIP, ITINERARY, None, 100, 100, None, "JPY"),
    (EDITOR, TRIP, ITINERARY, 2, 100, 100, "1", None),  # If-Match stale
    (VIEWER, TRIP, ITINERARY, None, 100, 100, "1", None),
    (STRANGER, TRIP, ITINERARY, None, 100, 100, "1", None),
    (None, TRIP, ITINERARY, None, 100, 100, "1", None),  # no caller
    (OWNER, MISSING, ITINERARY, None, 100, 100, "1", None),
    (OWNER, TRIP, OTHER_ITINERARY, None, 100, 100, "1", None),  # an itinerary of another trip
    (OWNER, TRIP, ITINERARY, None, 2, 100, "1", None),  # the itinerary is full (2 of 2)
    (OWNER, TRIP, ITINERARY, None, 3, 100, "1", None),  # one left in the itinerary
    (OWNER, TRIP, ITINERARY, None, 100, 2, "1", None),  # the trip is full
    (OWNER, TRIP, ITINERARY, None, 100, 3, "1", None),
    (OWNER, OTHER_TRIP, OTHER_ITINERARY, None, 1, 1, "7", None),  # an empty itinerary, caps of one
]


@pytest.fixture
async def at_0012(servers: Servers) -> AsyncIterator[str]:
    async with database_at(servers, "0012", DATA + MORE_DATA) as url:
        yield url


Answer = tuple[str | None, str, list[tuple[object, ...]], tuple[int, int, int]]
"""Caller, trip, the rows returned, and (trip version, its activities, change records) after the call."""


async def answers(url: str) -> list[Answer]:
    """What each case's call returns and leaves behind in its transaction (rolled back: nothing stays)."""
    conn = await asyncpg.connect(_dsn(url))
    found: list[Answer] = []
    try:
        for user, trip, itinerary, version, per_itinerary, per_trip, price, currency in CASES:
            claims = orjson.dumps({"sub": user, "role": "authenticated"} if user else {"role": "anon"}).decode()
            tx = conn.transaction()
            await tx.start()
            try:
                amount = None if price is None else Decimal(price)
                rows = await conn.fetch(
                    CALL, claims, trip, itinerary, version, per_itinerary, per_trip, amount, currency
                )
                await conn.execute("RESET ROLE")  # act_as switched this transaction to tripsage_api
                left = await conn.fetchrow(AFTER, trip)
                assert left is not None
                found.append((user, trip, [tuple(r) for r in rows], (left[0], left[1], left[2])))
            finally:
                await tx.rollback()
    finally:
        await conn.close()
    return found


async def test_upgrade_keeps_data_and_every_answer_and_downgrade_restores_0012(at_0012: str) -> None:
    before_rows = [tuple(r) for r in await sql(at_0012, SNAPSHOT)]
    before = await answers(at_0012)
    # spot checks, so that a broken fixture cannot pass: written with the trip's currency and version 4,
    # one row and two change records more; refused for a viewer and for a full itinerary, nothing left
    changes = before[0][3][2] - 2
    assert before[0][2] == [
        ("New", "meal", Decimal("12.50"), "USD", "planned", None, 1, uuid.UUID(ITINERARY), uuid.UUID(TRIP), 4, True)
    ]
    assert before[0][3] == (4, 3, changes + 2)
    assert before[4][2] == [] and before[4][3] == (3, 2, changes)
    assert before[9][2] == [] and before[10][2] != [] and before[11][2] == [] and before[12][2] != []
    assert before[13][2] and before[13][2][0][3] == "JPY"

    await asyncio.to_thread(migrate, at_0012)
    assert [tuple(r) for r in await sql(at_0012, SNAPSHOT)] == before_rows
    assert await answers(at_0012) == before
    grants = await sql(
        at_0012,
        "SELECT has_function_privilege(r, 'tripsage.activity_counts(uuid, uuid)', 'EXECUTE')"
        " FROM unnest(ARRAY['anon', 'authenticated', 'tripsage_api']) r",
    )
    assert [g[0] for g in grants] == [False, False, True]

    await asyncio.to_thread(command.downgrade, alembic_config(at_0012), "0012")
    assert await answers(at_0012) == before
    assert await sql(at_0012, "SELECT to_regprocedure('tripsage.activity_counts(uuid, uuid)')") == [(None,)]
    assert [tuple(r) for r in await sql(at_0012, SNAPSHOT)] == before_rows
