"""How query endpoints run as the caller: a read function in one round trip, or a lean transaction.

**`call_as`** (the trip endpoints, the hot path): ONE statement, a call of a read function
(migration 0006) that sets the role and claims itself and then runs its query, sent on the driver
connection of a pooled SQLAlchemy connection. One round trip, no transaction to open or close, no
SQLAlchemy execution context: measured in `bench/plumbing_bench.py`, it costs less than half the
app CPU of `read_transaction` + a SQLAlchemy execute. With `DB_POOL_MODE=transaction` (pgbouncer,
Supavisor) the call is wrapped in BEGIN/COMMIT so the pooler keeps it on one server connection.
The statement is counted by asyncpg's query logger (`tests.support.count_driver_statements`), not
by `before_cursor_execute`.

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

from asyncpg import PostgresError, Record
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from core.auth import Principal
from core.db import POOL_MODE_OPTION, claims_json
from core.deps import AppContext
from queries.consistency import HEADER as FRESHNESS_HEADER
from queries.consistency import wait_for

log = logging.getLogger("tripsage.queries")
DB_ROLES = frozenset({"authenticated", "service_role"})


def quote_literal(value: str) -> str:
    """Quote a string as a PostgreSQL escape-string literal (`E'...'`).

    Escape strings mean the same whatever `standard_conforming_strings` says: backslashes and
    single quotes are doubled; every other character stands for itself.

    Args:
        value: Any text without NUL characters.

    Returns:
        The SQL literal.

    Raises:
        ValueError: When the text holds a NUL character (PostgreSQL text cannot).
    """
    if "\x00" in value:
        raise ValueError("a SQL literal cannot hold NUL characters")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def begin_sql(principal: Principal) -> str:
    """The simple-query message that opens a read transaction as the caller.

    Args:
        principal: The verified caller.

    Returns:
        `BEGIN READ ONLY` plus the set_config statement, as one script.
    """
    role = principal.db_role
    if role not in DB_ROLES:  # pragma: no cover  # db_role only yields these two
        raise ValueError(f"unexpected database role {role!r}")
    return (
        f"BEGIN READ ONLY; SELECT set_config('role', '{role}', true),"
        f" set_config('request.jwt.claims', {quote_literal(claims_json(principal))}, true)"
    )


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
async def read_transaction(engine: AsyncEngine, principal: Principal) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction as `principal`, in three round trips (set-up, data, COMMIT).

    Args:
        engine: The read engine (`ctx.db.read_engine`).
        principal: The verified caller.

    Yields:
        A connection whose statements run with the caller's role and claims.
    """
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        try:
            await driver.execute(begin_sql(principal))
            yield conn
            await driver.execute("COMMIT")
        except BaseException:
            await _discard_transaction(conn, driver)
            raise


async def call_as(engine: AsyncEngine, principal: Principal, sql: str, *args: object) -> list[Record]:
    """Run one read-function call as `principal`: the function's first parameter gets the claims.

    The connection comes from the engine's pool and goes back to it unchanged: the function's
    set_config calls are local to the statement's implicit transaction. A call that ends without
    the server's answer (cancelled, connection lost) leaves the connection's state unknown, so it
    is invalidated, never pooled.

    Args:
        engine: The read engine (`ctx.db.read_engine`).
        principal: The verified caller (a user: the functions switch to `authenticated`).
        sql: `SELECT ... FROM tripsage.<function>($1, ...)` with `$1` the claims.
        *args: The remaining parameters.

    Returns:
        The rows.
    """
    raw = await engine.raw_connection()
    healthy = False
    try:
        driver = raw.driver_connection
        if driver is None or driver.is_in_transaction():  # pragma: no cover  # the pool resets on return
            raise RuntimeError("a pooled read connection must not be inside a transaction")
        if engine.get_execution_options().get(POOL_MODE_OPTION) == "transaction":
            # Behind a transaction pooler the driver's prepare and execute (two protocol syncs) must
            # not be split across server connections: pin them in a transaction (4 round trips).
            async with driver.transaction(readonly=True):
                rows: list[Record] = await driver.fetch(sql, claims_json(principal), *args)
        else:
            rows = await driver.fetch(sql, claims_json(principal), *args)
    except PostgresError:
        healthy = True  # the server answered with an error: the implicit transaction is over
        raise
    else:
        healthy = True
    finally:
        await greenlet_spawn(raw.close if healthy else raw.invalidate)
    return rows


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
