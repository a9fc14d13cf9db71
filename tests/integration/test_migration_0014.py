"""Migration 0014 (the list function leaves out known documents): upgrade from 0013 holding data; downgrade."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from core.migrate import alembic_config, migrate
from projections.trip_view import refresh_trips
from tests.integration.test_migration_0012 import DATA, EDITOR, OWNER, STRANGER, TRIP, VIEWER
from tests.integration.test_migrations import SNAPSHOT, _dsn, database_at, sql
from tests.support import TestServers as Servers

OTHER_TRIP = "00000000-0000-0000-0000-0000000000f3"
MORE_DATA = f"""
INSERT INTO trips (id, owner_id, title, destination, start_date, end_date)
  VALUES ('{OTHER_TRIP}', '{OWNER}', 'Second', 'Porto', '2027-03-01', '2027-03-02');
"""
NO_CURSOR = "'infinity'::timestamptz, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid"
OLD_PAGE = f"SELECT updated_at, trip_id, doc FROM tripsage.trip_view_page($1, 100, NULL, NULL, NULL, {NO_CURSOR})"
NEW_PAGE = (
    f"SELECT updated_at, trip_id, etag, doc FROM tripsage.trip_view_page($1, 100, NULL, NULL, NULL, {NO_CURSOR}, $2)"
)
CALLERS = [OWNER, EDITOR, VIEWER, STRANGER, None]
SIGNATURE = "tripsage.trip_view_page(text, integer, text, text, text, timestamptz, uuid, text[])"


@pytest.fixture
async def at_0013(servers: Servers) -> AsyncIterator[str]:
    async with database_at(servers, "0013", DATA + MORE_DATA) as url:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                assert await refresh_trips(conn, [uuid.UUID(TRIP), uuid.UUID(OTHER_TRIP)]) == 2
        finally:
            await engine.dispose()
        yield url


def claims(user: str | None) -> str:
    return orjson.dumps({"sub": user, "role": "authenticated"} if user else {"role": "anon"}).decode()


async def pages(url: str, statement: str, *args: object) -> list[list[tuple[object, ...]]]:
    """Each caller's page through `statement` (its own implicit transaction, as the API sends it)."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        return [[tuple(r) for r in await conn.fetch(statement, claims(user), *args)] for user in CALLERS]
    finally:
        await conn.close()


async def test_upgrade_keeps_data_and_answers_and_adds_the_known_documents_call(at_0013: str) -> None:
    before_rows = [tuple(r) for r in await sql(at_0013, SNAPSHOT)]
    before = await pages(at_0013, OLD_PAGE)
    # the owner sees both trips, the editor and the viewer the shared one, the stranger and anon none
    assert [len(p) for p in before] == [2, 1, 1, 0, 0]
    assert await sql(at_0013, f"SELECT to_regprocedure('{SIGNATURE}')") == [(None,)]

    await asyncio.to_thread(migrate, at_0013)
    assert [tuple(r) for r in await sql(at_0013, SNAPSHOT)] == before_rows
    assert await pages(at_0013, OLD_PAGE) == before  # 0007's function serves on, unchanged
    etags = {r[0]: r[1] for r in await sql(at_0013, "SELECT trip_id, etag FROM trip_views")}
    nothing_known = await pages(at_0013, NEW_PAGE, [])
    assert [[(r[0], r[1], r[3]) for r in p] for p in nothing_known] == before
    assert [[r[2] for r in p] for p in nothing_known][0] == [etags[r[1]] for r in before[0]]

    trip, other = uuid.UUID(TRIP), uuid.UUID(OTHER_TRIP)
    named = [f"{trip}{etags[trip]}", f'{other}"0-0000000000000000"', f"{other}{etags[trip]}"]
    # only the (trip, current ETag) pair is left out: a stale ETag or another trip's ETag is not
    known = await pages(at_0013, NEW_PAGE, named)
    assert [[(r[1], r[3] is None) for r in p] for p in known] == [[(r[1], r[1] == trip) for r in p] for p in before]
    assert [[r[2] for r in p] for p in known] == [[r[2] for r in p] for p in nothing_known]
    grants = await sql(
        at_0013,
        f"SELECT has_function_privilege(r, '{SIGNATURE}', 'EXECUTE')"
        " FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'tripsage_api']) r",
    )
    assert [g[0] for g in grants] == [False, False, False, True]
    # planned for each call's parameters (a generic plan read all of a user's member rows: see 0014)
    assert await sql(at_0013, f"SELECT proconfig FROM pg_proc WHERE oid = '{SIGNATURE}'::regprocedure") == [
        (["plan_cache_mode=force_custom_plan"],)
    ]

    await asyncio.to_thread(command.downgrade, alembic_config(at_0013), "0013")
    assert await sql(at_0013, f"SELECT to_regprocedure('{SIGNATURE}')") == [(None,)]
    assert await pages(at_0013, OLD_PAGE) == before
    assert [tuple(r) for r in await sql(at_0013, SNAPSHOT)] == before_rows
