"""How query endpoints run as the caller: a read function in one round trip, or a lean transaction.

**`call_as`** (the trip endpoints, the hot path): ONE statement, a call of a read function
(migration 0007) that sets the role and claims itself and then runs its query, sent on the driver
connection of a pooled SQLAlchemy connection (`core.direct.run_as`, which the one-statement
commands use too). One round trip, no transaction to open or close, no SQLAlchemy execution
context: measured in `bench/plumbing_bench.py`, it costs less than half the app CPU of
`read_transaction` + a SQLAlchemy execute.

**`read_transaction`** (the other query endpoints: any statement, no function needed):

`core.db.Database.request_session` costs four round trips before and around a read (BEGIN, the
set_config statement, the data statement, COMMIT) plus an ORM session. A query endpoint needs the
same guarantees (the data statement runs as `authenticated` with the caller's claims, so Row Level
Security holds; nothing survives into the next use of the pooled connection) for less:

1. one simple-query message `BEGIN READ ONLY; SELECT set_config('role', ...), set_config(...)` on
   the driver connection (the claims travel as a safely quoted literal, since a simple query has no
   parameters);
2. the data statement through SQLAlchemy, so `before_cursor_execute` sees and counts it;
3. `COMMIT`.

The SQLAlchemy connection runs in AUTOCOMMIT mode, so it sends no BEGIN of its own and its pool
reset on return is free; every exit path that leaves the driver inside a transaction rolls back
(and a connection that cannot roll back is invalidated, never returned to the pool). `set_config`
with `is_local = true` is transaction-scoped, so role and claims end with the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asyncpg import Record
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.auth import Principal
from core.begin import begin_script
from core.db import DEFAULT_TIMEOUTS, Timeouts, claim_params
from core.deps import AppContext
from core.direct import run_as
from queries.consistency import HEADER as FRESHNESS_HEADER
from queries.consistency import wait_for

log = logging.getLogger("tripsage.queries")


def begin_sql(principal: Principal, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> str:
    """The simple-query message that opens a read transaction as the caller.

    Args:
        principal: The verified caller.
        timeouts: The request timeouts.

    Returns:
        `BEGIN READ ONLY` plus one statement setting the role, both forms of the claims (for either
        definition of `auth.uid()`) and the timeouts, as one script.
    """
    return begin_script(principal, claim_params(principal, timeouts), read_only=True)


async def _discard_transaction(conn: AsyncConnection, driver: Any) -> None:
    """Roll back whatever the driver still holds; a connection that cannot is invalidated, never pooled."""
    if not driver.is_closed():
        try:
            await driver.execute("ROLLBACK")
        except Exception:  # noqa: BLE001  # the caller's own error is the one to raise; the connection is dropped
            log.debug("rollback failed; invalidating the connection", exc_info=True)
        except BaseException:  # pragma: no cover  # cancelled during ROLLBACK: state unknown, drop it
            await conn.invalidate()
            raise
        else:
            return
    await conn.invalidate()


@asynccontextmanager
async def read_transaction(
    engine: AsyncEngine, principal: Principal, timeouts: Timeouts = DEFAULT_TIMEOUTS
) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction as `principal`, in three round trips (set-up, data, COMMIT).

    Args:
        engine: The read engine (`ctx.db.read_engine`).
        principal: The verified caller.
        timeouts: The request timeouts (`ctx.db.timeouts`).

    Yields:
        A connection whose statements run with the caller's role and claims.
    """
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        try:
            await driver.execute(begin_sql(principal, timeouts))
            yield conn
            await driver.execute("COMMIT")
        except BaseException:
            await _discard_transaction(conn, driver)
            raise


async def call_as(
    engine: AsyncEngine, principal: Principal, sql: str, *args: object, timeouts: Timeouts = DEFAULT_TIMEOUTS
) -> list[Record]:
    """Run one read-function call as `principal` (`core.direct.run_as`; a lost pooled connection is retried).

    Args:
        engine: The read engine (`ctx.db.read_engine`).
        principal: The verified caller (a user: the functions switch to the service's role).
        sql: `SELECT ... FROM tripsage.<function>($1, ...)` with `$1` the claims.
        *args: The remaining parameters.
        timeouts: The request timeouts (`ctx.db.timeouts`).

    Returns:
        The rows.
    """
    return await run_as(engine, principal, sql, *args, timeouts=timeouts)


def if_none_match(header: str | None) -> list[str] | None:
    """The entity tags of an `If-None-Match` header (weak ones compared by their opaque part).

    Args:
        header: The raw header value, if sent.

    Returns:
        None without the header, `["*"]` for a wildcard, else the listed tags with their quotes.
    """
    if header is None:
        return None
    tags = [part.strip().removeprefix("W/") for part in header.split(",")]
    return [tag for tag in tags if tag]


async def consistency_headers(ctx: AppContext, token: str | None) -> dict[str, str]:
    """Honour `X-Consistency-Token`: wait (bounded) until the read model includes that write.

    Args:
        ctx: The app context.
        token: The header's value, if sent.

    Returns:
        `{"X-Consistency": "fresh" | "stale"}` when a token was sent, else nothing.

    Raises:
        ApiError: 422 when the token is not one of ours.
    """
    freshness = await wait_for(ctx, token)
    return {} if freshness is None else {FRESHNESS_HEADER: freshness}
