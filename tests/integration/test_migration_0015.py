"""Migration 0015 (the activity caps read kept counts): upgrade from 0014 holding data; the tally follows every write."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic import command

from core.migrate import alembic_config, migrate
from tests.integration import test_migration_0012 as m12
from tests.integration import test_migration_0013 as m13
from tests.integration.test_migrations import SNAPSHOT, _dsn, database_at, sql
from tests.support import TestServers as Servers

TALLY = "SELECT itinerary_id, trip_id, activities FROM tripsage.activity_tally WHERE activities > 0 ORDER BY 1, 2"
COUNTED = "SELECT itinerary_id, trip_id, count(*)::int FROM activities GROUP BY 1, 2 ORDER BY 1, 2"
THIRD = "00000000-0000-0000-0000-0000000000e3"


@pytest.fixture
async def at_0014(servers: Servers) -> AsyncIterator[str]:
    async with database_at(servers, "0014", m12.DATA + m13.MORE_DATA) as url:
        yield url


async def test_upgrade_counts_what_is_stored_keeps_every_answer_and_downgrade_restores_0014(at_0014: str) -> None:
    before_rows = [tuple(r) for r in await sql(at_0014, SNAPSHOT)]
    helpers, calls = await m12.answers(at_0014), await m13.answers(at_0014)
    definitions = [tuple(r) for r in await sql(at_0014, m12.DEFINITIONS)]  # language, owner, grants, settings
    # spot checks: the owner counts the trip's 2 activities; the stranger gets NULLs; the full cases refuse
    owner_row = next(row for row in helpers if row[0] == m12.OWNER and row[1] == m12.TRIP)
    assert owner_row[-2:] == (2, 2)
    assert next(row for row in helpers if row[0] == m12.STRANGER)[-2:] == (None, None)
    assert calls[9][2] == [] and calls[10][2] != [] and calls[11][2] == [] and calls[12][2] != []

    await asyncio.to_thread(migrate, at_0014)
    assert [tuple(r) for r in await sql(at_0014, SNAPSHOT)] == before_rows
    assert [tuple(r) for r in await sql(at_0014, TALLY)] == [tuple(r) for r in await sql(at_0014, COUNTED)] != []
    assert await m12.answers(at_0014) == helpers
    assert await m13.answers(at_0014) == calls
    assert [tuple(r) for r in await sql(at_0014, m12.DEFINITIONS)] == definitions
    grants = await sql(
        at_0014,
        "SELECT has_table_privilege(r, 'tripsage.activity_tally', 'SELECT, INSERT, UPDATE, DELETE')"
        " FROM unnest(ARRAY['anon', 'authenticated', 'tripsage_api']) r",
    )
    assert [g[0] for g in grants] == [False, False, False]

    await asyncio.to_thread(command.downgrade, alembic_config(at_0014), "0014")
    assert await m12.answers(at_0014) == helpers
    assert await m13.answers(at_0014) == calls
    assert await sql(at_0014, "SELECT to_regclass('tripsage.activity_tally')") == [(None,)]
    assert [tuple(r) for r in await sql(at_0014, m12.DEFINITIONS)] == definitions
    assert [tuple(r) for r in await sql(at_0014, SNAPSHOT)] == before_rows


async def test_the_tally_follows_inserts_deletes_moves_and_cascades(at_0014: str) -> None:
    await asyncio.to_thread(migrate, at_0014)
    conn = await asyncpg.connect(_dsn(at_0014))

    async def agrees() -> list[tuple[object, ...]]:
        kept = [tuple(r) for r in await conn.fetch(TALLY)]
        assert kept == [tuple(r) for r in await conn.fetch(COUNTED)]
        return kept

    try:
        await conn.execute(
            f"INSERT INTO itineraries (id, trip_id, title) VALUES ('{THIRD}', '{m12.TRIP}', 'Third');"
            f"INSERT INTO activities (itinerary_id, trip_id, title, currency)"
            f" SELECT '{THIRD}', '{m12.TRIP}', 'a' || g, 'EUR' FROM generate_series(1, 5) g"
        )
        assert len(await agrees()) == 2
        await conn.execute(f"DELETE FROM activities WHERE itinerary_id = '{THIRD}' AND title IN ('a1', 'a2')")
        await agrees()
        # moved to another itinerary, then to another trip's itinerary (only SQL does that, but it counts)
        await conn.execute(f"UPDATE activities SET itinerary_id = '{m12.ITINERARY}' WHERE title = 'a3'")
        await conn.execute(
            f"UPDATE activities SET itinerary_id = '{m13.OTHER_ITINERARY}', trip_id = '{m13.OTHER_TRIP}' WHERE title = 'a4'"
        )
        await conn.execute("UPDATE activities SET title = 'renamed', itinerary_id = itinerary_id WHERE title = 'a5'")
        assert len(await agrees()) == 3
        # an itinerary deleted takes its activities and its tally rows along; so does a trip
        await conn.execute(f"DELETE FROM itineraries WHERE id = '{THIRD}'")
        assert await conn.fetchval(f"SELECT count(*) FROM tripsage.activity_tally WHERE itinerary_id = '{THIRD}'") == 0
        await agrees()
        await conn.execute(f"DELETE FROM trips WHERE id = '{m13.OTHER_TRIP}'")
        assert await conn.fetchval("SELECT count(*) FROM tripsage.activity_tally") == 1
        assert await agrees() == [(uuid.UUID(m12.ITINERARY), uuid.UUID(m12.TRIP), 3)]  # Go, Eat and a3
    finally:
        await conn.close()
