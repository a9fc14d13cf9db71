"""Migration 0012 (permission helpers in PL/pgSQL): upgrade from 0011 holding data; same answers for everyone; downgrade."""

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

OWNER, EDITOR, VIEWER, ADMIN, STRANGER = (f"00000000-0000-0000-0000-00000000000{c}" for c in "abcde")
TRIP, MISSING = "00000000-0000-0000-0000-0000000000f1", "00000000-0000-0000-0000-0000000000f9"
ITINERARY = "00000000-0000-0000-0000-0000000000e1"
DATA = f"""
INSERT INTO profiles (id, email, display_name) VALUES
  ('{OWNER}', 'a@example.com', 'Ann'), ('{EDITOR}', 'b@example.com', 'Bo'), ('{VIEWER}', 'c@example.com', 'Cy'),
  ('{ADMIN}', 'd@example.com', 'Di'), ('{STRANGER}', 'e@example.com', 'Ed');
INSERT INTO trips (id, owner_id, title, destination, start_date, end_date, version)
  VALUES ('{TRIP}', '{OWNER}', 'T', 'D', '2027-01-01', '2027-01-03', 3);
INSERT INTO trip_collaborators (trip_id, user_id, permission)
  VALUES ('{TRIP}', '{EDITOR}', 'edit'), ('{TRIP}', '{VIEWER}', 'view'), ('{TRIP}', '{ADMIN}', 'admin');
INSERT INTO itineraries (id, trip_id, title, day) VALUES ('{ITINERARY}', '{TRIP}', 'Day', '2027-01-02');
INSERT INTO activities (itinerary_id, trip_id, title, currency, price) VALUES
  ('{ITINERARY}', '{TRIP}', 'Go', 'EUR', 12.5), ('{ITINERARY}', '{TRIP}', 'Eat', 'EUR', 3);
"""
HELPERS = (
    "tripsage.trip_permission(uuid)",
    "tripsage.is_collaborator(uuid)",
    "tripsage.can_view_trip(uuid)",
    "tripsage.can_edit_trip(uuid)",
    "tripsage.can_manage_collaborators(uuid)",
    "tripsage.trip_owned_by(uuid, uuid)",
    "tripsage.count_itineraries(uuid)",
    "tripsage.count_activities(uuid, uuid)",
)
ANSWERS = """
SELECT tripsage.trip_permission($1), tripsage.is_collaborator($1), tripsage.can_view_trip($1),
       tripsage.can_edit_trip($1), tripsage.can_manage_collaborators($1),
       tripsage.trip_owned_by($1, $2), tripsage.trip_owned_by($1, $3),
       tripsage.count_itineraries($1), tripsage.count_activities($1, NULL), tripsage.count_activities($1, $4)
"""
DEFINITIONS = f"""
SELECT p.oid::regprocedure::text, l.lanname, p.prosecdef, p.provolatile, p.proconfig, p.proowner::regrole::text,
       p.proacl::text
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid = ANY (ARRAY[{", ".join(f"'{h}'::regprocedure" for h in HELPERS)}])
ORDER BY 1
"""


@pytest.fixture
async def at_0011(servers: Servers) -> AsyncIterator[str]:
    async with database_at(servers, "0011", DATA) as url:
        yield url


async def answers(url: str) -> list[tuple[object, ...]]:
    """Every helper's answer for every kind of caller (and no caller), on the trip and on a missing one."""
    conn = await asyncpg.connect(_dsn(url))
    found = []
    try:
        for user in (OWNER, EDITOR, VIEWER, ADMIN, STRANGER, None):
            claims = orjson.dumps({"sub": user, "role": "authenticated"} if user else {"role": "anon"}).decode()
            for trip in (TRIP, MISSING):
                async with conn.transaction():
                    await conn.execute(
                        "SELECT set_config('role', 'tripsage_api', true), set_config('request.jwt.claims', $1, true),"
                        " set_config('request.jwt.claim.sub', $2, true)",
                        claims,
                        user or "",
                    )
                    row = await conn.fetchrow(ANSWERS, trip, OWNER, EDITOR, ITINERARY)
                    assert row is not None
                    found.append((user, trip, *row))
    finally:
        await conn.close()
    return found


async def test_upgrade_keeps_data_owner_grants_and_every_answer_and_downgrade_restores_sql(at_0011: str) -> None:
    before_rows = [tuple(r) for r in await sql(at_0011, SNAPSHOT)]
    before_answers = await answers(at_0011)
    before_definitions = [tuple(r) for r in await sql(at_0011, DEFINITIONS)]
    assert {row[1] for row in before_definitions} == {"sql"}
    # the answers are the ones the policies rely on (spot checks, so a broken fixture cannot pass)
    assert before_answers[0][2:] == ("owner", False, True, True, True, True, False, 1, 2, 2)
    assert before_answers[8][:1] == (STRANGER,)
    assert before_answers[8][2:] == (None, False, False, False, False, False, False, None, None, None)

    await asyncio.to_thread(migrate, at_0011)
    assert [tuple(r) for r in await sql(at_0011, SNAPSHOT)] == before_rows
    assert await answers(at_0011) == before_answers
    after_definitions = [tuple(r) for r in await sql(at_0011, DEFINITIONS)]
    assert {row[1] for row in after_definitions} == {"plpgsql"}
    # same signature, SECURITY DEFINER, volatility, search_path, owner and privileges
    assert [row[:1] + row[2:] for row in after_definitions] == [row[:1] + row[2:] for row in before_definitions]

    await asyncio.to_thread(command.downgrade, alembic_config(at_0011), "0011")
    assert [tuple(r) for r in await sql(at_0011, DEFINITIONS)] == before_definitions
    assert await answers(at_0011) == before_answers
    assert [tuple(r) for r in await sql(at_0011, SNAPSHOT)] == before_rows
