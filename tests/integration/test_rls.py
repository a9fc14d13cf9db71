"""Row Level Security in depth: what a request transaction can see and change, table by table.

The data is seeded by the login role (a superuser, outside RLS) in a database of its own, so no
projection or other test touches it. Then each check runs raw SQL inside a real request
transaction (`Database.request_session`: role `tripsage_api` and the caller's JWT claims), the way
a handler that forgot its filter would.

Cast: A owns trips T1 (shared with B `view`, C `edit`) and T2 (shared with E `view`). D is a
stranger with a profile and nothing else.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.auth import Principal, TokenVerifier, mint_token
from core.db import Database, set_request_claims
from core.migrate import migrate
from core.scratch import create_database, drop_database
from queries.plumbing import call_as
from queries.trips import TRIP_PAGE
from tests.support import TEST_JWT_SECRET, count_driver_statements
from tests.support import TestServers as Servers

# The key columns of every table a user's request can reach, and how to name a row by them.
KEYS: dict[str, tuple[str, ...]] = {
    "profiles": ("id",),
    "user_preferences": ("user_id",),
    "trips": ("id",),
    "trip_collaborators": ("trip_id", "user_id"),
    "itineraries": ("id",),
    "activities": ("id",),
    "idempotency_keys": ("user_id", "key"),
    "api_keys": ("id",),
    "memories": ("id",),
    "chat_sessions": ("id",),
    "chat_messages": ("id",),
    "trip_views": ("trip_id",),
    "trip_view_members": ("user_id", "trip_id"),
}
INSUFFICIENT_PRIVILEGE = "42501"
CHECK_VIOLATION = "23514"


@dataclass
class World:
    """The seeded ids and a request runner per person."""

    db: Database
    ids: dict[str, uuid.UUID]
    people: dict[str, Principal]
    service: Principal

    def __getattr__(self, name: str) -> uuid.UUID:
        try:
            return self.ids[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def key(self, *names: str | uuid.UUID) -> tuple[Any, ...]:
        return tuple(self.ids[n] if isinstance(n, str) else n for n in names)

    async def select_all(self, who: Principal, table: str) -> set[tuple[Any, ...]]:
        async with self.db.request_session(who) as session:
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).mappings().all()  # noqa: S608  # fixed names
        return {tuple(row[col] for col in KEYS[table]) for row in rows}

    async def attempt(self, who: Principal, sql: str, **params: Any) -> int | str:
        """Run a write as `who` (rolled back): the affected row count, or the SQLSTATE it raised."""
        try:
            async with self.db.request_session(who) as session:
                result = await session.execute(text(sql), params)
                return int(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult for DML
        except DBAPIError as exc:
            return str(getattr(exc.orig, "sqlstate", "?"))


SEED = [
    "INSERT INTO profiles (id, email, display_name) SELECT u, 'p@example.com', 'person' FROM unnest(CAST(:users AS uuid[])) u",
    "INSERT INTO user_preferences (user_id) SELECT unnest(CAST(:users AS uuid[]))",
    """INSERT INTO trips (id, owner_id, title, destination, start_date, end_date)
       VALUES (:T1, :A, 'shared', 'Lisbon', '2030-05-01', '2030-05-09'),
              (:T2, :A, 'private', 'Oslo', '2030-06-01', '2030-06-03')""",
    "INSERT INTO trip_collaborators (trip_id, user_id, permission) VALUES (:T1, :B, 'view'), (:T1, :C, 'edit'),"
    " (:T2, :E, 'view')",
    "INSERT INTO itineraries (id, trip_id, title) VALUES (:I1, :T1, 'day one'), (:I2, :T2, 'day one')",
    "INSERT INTO activities (id, itinerary_id, trip_id, title, currency, price) VALUES"
    " (:X1, :I1, :T1, 'museum', 'EUR', 12), (:X2, :I2, :T2, 'fjord', 'NOK', 900)",
    "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES (:A, 'k-a', 'h'), (:B, 'k-b', 'h')",
    "INSERT INTO api_keys (id, user_id, service, ciphertext, last4) VALUES (:KA, :A, 'openai', 'x', 'abcd'),"
    " (:KB, :B, 'openai', 'y', 'wxyz')",
    "INSERT INTO memories (id, user_id, content) VALUES (:MA, :A, 'likes trains'), (:MB, :B, 'vegetarian')",
    "INSERT INTO chat_sessions (id, user_id, trip_id) VALUES (:SA, :A, :T1), (:SB, :B, :T1)",
    "INSERT INTO chat_messages (id, session_id, user_id, role, content) VALUES (:CA, :SA, :A, 'user', 'hi'),"
    " (:CB, :SB, :B, 'user', 'hello')",
    """INSERT INTO trip_views (trip_id, owner_id, member_ids, status, search_text, updated_at, version, etag, doc)
       VALUES (:T1, :A, ARRAY[:A, :B, :C]::uuid[], 'planning', 'shared', now(), 1, 'e1', '{}'),
              (:T2, :A, ARRAY[:A, :E]::uuid[], 'planning', 'private', now(), 1, 'e2', '{}')""",
    """INSERT INTO trip_view_members (user_id, trip_id, role, status, updated_at)
       VALUES (:A, :T1, 'owner', 'planning', now()), (:B, :T1, 'shared', 'planning', now()),
              (:C, :T1, 'shared', 'planning', now()), (:A, :T2, 'owner', 'planning', now()),
              (:E, :T2, 'shared', 'planning', now())""",
]
NAMES = ["A", "B", "C", "D", "E", "T1", "T2", "I1", "I2", "X1", "X2", "KA", "KB", "MA", "MB", "SA", "SB", "CA", "CB"]


@pytest.fixture(scope="module")
async def world(servers: Servers) -> AsyncIterator[World]:
    url = await create_database(servers.admin_url)
    await asyncio.to_thread(migrate, url)
    db = Database.open(url)
    ids = {name: uuid.uuid4() for name in NAMES}
    params: dict[str, Any] = {**ids, "users": [ids[p] for p in "ABCDE"]}
    async with db.engine.begin() as conn:
        for statement in SEED:
            await conn.execute(text(statement), params)
    verifier = TokenVerifier(secret=TEST_JWT_SECRET, audience="authenticated")
    people = {
        p: await verifier.verify(mint_token(secret=TEST_JWT_SECRET, email=f"{p}@example.com", sub=ids[p]))
        for p in "ABCDE"
    }
    service = await verifier.verify(mint_token(secret=TEST_JWT_SECRET, email="", service_role=True))
    try:
        yield World(db, ids, people, service)
    finally:
        await db.dispose()
        await drop_database(servers.admin_url, url)


def expected_for_b(w: World) -> dict[str, set[tuple[Any, ...]]]:
    """What B (a `view` collaborator of T1) may see, table by table."""
    k = w.key
    return {
        "profiles": {k("A"), k("B"), k("C")},  # A and C share T1 with B; E and D share nothing
        "user_preferences": {k("A"), k("B"), k("C")},
        "trips": {k("T1")},
        "trip_collaborators": {k("T1", "B"), k("T1", "C")},
        "itineraries": {k("I1")},
        "activities": {k("X1")},
        "idempotency_keys": {(w.B, "k-b")},
        "api_keys": {k("KB")},
        "memories": {k("MB")},
        "chat_sessions": {k("SB")},
        "chat_messages": {k("CB")},
        "trip_views": {k("T1")},
        "trip_view_members": {k("B", "T1")},
    }


async def test_every_user_table_has_rls_and_is_covered_here(world: World) -> None:
    async with world.db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'"
            )
        )
        tables = {str(name): bool(rls) for name, rls in rows}
    assert all(tables.values()), {name for name, rls in tables.items() if not rls}
    assert set(tables) == set(KEYS), "a public table was added: add its expectations to this module"


@pytest.mark.parametrize("table", sorted(KEYS))
async def test_collaborator_sees_only_what_is_shared_with_them(world: World, table: str) -> None:
    assert await world.select_all(world.people["B"], table) == expected_for_b(world)[table]


@pytest.mark.parametrize("table", sorted(KEYS))
async def test_stranger_sees_only_their_own_profile(world: World, table: str) -> None:
    mine = {"profiles": {world.key("D")}, "user_preferences": {world.key("D")}}
    assert await world.select_all(world.people["D"], table) == mine.get(table, set())


async def test_owner_sees_both_trips_and_everyone_on_them(world: World) -> None:
    a = world.people["A"]
    assert await world.select_all(a, "trips") == {world.key("T1"), world.key("T2")}
    assert await world.select_all(a, "profiles") == {world.key(p) for p in "ABCE"}
    assert await world.select_all(a, "activities") == {world.key("X1"), world.key("X2")}
    assert await world.select_all(a, "trip_view_members") == {world.key("A", "T1"), world.key("A", "T2")}


@pytest.mark.parametrize("table", sorted(KEYS))
async def test_service_role_sees_all(world: World, table: str) -> None:
    everything: dict[str, int] = {
        "profiles": 5,
        "user_preferences": 5,
        "trips": 2,
        "trip_collaborators": 3,
        "trip_view_members": 5,
    }
    assert len(await world.select_all(world.service, table)) == everything.get(table, 2)


# --- writes a `view` collaborator (B) or an `edit` collaborator (C) may not do ---------------------

B_REFUSED: dict[str, tuple[str, int | str]] = {
    "rename the trip": ("UPDATE trips SET title = 'mine' WHERE id = :T1", 0),
    "delete the trip": ("DELETE FROM trips WHERE id = :T1", 0),
    "take the trip": ("UPDATE trips SET owner_id = :B", 0),
    "create a trip for A": (
        "INSERT INTO trips (owner_id, title, destination, start_date, end_date)"
        " VALUES (:A, 't', 'd', '2030-01-01', '2030-01-01')",
        INSUFFICIENT_PRIVILEGE,
    ),
    "edit an itinerary": ("UPDATE itineraries SET title = 'x'", 0),
    "delete an itinerary": ("DELETE FROM itineraries", 0),
    "add an itinerary": ("INSERT INTO itineraries (trip_id, title) VALUES (:T1, 'x')", INSUFFICIENT_PRIVILEGE),
    "edit an activity": ("UPDATE activities SET price = 0", 0),
    "delete an activity": ("DELETE FROM activities", 0),
    "add an activity": (
        "INSERT INTO activities (itinerary_id, trip_id, title, currency) VALUES (:I1, :T1, 'x', 'EUR')",
        INSUFFICIENT_PRIVILEGE,
    ),
    "promote themself": ("UPDATE trip_collaborators SET permission = 'admin' WHERE user_id = :B", 0),
    "invite someone": (
        "INSERT INTO trip_collaborators (trip_id, user_id, permission) VALUES (:T1, :D, 'admin')",
        INSUFFICIENT_PRIVILEGE,
    ),
    "remove another collaborator": ("DELETE FROM trip_collaborators WHERE user_id = :C", 0),
    "rename A": ("UPDATE profiles SET display_name = 'pwned' WHERE id = :A", 0),
    "change A's preferences": ("UPDATE user_preferences SET currency = 'EUR' WHERE user_id = :A", 0),
    "delete profiles": ("DELETE FROM profiles", 0),
    "delete preferences": ("DELETE FROM user_preferences", 0),
    "create a profile for someone": (
        "INSERT INTO profiles (id, display_name) VALUES (gen_random_uuid(), 'x')",
        INSUFFICIENT_PRIVILEGE,
    ),
    "read A's key": ("UPDATE api_keys SET name = 'x' WHERE user_id = :A", 0),
    "delete A's key": ("DELETE FROM api_keys WHERE user_id = :A", 0),
    "store a key for A": (
        "INSERT INTO api_keys (user_id, service, ciphertext, last4) VALUES (:A, 's', 'x', '1234')",
        INSUFFICIENT_PRIVILEGE,
    ),
    "delete A's memory": ("DELETE FROM memories WHERE user_id = :A", 0),
    "write A a memory": ("INSERT INTO memories (user_id, content) VALUES (:A, 'x')", INSUFFICIENT_PRIVILEGE),
    "delete A's idempotency key": ("DELETE FROM idempotency_keys WHERE user_id = :A", 0),
    "delete A's chat": ("DELETE FROM chat_sessions WHERE user_id = :A", 0),
    "edit A's message": ("UPDATE chat_messages SET content = 'x' WHERE user_id = :A", 0),
    "post into A's chat": (
        "INSERT INTO chat_messages (session_id, user_id, role, content) VALUES (:SA, :B, 'user', 'x')",
        INSUFFICIENT_PRIVILEGE,
    ),
    "chat about a hidden trip": (
        "INSERT INTO chat_sessions (user_id, trip_id) VALUES (:B, :T2)",
        INSUFFICIENT_PRIVILEGE,
    ),
    "write the read model": ("UPDATE trip_views SET etag = 'x'", INSUFFICIENT_PRIVILEGE),
    "delete from the read model": ("DELETE FROM trip_view_members", INSUFFICIENT_PRIVILEGE),
    "read the change feed": ("SELECT count(*) FROM tripsage.changes", INSUFFICIENT_PRIVILEGE),
}


@pytest.mark.parametrize("case", sorted(B_REFUSED))
async def test_view_collaborator_cannot(world: World, case: str) -> None:
    sql, outcome = B_REFUSED[case]
    assert await world.attempt(world.people["B"], sql, **world.ids) == outcome


C_REFUSED: dict[str, tuple[str, int | str]] = {
    "delete the trip": ("DELETE FROM trips WHERE id = :T1", 0),
    # refused by the trips guard trigger (migration 0007) before the policy is even checked
    "take ownership": ("UPDATE trips SET owner_id = :C WHERE id = :T1", CHECK_VIOLATION),
    "give the trip away": ("UPDATE trips SET owner_id = :D WHERE id = :T1", CHECK_VIOLATION),
    "touch the private trip": ("UPDATE trips SET title = 'x' WHERE id = :T2", 0),
    "invite someone": (
        "INSERT INTO trip_collaborators (trip_id, user_id, permission) VALUES (:T1, :D, 'view')",
        INSUFFICIENT_PRIVILEGE,
    ),
    "promote themself": ("UPDATE trip_collaborators SET permission = 'admin' WHERE user_id = :C", 0),
    "move an itinerary into a hidden trip": (
        "UPDATE itineraries SET trip_id = :T2 WHERE id = :I1",
        INSUFFICIENT_PRIVILEGE,
    ),
    "attach an activity to a hidden trip's itinerary": (
        "INSERT INTO activities (itinerary_id, trip_id, title, currency) VALUES (:I2, :T1, 'x', 'EUR')",
        INSUFFICIENT_PRIVILEGE,
    ),
    "move an activity under a hidden trip's itinerary": (
        "UPDATE activities SET itinerary_id = :I2 WHERE id = :X1",
        INSUFFICIENT_PRIVILEGE,
    ),
}


@pytest.mark.parametrize("case", sorted(C_REFUSED))
async def test_edit_collaborator_cannot(world: World, case: str) -> None:
    sql, outcome = C_REFUSED[case]
    assert await world.attempt(world.people["C"], sql, **world.ids) == outcome


C_ALLOWED = {
    "rename the trip": "UPDATE trips SET title = 'ours', version = version + 1 WHERE id = :T1",
    "add an itinerary": "INSERT INTO itineraries (trip_id, title) VALUES (:T1, 'day two')",
    "add an activity": "INSERT INTO activities (itinerary_id, trip_id, title, currency) VALUES (:I1, :T1, 'x', 'EUR')",
    "edit an activity": "UPDATE activities SET price = 15 WHERE id = :X1",
    "delete an itinerary": "DELETE FROM itineraries WHERE id = :I1",
    "leave the trip": "DELETE FROM trip_collaborators WHERE trip_id = :T1 AND user_id = :C",
}


@pytest.mark.parametrize("case", sorted(C_ALLOWED))
async def test_edit_collaborator_can(world: World, case: str) -> None:
    assert await world.attempt(world.people["C"], C_ALLOWED[case], **world.ids) == 1


async def test_view_collaborator_can_leave_and_owner_can_manage(world: World) -> None:
    assert await world.attempt(world.people["B"], "DELETE FROM trip_collaborators WHERE user_id = :B", **world.ids) == 1
    owner_moves = [
        "UPDATE trip_collaborators SET permission = 'admin' WHERE trip_id = :T1 AND user_id = :B",
        "INSERT INTO trip_collaborators (trip_id, user_id, permission) VALUES (:T1, :D, 'view')",
        "DELETE FROM trips WHERE id = :T2",
        "UPDATE trips SET title = 'renamed' WHERE id = :T1",
    ]
    for sql in owner_moves:
        assert await world.attempt(world.people["A"], sql, **world.ids) == 1, sql
    # the attempts were rolled back: nothing changed
    assert await world.select_all(world.people["B"], "trips") == {world.key("T1")}


# --- the request role itself -----------------------------------------------------------------------


async def test_request_role_cannot_bypass_rls(world: World) -> None:
    async with world.db.request_session(world.people["B"]) as session:
        row = (
            await session.execute(
                text(
                    "SELECT current_user, r.rolsuper, r.rolbypassrls, auth.uid(), auth.role(),"
                    " current_setting('request.jwt.claims')::jsonb ->> 'email'"
                    " FROM pg_roles r WHERE r.rolname = current_user"
                )
            )
        ).one()
        assert tuple(row) == ("tripsage_api", False, False, world.B, "authenticated", "B@example.com")
        await session.execute(text("SET LOCAL row_security = off"))
        with pytest.raises(DBAPIError) as info:
            await session.execute(text("SELECT * FROM trips"))
        assert getattr(info.value.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE


async def test_service_role_runs_as_service_role(world: World) -> None:
    async with world.db.request_session(world.service) as session:
        row = (await session.execute(text("SELECT current_user, auth.uid(), auth.role()"))).one()
    assert tuple(row) == ("service_role", None, "service_role")


async def test_anon_role_gets_nothing(world: World) -> None:
    async with world.db.engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT set_config('role', 'anon', true)"))
        with pytest.raises(DBAPIError) as info:
            await conn.execute(text("SELECT * FROM trips"))
    assert getattr(info.value.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE


async def test_claims_hold_for_every_transaction_of_a_request_session(world: World) -> None:
    who = world.people["B"]
    async with world.db.request_session(who) as session:
        assert await session.scalar(text("SELECT count(*) FROM trips")) == 1
        await session.commit()  # a handler that commits and carries on must stay inside RLS
        assert await session.scalar(text("SELECT current_user")) == "tripsage_api"
        assert await session.scalar(text("SELECT count(*) FROM trips")) == 1
        await session.rollback()
        assert await session.scalar(text("SELECT auth.uid()")) == world.B


async def test_request_session_rolls_back_unless_committed(world: World) -> None:
    sql = "INSERT INTO memories (user_id, content) VALUES (:B, 'draft')"
    count = "SELECT count(*) FROM memories WHERE content = 'draft'"
    async with world.db.request_session(world.people["B"]) as session:
        await session.execute(text(sql), world.ids)
    with pytest.raises(RuntimeError):
        async with world.db.request_session(world.people["B"]) as session:
            await session.execute(text(sql), world.ids)
            raise RuntimeError("handler failed")
    async with world.db.engine.connect() as conn:
        assert await conn.scalar(text(count)) == 0


async def test_role_and_claims_never_outlive_the_transaction(world: World) -> None:
    async with world.db.request_session(world.people["B"]) as session:
        await session.execute(text("SELECT 1"))
    for _ in range(3):  # whichever pooled connection comes back
        async with world.db.engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT current_user, current_setting('request.jwt.claims', true), auth.uid()"))
            ).one()
            assert row[0] != "tripsage_api" and not row[1] and row[2] is None


async def test_set_request_claims_on_a_plain_connection(world: World) -> None:
    async with world.db.engine.connect() as conn, conn.begin():
        await set_request_claims(conn, world.people["E"])
        assert await conn.scalar(text("SELECT count(*) FROM trips")) == 1
        assert await conn.scalar(text("SELECT count(*) FROM profiles")) == 2  # E and A (T2)


async def test_sessions_without_a_principal_stay_the_login_role(world: World) -> None:
    async with world.db.sessionmaker() as session:  # workers and projections use these
        assert await session.scalar(text("SELECT current_user")) != "tripsage_api"
        assert await session.scalar(text("SELECT count(*) FROM trips")) == 2


async def test_transaction_pool_mode_and_a_separate_read_engine(world: World) -> None:
    url = world.db.engine.url.render_as_string(hide_password=False)
    replica = world.db.engine.url.update_query_dict({"prepared_statement_cache_size": "50"})
    db = Database.open(url, replica.render_as_string(hide_password=False), pool_mode="transaction")
    try:
        assert db.read_engine is not db.engine
        for _ in range(3):  # no server-side prepared statement may be reused across transactions
            async with db.request_session(world.people["B"]) as session:
                assert await session.scalar(text("SELECT count(*) FROM trips")) == 1
        async with db.read_engine.connect() as conn, conn.begin():
            await set_request_claims(conn, world.people["B"])
            assert await conn.scalar(text("SELECT count(*) FROM trip_views")) == 1
        # the trip queries' read function: pinned in a transaction, so a pooler cannot split it
        b = world.people["B"]
        async with count_driver_statements(db.read_engine) as sent:
            rows = await call_as(db.read_engine, b, TRIP_PAGE, 10, *[None] * 5, [])
        assert len(rows) == 1
        # (the first SELECT sets the request timeouts: startup settings do not pass a pooler)
        assert [s.split()[0] for s in sent.statements] == ["BEGIN", "SELECT", "SELECT", "COMMIT;"], sent.statements
    finally:
        await db.dispose()
    same = Database.open(url, url)
    assert same.read_engine is same.engine
    await same.dispose()


async def test_leave_trip_removes_only_the_callers_own_row(world: World) -> None:
    """`tripsage.leave_trip` is SECURITY DEFINER (a `view` collaborator may not write the trip row)."""
    leave = text("SELECT tripsage.leave_trip(:trip)")
    async with world.db.request_session(world.people["D"]) as session:  # a stranger: nothing to leave
        assert await session.scalar(leave, {"trip": world.T1}) is None
        await session.commit()
    async with world.db.request_session(world.people["B"]) as session:
        assert await session.scalar(leave, {"trip": world.T2}) is None  # not B's trip
        assert await session.scalar(leave, {"trip": world.T1}) == 2  # B's row gone, version 1 -> 2
        await session.rollback()
    async with world.db.engine.connect() as conn:
        members = await conn.execute(text("SELECT trip_id, user_id FROM trip_collaborators"))
        versions = await conn.execute(text("SELECT id, version FROM trips"))
        assert {tuple(row) for row in members} == {world.key("T1", "B"), world.key("T1", "C"), world.key("T2", "E")}
        assert {tuple(row) for row in versions} == {(world.T1, 1), (world.T2, 1)}
