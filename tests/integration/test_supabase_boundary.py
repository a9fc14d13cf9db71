"""The database boundary on a Supabase-like database, with each definition of `auth.uid()`.

Migrations run as the demoted `postgres` (as on a Supabase project); the API runs on it; then every
path Supabase opens to the same tokens is probed the way PostgREST uses it: log in as
`authenticator`, switch to `anon`, or to `authenticated` with a user's own claims set. Nothing of
the service's may be readable or writable there, and the read model must still equal a fresh build.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from core.db import create_engine
from core.migrate import migrate
from projections.apply import drain
from projections.rebuild.verify import verify
from tests import supabase_like
from tests.integration.test_migrations import fingerprint
from tests.support import TestServers as Servers
from tests.support import User, free_port, make_settings, new_user
from tripsage.app import create_app

OUR_TABLES = (
    "profiles",
    "user_preferences",
    "trips",
    "trip_collaborators",
    "itineraries",
    "activities",
    "idempotency_keys",
    "api_keys",
    "memories",
    "chat_sessions",
    "chat_messages",
    "trip_views",
    "trip_view_members",
)
INTERNAL_TABLES = (
    "tripsage.changes",
    "tripsage.dead_letters",
    "tripsage.activity_tally",
    "tripsage_meta.alembic_version",
)
REFUSED = {"42501"}  # insufficient_privilege: no grant, no schema usage, no EXECUTE


@dataclass
class Deployed:
    """A Supabase-like cluster, migrated, with the API running on it."""

    cluster: supabase_like.SupabaseLike
    client: httpx.AsyncClient
    alice: User
    bob: User
    trip: dict[str, Any]
    private_trip: dict[str, Any]


@pytest.fixture(scope="module", params=["image", "auth_server"])
async def deployed(request: pytest.FixtureRequest, servers: Servers) -> AsyncIterator[Deployed]:
    """One cluster per `auth.uid()` definition: migrated twice as `postgres`, API on it, a shared trip."""
    base = Path(tempfile.mkdtemp(prefix="tripsage-supabase-"))
    cluster = await supabase_like.start(base, free_port(), request.param)
    try:
        url = cluster.url()
        await asyncio.to_thread(migrate, url)
        once = await fingerprint(url)
        await asyncio.to_thread(migrate, url)
        assert await fingerprint(url) == once  # idempotent as the demoted postgres
        app = create_app(make_settings(url, servers.redis_url))
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):
            alice, bob = new_user("alice", full_name="Alice A"), new_user("bob")
            for user in (alice, bob):  # first requests provision the profiles (finding 1: RLS refused them)
                me = await client.get("/api/users/me", headers=user.headers)
                assert me.status_code == 200, me.text
            trip = await _post(client, alice, "/api/trips", TRIP)
            shared = await client.put(
                f"/api/trips/{trip['id']}/collaborators/{bob.id}", json={"permission": "edit"}, headers=alice.headers
            )
            assert shared.status_code == 200, shared.text
            private = await _post(client, alice, "/api/trips", {**TRIP, "title": "Alice only"})
            yield Deployed(cluster, client, alice, bob, trip, private)
    finally:
        supabase_like.stop(cluster.data)


TRIP = {"title": "Lisbon", "destination": "Lisbon", "start_date": "2027-05-01", "end_date": "2027-05-05"}


async def _post(client: httpx.AsyncClient, user: User, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=user.headers)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def _project(cluster: supabase_like.SupabaseLike) -> None:
    engine = create_engine(cluster.url(), pool_size=2)
    try:
        await drain(engine)
    finally:
        await engine.dispose()


async def as_api_role(cluster: supabase_like.SupabaseLike, role: str, user: User | None, sql: str) -> str | None:
    """Run `sql` the way PostgREST would: as `authenticator`, switched to `role`, with the user's claims.

    Returns:
        None when the statement succeeded, else its SQLSTATE.
    """
    conn = await asyncpg.connect(cluster.dsn("authenticator"))
    try:
        async with conn.transaction():
            claims = {"role": role}
            if user is not None:
                claims |= {"sub": str(user.id), "email": user.email, "aud": "authenticated"}
            await conn.execute(
                "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true),"
                " set_config('request.jwt.claim.sub', $3, true), set_config('request.jwt.claim.role', $1, true)",
                role,
                orjson.dumps(claims).decode(),
                claims.get("sub", ""),
            )
            try:
                await conn.execute(sql)
            except asyncpg.PostgresError as exc:
                return str(exc.sqlstate)
            return None
    finally:
        await conn.close()


async def test_the_service_works_with_this_uid_definition(deployed: Deployed) -> None:
    """Finding 1: with the database image's auth.uid() every request used to fail (404 on provisioning)."""
    client, alice, bob, trip = deployed.client, deployed.alice, deployed.bob, deployed.trip
    itinerary = await _post(
        client, alice, f"/api/trips/{trip['id']}/itineraries", {"title": "Day 1", "day": "2027-05-01"}
    )
    await _post(
        client,
        bob,
        f"/api/trips/{trip['id']}/itineraries/{itinerary['id']}/activities",
        {"title": "Tram 28", "price": "3.10", "currency": "EUR"},
    )
    renamed = await client.patch("/api/users/me", json={"display_name": "Bobby"}, headers=bob.headers)
    assert renamed.status_code == 200, renamed.text
    await _project(deployed.cluster)
    view = await client.get(f"/api/trips/{trip['id']}", headers=bob.headers)
    assert view.status_code == 200, view.text
    doc = view.json()
    assert doc["owner"]["display_name"] == "Alice A"
    assert [c["display_name"] for c in doc["collaborators"]] == ["Bobby"]
    assert doc["stats"] == {"itinerary_count": 1, "activity_count": 1, "total_cost": {"EUR": "3.10"}}
    listed = await client.get("/api/trips", headers=bob.headers)
    assert [t["id"] for t in listed.json()["items"]] == [trip["id"]]
    assert (await client.get(f"/api/trips/{deployed.private_trip['id']}", headers=bob.headers)).status_code == 404


@pytest.mark.parametrize("table", OUR_TABLES + INTERNAL_TABLES)
@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM {t}",
        "INSERT INTO {t} DEFAULT VALUES",
        "DELETE FROM {t}",
        "TRUNCATE {t}",
    ],
)
async def test_anon_and_authenticated_touch_nothing_of_ours(deployed: Deployed, table: str, statement: str) -> None:
    """Finding 4: Supabase's default privileges had given anon (and authenticated) ALL on our tables."""
    sql = statement.format(t=table if "." in table else f"public.{table}")
    assert await as_api_role(deployed.cluster, "anon", None, sql) in REFUSED
    assert await as_api_role(deployed.cluster, "authenticated", deployed.alice, sql) in REFUSED


ALICE_WRITES = {
    "version jump": "UPDATE public.trips SET version = version + 100 WHERE id = '{trip}'",
    "version rollback": "UPDATE public.trips SET version = 1 WHERE id = '{trip}'",
    "owner change": "UPDATE public.trips SET owner_id = '{bob}' WHERE id = '{trip}'",
    "id change": "UPDATE public.trips SET id = gen_random_uuid() WHERE id = '{trip}'",
    "timestamps": "UPDATE public.trips SET created_at = '2000-01-01', updated_at = '2000-01-01' WHERE id = '{trip}'",
    "itinerary outside the trip": "INSERT INTO public.itineraries (trip_id, title, day) VALUES ('{trip}', 'x', '1999-01-01')",
    "price with 3 decimals": "UPDATE public.activities SET price = 1.234 WHERE trip_id = '{trip}'",
    "feed write": "INSERT INTO tripsage.changes (trip_id) VALUES ('{trip}')",
    "feed delete": "DELETE FROM tripsage.changes",
    "read model write": "UPDATE public.trip_views SET member_ids = member_ids || '{bob}'::uuid",
    "rename through the table": "UPDATE public.profiles SET display_name = 'x'",
    "become the service": "SET ROLE tripsage_api",
}


@pytest.mark.parametrize("case", sorted(ALICE_WRITES))
async def test_a_user_cannot_bypass_the_commands(deployed: Deployed, case: str) -> None:
    """Finding 2: through the Data API a user could set her trip's version (and so freeze its document)."""
    sql = ALICE_WRITES[case].format(trip=deployed.trip["id"], bob=deployed.bob.id)
    assert await as_api_role(deployed.cluster, "authenticated", deployed.alice, sql) in REFUSED


async def test_no_function_of_ours_is_callable_from_the_api_roles(deployed: Deployed) -> None:
    """Finding 3: the read functions took the claims as a parameter and were executable by PUBLIC."""
    conn = await asyncpg.connect(deployed.cluster.dsn())
    try:
        rows = await conn.fetch(
            """
            SELECT r.rolname, p.oid::regprocedure::text AS fn FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace
            CROSS JOIN (VALUES ('anon'), ('authenticated')) AS r (rolname)
            WHERE n.nspname IN ('tripsage', 'tripsage_meta', 'tripsage_rebuild', 'tripsage_prev')
              AND has_schema_privilege(r.rolname, n.oid, 'USAGE')
              AND has_function_privilege(r.rolname, p.oid, 'EXECUTE')
            """
        )
        members = await conn.fetch(
            "SELECT r.rolname FROM pg_roles r WHERE NOT r.rolsuper AND pg_has_role(r.rolname, 'tripsage_api', 'MEMBER')"
            " AND r.rolname <> 'tripsage_api'"
        )
    finally:
        await conn.close()
    assert [tuple(row) for row in rows] == []
    assert {row["rolname"] for row in members} == {"postgres"}  # never authenticator or the API roles
    claims = orjson.dumps({"sub": str(deployed.alice.id), "role": "authenticated"}).decode()
    for sql in (
        f"SELECT * FROM tripsage.trip_view_get('{claims}', '{deployed.private_trip['id']}', '{{}}')",
        f"SELECT * FROM tripsage.trip_view_page('{claims}', 100, NULL, NULL, NULL, 'infinity', gen_random_uuid())",
        f"SELECT tripsage.can_view_trip('{deployed.private_trip['id']}')",
    ):
        assert await as_api_role(deployed.cluster, "authenticated", deployed.bob, sql) in REFUSED


async def test_the_read_model_still_equals_a_fresh_build(deployed: Deployed) -> None:
    """After every probe above: nothing diverged (what `tripsage projections verify` reports)."""
    engine = create_engine(deployed.cluster.url(), pool_size=2)
    try:
        report = await verify(engine, drain=True)
    finally:
        await engine.dispose()
    assert report.checked >= 2 and report.differences == []


async def test_the_guard_holds_even_for_the_owner_of_the_tables(deployed: Deployed) -> None:
    """Defence in depth: as `postgres` itself (BYPASSRLS), a trip's version still moves by one at most."""
    conn = await asyncpg.connect(deployed.cluster.dsn())
    try:
        for sql in (
            "UPDATE trips SET version = version + 100 WHERE id = $1",
            "UPDATE trips SET owner_id = gen_random_uuid() WHERE id = $1",
            "UPDATE trips SET created_at = now() - interval '1 day' WHERE id = $1",
        ):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(sql, uuid.UUID(deployed.trip["id"]))
        assert await conn.fetchval("SELECT to_regprocedure('auth.jwt()')") is None  # left to the Auth server
        assert await conn.fetchval("SELECT to_regclass('public.alembic_version')") is None
    finally:
        await conn.close()
