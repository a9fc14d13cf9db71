"""A pooled connection whose server process ends (a restart, `pg_terminate_backend`) never serves again.

PostgreSQL's fast shutdown terminates every backend with FATAL 57P01: the one mid-statement answers
its statement with that error, and the idle ones close. The driver raises the error before it
has seen the connection close, so a connection put back in the pool at that moment would fail
the next request with asyncpg's "another operation is in progress" (a 500 seen under PostgreSQL
restarts in the fault run). Both paths that drive asyncpg themselves are covered: the one-round-
trip calls (`core.direct.run_as`) and the BEGIN script of request sessions (`core.begin`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.auth import Principal
from core.db import Database, create_engine
from core.direct import run_as
from core.failures import unavailable_cause

ROUNDS = 5


def principal() -> Principal:
    user = uuid.uuid4()
    claims = {"sub": str(user), "role": "authenticated"}
    return Principal(claims=claims, user_id=user, role="authenticated", email=None, expires_at=2e9)


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=1)
    yield engine
    await engine.dispose()


async def terminate(admin: AsyncEngine, pid: int) -> None:
    async with admin.connect() as conn:
        assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar()


async def terminate_sleeper(admin: AsyncEngine) -> int:
    """End the backend running this module's sleeping statement (marked `cut-me`); returns its pid."""
    for _ in range(100):
        async with admin.connect() as conn:  # a transaction per look: pg_stat_activity is a snapshot
            pid = (
                await conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%cut-me%'"
                        " AND pid <> pg_backend_pid() AND datname = current_database()"
                    )
                )
            ).scalar()
            if pid is not None:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                return int(pid)
        await asyncio.sleep(0.02)
    raise AssertionError("the sleeping statement never showed up")


async def test_direct_call_cut_mid_statement_is_unavailable_and_the_next_call_works(
    database_url: str, admin: AsyncEngine
) -> None:
    engine = create_engine(database_url, pool_size=1)
    who = principal()
    try:
        for _ in range(ROUNDS):
            call = asyncio.create_task(run_as(engine, who, "SELECT pg_sleep(1), 'cut-me', $1::text"))
            pid = await terminate_sleeper(admin)
            outcome: object = (await asyncio.gather(call, return_exceptions=True))[0]
            # a read is sent again on a fresh connection when the driver saw the connection close
            # first; when it saw the server's FATAL first, the error is a dependency failure (503)
            if isinstance(outcome, BaseException):
                assert unavailable_cause(outcome) is not None, repr(outcome)
            # at once, before the event loop may have seen the socket close: a fresh connection
            rows = await run_as(engine, who, "SELECT pg_backend_pid(), $1::text")
            assert rows[0][0] != pid
    finally:
        await engine.dispose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    handle = Database.open(database_url)
    yield handle
    await handle.dispose()


async def backend_pid(db: Database, who: Principal) -> int:
    """The server process of the connection a new request session gets."""
    async with db.request_session(who) as session:
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
    assert isinstance(pid, int)
    return pid


async def test_session_cut_mid_statement_is_unavailable_and_the_next_session_works(
    db: Database, admin: AsyncEngine
) -> None:
    who = principal()
    for _ in range(ROUNDS):

        async def slow() -> None:
            async with db.request_session(who) as session:
                await session.execute(text("SELECT pg_sleep(5), 'cut-me'"))

        call = asyncio.create_task(slow())
        pid = await terminate_sleeper(admin)
        with pytest.raises(Exception) as failed:  # noqa: PT011
            await call
        assert unavailable_cause(failed.value) is not None, repr(failed.value)
        assert await backend_pid(db, who) != pid


async def test_session_on_a_connection_killed_while_pooled_fails_once_then_works(
    db: Database, admin: AsyncEngine
) -> None:
    who = principal()
    for _ in range(ROUNDS):
        pid = await backend_pid(db, who)
        await terminate(admin, pid)
        await asyncio.sleep(0.05)
        try:
            async with db.request_session(who) as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001  # a 503 for this one request is acceptable
            assert unavailable_cause(exc) is not None, repr(exc)
        assert await backend_pid(db, who) != pid
