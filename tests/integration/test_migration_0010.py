"""Migration 0010 (command functions): upgrade from 0009 holding data, the function's guarantees, downgrade."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest
from alembic import command

from core.migrate import alembic_config, migrate
from tests.integration.test_migrations import SNAPSHOT, _dsn, database_at, sql
from tests.support import TestServers as Servers

OWNER = "00000000-0000-0000-0000-00000000000a"
SIGNATURE = "tripsage.create_trip(text, text, text, text, date, date, numeric, text, integer, text, text, text[])"
ADD_ACTIVITY = (
    "tripsage.add_activity(text, uuid, uuid, bigint, bigint, bigint, text, text, timestamptz, timestamptz, text,"
    " numeric, text, text, text, integer)"
)
CALL = (
    "SELECT t.*, current_user AS who FROM tripsage.create_trip($1, 'New', NULL, 'Oslo', DATE '2027-02-01',"
    " DATE '2027-02-03', 10.5, 'EUR', 2, 'planning', 'leisure', ARRAY['a']) AS t"
)
DATA = f"""
INSERT INTO profiles (id, email, display_name) VALUES ('{OWNER}', 'a@example.com', 'Ann');
INSERT INTO trips (id, owner_id, title, destination, start_date, end_date, version)
  VALUES ('00000000-0000-0000-0000-0000000000f1', '{OWNER}', 'T', 'D', '2027-01-01', '2027-01-03', 3);
INSERT INTO itineraries (id, trip_id, title, day) VALUES
  ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1', 'Day', '2027-01-02');
INSERT INTO activities (itinerary_id, trip_id, title, currency, price) VALUES
  ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1', 'Go', 'EUR', 12.5);
"""


@pytest.fixture
async def at_0009(servers: Servers) -> AsyncIterator[str]:
    async with database_at(servers, "0009", DATA) as url:
        yield url


async def test_upgrade_keeps_the_data_and_downgrade_removes_only_the_functions(at_0009: str) -> None:
    before = [tuple(r) for r in await sql(at_0009, SNAPSHOT)]
    await asyncio.to_thread(migrate, at_0009)
    assert [tuple(r) for r in await sql(at_0009, SNAPSHOT)] == before
    grants = await sql(
        at_0009,
        f"""
        SELECT has_function_privilege('tripsage_api', '{SIGNATURE}', 'EXECUTE'),
               has_function_privilege('authenticated', '{SIGNATURE}', 'EXECUTE'),
               has_function_privilege('anon', '{SIGNATURE}', 'EXECUTE'),
               has_function_privilege('authenticated', 'tripsage.act_as(text)', 'EXECUTE'),
               has_function_privilege('tripsage_api', '{ADD_ACTIVITY}', 'EXECUTE'),
               has_function_privilege('authenticated', '{ADD_ACTIVITY}', 'EXECUTE'),
               has_function_privilege('authenticated', 'tripsage.claim_for_write(text, uuid, bigint)', 'EXECUTE')
        """,
    )
    assert tuple(grants[0]) == (True, False, False, False, True, False, False)
    await asyncio.to_thread(command.downgrade, alembic_config(at_0009), "0009")
    assert await sql(at_0009, f"SELECT to_regprocedure('{SIGNATURE}') IS NULL") == [(True,)]
    assert await sql(at_0009, "SELECT to_regprocedure('tripsage.act_as(text)') IS NULL") == [(True,)]
    assert await sql(at_0009, f"SELECT to_regprocedure('{ADD_ACTIVITY}') IS NULL") == [(True,)]
    assert [tuple(r) for r in await sql(at_0009, SNAPSHOT)] == before


async def test_create_trip_runs_as_the_caller_under_rls_and_writes_the_feed(at_0009: str) -> None:
    await asyncio.to_thread(migrate, at_0009)
    claims = orjson.dumps({"sub": OWNER, "role": "authenticated", "aud": "authenticated"}).decode()
    conn = await asyncpg.connect(_dsn(at_0009))
    try:
        changes = await conn.fetchval("SELECT count(*) FROM tripsage.changes")
        row = await conn.fetchrow(CALL, claims)  # outside a transaction: the call is its own
        assert row is not None
        assert (str(row["owner_id"]), row["who"], row["version"], row["tags"]) == (OWNER, "tripsage_api", 1, ["a"])
        assert await conn.fetchval("SELECT current_user") == "postgres"  # the switch ended with the call
        assert await conn.fetchval("SELECT count(*) FROM tripsage.changes") == changes + 1  # same transaction
        # Claims without a user own nothing: the INSERT policy (owner = auth.uid()) refuses the row.
        with pytest.raises(asyncpg.PostgresError):
            await conn.fetchrow(CALL, orjson.dumps({"role": "authenticated"}).decode())
        # Supabase's API roles cannot call it.
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE authenticated")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetchrow(CALL, claims)
    finally:
        await conn.close()
