"""`call_as` and the lean read transaction on real PostgreSQL: RLS role and claims in force, nothing left behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.auth import Principal
from core.begin import quote_literal
from core.db import create_engine
from queries.plumbing import call_as, read_transaction
from queries.trips import TRIP_GET, TRIP_PAGE
from tests.support import count_driver_statements, count_statements

STATE = text(
    "SELECT current_user::text, coalesce(current_setting('request.jwt.claims', true), ''),"
    " current_setting('transaction_read_only')"
)


def user_principal(**extra: object) -> Principal:
    user = uuid.uuid4()
    claims = {"sub": str(user), "role": "authenticated", **extra}
    return Principal(claims=claims, user_id=user, role="authenticated", email=None, expires_at=2e9)


@pytest.fixture
async def single(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine with ONE pooled connection, so every use sees what the previous one left."""
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


async def login_role(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(text("SELECT current_user::text"))).scalar())


async def assert_clean(engine: AsyncEngine, role: str) -> None:
    async with engine.connect() as conn:
        assert tuple((await conn.execute(STATE)).one()) == (role, "", "off")


async def test_runs_as_caller_and_leaves_nothing(single: AsyncEngine) -> None:
    role = await login_role(single)
    principal = user_principal(user_metadata={"full_name": "O'Hara \\ $$ 'x'"})
    async with read_transaction(single, principal) as conn:
        who, claims, read_only = (await conn.execute(STATE)).one()
        uid = (await conn.execute(text("SELECT auth.uid()"))).scalar()
    assert (who, read_only, uid) == ("tripsage_api", "on", principal.user_id)
    assert '"full_name":"O\'Hara \\\\ $$ \'x\'"' in claims
    await assert_clean(single, role)


async def test_exception_in_block_rolls_back(single: AsyncEngine) -> None:
    role = await login_role(single)
    with pytest.raises(RuntimeError):
        async with read_transaction(single, user_principal()) as conn:
            await conn.execute(text("SELECT 1"))
            raise RuntimeError("boom")
    await assert_clean(single, role)


async def test_sql_error_rolls_back(single: AsyncEngine) -> None:
    role = await login_role(single)
    with pytest.raises(DBAPIError):
        async with read_transaction(single, user_principal()) as conn:
            await conn.execute(text("SELECT 1/0"))
    await assert_clean(single, role)


async def test_connection_killed_mid_transaction_is_dropped(single: AsyncEngine, database_url: str) -> None:
    role = await login_role(single)
    killer = create_engine(database_url, pool_size=1)
    try:
        with pytest.raises(DBAPIError):
            async with read_transaction(single, user_principal()) as conn:
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
                async with killer.connect() as admin:
                    await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await asyncio.sleep(0.1)
                await conn.execute(text("SELECT 1"))
    finally:
        await killer.dispose()
    await assert_clean(single, role)


async def test_writes_are_refused(single: AsyncEngine) -> None:
    with pytest.raises(DBAPIError, match="read-only"):
        async with read_transaction(single, user_principal()) as conn:
            await conn.execute(text("DELETE FROM trip_views"))


async def test_cancelled_mid_statement_never_returns_a_dirty_connection(single: AsyncEngine) -> None:
    role = await login_role(single)

    async def slow() -> None:
        async with read_transaction(single, user_principal()) as conn:
            await conn.execute(text("SELECT pg_sleep(5)"))

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_clean(single, role)


async def test_only_the_data_statement_is_counted(single: AsyncEngine) -> None:
    with count_statements(single) as counter:
        async with read_transaction(single, user_principal()) as conn:
            await conn.execute(text("SELECT 1"))
    assert counter.statements == ["SELECT 1"]


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40))
async def test_quoted_literal_round_trips(database_url: str, value: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert await raw.driver_connection.fetchval(f"SELECT {quote_literal(value)}::text") == value  # type: ignore[union-attr]
    finally:
        await engine.dispose()


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_call_as_is_one_statement_and_leaves_nothing(single: AsyncEngine) -> None:
    role, pid = await login_role(single), await backend_pid(single)
    async with count_driver_statements(single) as sent:
        rows = await call_as(single, user_principal(), TRIP_GET, uuid.uuid4(), [])
    assert rows == [] and sent.statements == [TRIP_GET]
    await assert_clean(single, role)
    assert await backend_pid(single) == pid  # the connection went back to the pool


async def test_call_as_server_error_keeps_the_connection(single: AsyncEngine) -> None:
    role, pid = await login_role(single), await backend_pid(single)
    with pytest.raises(asyncpg.PostgresError, match="LIMIT must not be negative"):
        await call_as(single, user_principal(), TRIP_PAGE, -1, *[None] * 5, [])
    await assert_clean(single, role)
    assert await backend_pid(single) == pid


async def test_call_as_cancelled_drops_the_connection(single: AsyncEngine) -> None:
    role, pid = await login_role(single), await backend_pid(single)
    task = asyncio.create_task(call_as(single, user_principal(), "SELECT pg_sleep(5), $1::text"))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_clean(single, role)
    assert await backend_pid(single) != pid  # state unknown: invalidated, never pooled
