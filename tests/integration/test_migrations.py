"""Migrations: idempotent, safe to run concurrently, and polite to a database that is a Supabase project."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from core.migrate import ROOT, alembic_config, migrate
from core.scratch import create_database, drop_database
from tests.support import TestServers as Servers

# Everything a migration creates that a second run could duplicate or alter.
FINGERPRINT = """
SELECT 'table ' || table_schema || '.' || table_name || '.' || column_name || ' ' || data_type
  FROM information_schema.columns WHERE table_schema IN ('public', 'tripsage', 'auth')
UNION ALL
SELECT 'policy ' || tablename || '.' || policyname || ' ' || cmd || ' ' || coalesce(qual, '') || ' '
       || coalesce(with_check, '') FROM pg_policies WHERE schemaname = 'public'
UNION ALL
SELECT 'function ' || n.nspname || '.' || p.proname || ' ' || md5(p.prosrc) FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('tripsage', 'auth')
UNION ALL
SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname IN ('public', 'tripsage')
UNION ALL
SELECT 'grant ' || grantee || ' ' || table_name || ' ' || privilege_type FROM information_schema.role_table_grants
  WHERE table_schema IN ('public', 'tripsage')
UNION ALL
SELECT 'version ' || version_num FROM tripsage_meta.alembic_version
"""


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def fingerprint(url: str) -> list[str]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        return sorted(row[0] for row in await conn.fetch(FINGERPRINT))
    finally:
        await conn.close()


@asynccontextmanager
async def database_at(servers: Servers, revision: str, data: str) -> AsyncIterator[str]:
    """A scratch database migrated to `revision` and holding `data` (SQL run as the login role); dropped after."""
    url = await create_database(servers.admin_url)
    await asyncio.to_thread(migrate, url, revision)
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(data)
    finally:
        await conn.close()
    try:
        yield url
    finally:
        await drop_database(servers.admin_url, url)


async def sql(url: str, statement: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        return list(await conn.fetch(statement))
    finally:
        await conn.close()


async def script(url: str, statements: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(statements)
    finally:
        await conn.close()


@pytest.fixture
async def empty_database(servers: Servers) -> AsyncIterator[str]:
    url = await create_database(servers.admin_url)
    yield url
    await drop_database(servers.admin_url, url)


async def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    before = await fingerprint(database_url)
    assert any(line.startswith("policy trips.trips_select") for line in before)
    await asyncio.to_thread(migrate, database_url)
    await asyncio.to_thread(migrate, database_url)
    assert await fingerprint(database_url) == before


async def test_concurrent_migrations_serialise(empty_database: str) -> None:
    """Several processes starting at once (alembic's context is per process, so: processes)."""
    code = "import sys; from core.migrate import migrate; migrate(sys.argv[1])"
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", code, empty_database, cwd=ROOT) for _ in range(3)
    ]
    assert [await proc.wait() for proc in procs] == [0, 0, 0]
    versions = await sql(empty_database, "SELECT version_num FROM tripsage_meta.alembic_version")
    assert len(versions) == 1


async def _skip_if_auth_is_provided(url: str) -> None:
    """On a Supabase-like server new databases already have Supabase's `auth` schema (see tests/supabase_like.py)."""
    if (await sql(url, "SELECT to_regnamespace('auth') IS NOT NULL"))[0][0]:
        pytest.skip("the server provides the auth schema (Supabase-like): covered by test_supabase_boundary")


async def test_supabase_objects_that_exist_are_left_alone(empty_database: str, database_url: str) -> None:
    await _skip_if_auth_is_provided(empty_database)
    supabase_uid = (
        "SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),"
        " (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid /* supabase's */"
    )
    await script(
        empty_database,
        f"""
        CREATE SCHEMA auth;
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$ {supabase_uid} $$;
        """,
    )
    await asyncio.to_thread(migrate, empty_database)
    rows = await sql(
        empty_database,
        "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'auth' ORDER BY 1",
    )
    bodies = {row["proname"]: row["prosrc"] for row in rows}
    assert set(bodies) == {"jwt", "role", "uid"}
    assert bodies["uid"].strip() == supabase_uid  # kept, not replaced by the shim
    # the missing ones were created, the same as on a plain database
    reference = await sql(
        database_url,
        "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'auth' AND p.proname IN ('jwt', 'role') ORDER BY 1",
    )
    assert {row["proname"]: row["prosrc"] for row in reference} == {k: bodies[k] for k in ("jwt", "role")}
    roles = await sql(
        empty_database,
        "SELECT rolname, rolbypassrls, rolcanlogin FROM pg_roles"
        " WHERE rolname IN ('anon', 'authenticated', 'service_role') ORDER BY 1",
    )
    assert [tuple(r) for r in roles] == [
        ("anon", False, False),
        ("authenticated", False, False),
        ("service_role", True, False),
    ]


async def test_a_differing_existing_uid_is_the_one_policies_use(empty_database: str) -> None:
    await _skip_if_auth_is_provided(empty_database)
    fixed = "00000000-0000-0000-0000-00000000abcd"
    await script(
        empty_database,
        f"CREATE SCHEMA auth; CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$"
        f" SELECT '{fixed}'::uuid $$;",
    )
    await asyncio.to_thread(migrate, empty_database)
    conn = await asyncpg.connect(_dsn(empty_database))
    try:
        source = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'uid'")
        assert fixed in source
        await conn.execute(
            f"INSERT INTO profiles (id, display_name) VALUES ('{fixed}', 'me'), (gen_random_uuid(), 'x')"
        )
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE tripsage_api")
            assert await conn.fetchval("SELECT count(*) FROM profiles") == 1
    finally:
        await conn.close()


async def test_downgrade_to_base_and_upgrade_again(empty_database: str) -> None:
    await asyncio.to_thread(migrate, empty_database)
    first = await fingerprint(empty_database)
    await asyncio.to_thread(command.downgrade, alembic_config(empty_database), "base")
    tables = await sql(empty_database, "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'tripsage')")
    assert tables[0][0] == 0  # the bookkeeping lives in tripsage_meta
    assert await sql(empty_database, "SELECT version_num FROM tripsage_meta.alembic_version") == []
    await asyncio.to_thread(migrate, empty_database)
    assert await fingerprint(empty_database) == first
    digest = hashlib.sha256("\n".join(first).encode()).hexdigest()
    assert len(digest) == 64


SNAPSHOT = """
SELECT t, to_jsonb(x) FROM (
  SELECT 'profiles' AS t, to_jsonb(p) AS x FROM profiles p UNION ALL
  SELECT 'trips', to_jsonb(r) FROM trips r UNION ALL
  SELECT 'trip_collaborators', to_jsonb(c) FROM trip_collaborators c UNION ALL
  SELECT 'itineraries', to_jsonb(i) FROM itineraries i UNION ALL
  SELECT 'activities', to_jsonb(a) FROM activities a UNION ALL
  SELECT 'trip_views', to_jsonb(v) - 'position' FROM trip_views v UNION ALL  -- 0009 adds the column (NULL)
  SELECT 'changes', to_jsonb(f) FROM tripsage.changes f
) s (t, x) ORDER BY 1, 2::text
"""


async def test_upgrade_from_0006_keeps_every_row_and_moves_the_bookkeeping(empty_database: str) -> None:
    """The previous landed schema, holding data, upgraded to head: nothing lost or changed."""
    await asyncio.to_thread(migrate, empty_database, "0006")
    # as the landed code left it: the version table in public
    await script(
        empty_database,
        "ALTER TABLE tripsage_meta.alembic_version SET SCHEMA public; DROP SCHEMA tripsage_meta;"
        " GRANT SELECT ON public.alembic_version TO anon, authenticated;",
    )
    await script(
        empty_database,
        """
        INSERT INTO profiles (id, email, display_name) VALUES
          ('00000000-0000-0000-0000-00000000000a', 'A@example.com', 'Ann'),
          ('00000000-0000-0000-0000-00000000000b', 'b@example.com', 'Bo');
        INSERT INTO trips (id, owner_id, title, destination, start_date, end_date, version)
          VALUES ('00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-00000000000a', 'T', 'D',
                  '2027-01-01', '2027-01-03', 7);
        INSERT INTO trip_collaborators (trip_id, user_id, permission)
          VALUES ('00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-00000000000b', 'edit');
        INSERT INTO itineraries (id, trip_id, title, day) VALUES
          ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1', 'Day', '2027-01-02');
        INSERT INTO activities (itinerary_id, trip_id, title, currency, price) VALUES
          ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1', 'Go', 'EUR', 12.5);
        INSERT INTO trip_views (trip_id, owner_id, member_ids, status, search_text, updated_at, version, etag, doc)
          VALUES ('00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-00000000000a',
                  '{00000000-0000-0000-0000-00000000000a,00000000-0000-0000-0000-00000000000b}', 'planning', 't d',
                  now(), 7, '"7-x"', '{"id": 1}');
        """,
    )
    before = [tuple(r) for r in await sql(empty_database, SNAPSHOT)]
    assert len(before) >= 7
    await asyncio.to_thread(migrate, empty_database)
    assert [tuple(r) for r in await sql(empty_database, SNAPSHOT)] == before
    checks = await sql(
        empty_database,
        """
        SELECT to_regclass('public.alembic_version') IS NULL,
               (SELECT version_num FROM tripsage_meta.alembic_version),
               to_regprocedure('tripsage.trip_view_get(text, uuid, uuid, text[])') IS NULL,
               has_table_privilege('authenticated', 'public.trips', 'SELECT'),
               has_table_privilege('tripsage_api', 'public.trips', 'SELECT'),
               has_table_privilege('anon', 'tripsage_meta.alembic_version', 'SELECT')
        """,
    )
    head = ScriptDirectory.from_config(alembic_config(empty_database)).get_current_head()
    assert tuple(checks[0]) == (True, head, True, False, True, False)
