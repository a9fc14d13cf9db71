"""One function call as the caller, on a pooled driver connection: one round trip, no transaction around it.

The trip queries (read functions, migrations 0007/0009) and the one-statement commands (command
functions, migration 0010) are calls of functions that switch to the caller's role and claims
themselves and then run their statement. Sent on the driver connection of a pooled SQLAlchemy
connection, outside any transaction, such a call is its own (implicit) transaction: one round trip,
committed by the server when the call returns, and no SQLAlchemy execution context. With
`DB_POOL_MODE=transaction` (pgbouncer, Supavisor) the call is wrapped in BEGIN/COMMIT with the
timeouts, so the pooler keeps prepare and execute on one server connection. The statement is
counted by asyncpg's query logger (`tests.support.count_driver_statements`), not by
`before_cursor_execute`.
"""

from __future__ import annotations

import logging

from asyncpg import ConnectionDoesNotExistError, InterfaceError, PostgresError, Record
from asyncpg.exceptions import InternalClientError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from core.auth import Principal
from core.begin import set_config_sql
from core.db import DEFAULT_TIMEOUTS, POOL_MODE_OPTION, Timeouts, claims_json
from core.failures import ends_connection

log = logging.getLogger("tripsage.db")


class ClosedBeforeSending(ConnectionError):
    """The pooled connection was left mid-protocol by a server that went away: nothing was sent on it.

    (One the server closed while it was pooled never gets here: the pool's checkout replaces it,
    `core.db.create_engine`.)
    """


# A pooled connection the server closed (a restart, a failover, an idle timeout) fails with one of
# these before the server saw the statement: a read can safely be sent again on a new connection.
CONNECTION_LOST = (InterfaceError, ConnectionDoesNotExistError, ConnectionError, OSError)


async def _fetch_once(
    engine: AsyncEngine, sql: str, args: tuple[object, ...], timeouts: Timeouts, *, readonly: bool
) -> list[Record]:
    raw = await engine.raw_connection()
    healthy = False
    try:
        driver = raw.driver_connection
        if driver is None or driver.is_in_transaction():  # pragma: no cover  # the pool resets on return
            raise RuntimeError("a pooled connection must not be inside a transaction")
        if engine.get_execution_options().get(POOL_MODE_OPTION) == "transaction":
            # Behind a transaction pooler the driver's prepare and execute (two protocol syncs) must
            # not be split across server connections: pin them in a transaction, which also carries
            # the timeouts (startup settings do not reach the server through a pooler).
            async with driver.transaction(readonly=readonly):
                await driver.execute(set_config_sql(list(timeouts.server_settings().items())))
                rows: list[Record] = await driver.fetch(sql, *args)
        else:
            rows = await driver.fetch(sql, *args)
    except PostgresError as exc:
        # The server answered with an error: the implicit transaction is over, and the connection
        # serves on, unless the error is the server ending it (a restart's FATAL 57P01).
        healthy = not ends_connection(exc) and driver is not None and not driver.is_closed()
        raise
    except InternalClientError as exc:
        # asyncpg refuses to start a statement on a connection a dead server left mid-protocol
        # ("cannot switch to state ...; another operation is in progress"): nothing was sent.
        if str(exc).startswith("cannot switch to state"):
            raise ClosedBeforeSending(str(exc)) from exc
        raise
    else:
        healthy = True
    finally:
        await greenlet_spawn(raw.close if healthy else raw.invalidate)
    return rows


async def run_as(
    engine: AsyncEngine,
    principal: Principal,
    sql: str,
    *args: object,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    write: bool = False,
) -> list[Record]:
    """Run one function call as `principal`: the function's first parameter gets the claims.

    The connection comes from the engine's pool and goes back to it unchanged: the function's
    set_config calls are local to the statement's implicit transaction. A call that ends without
    the server's answer (cancelled, connection lost) leaves the connection's state unknown, so it
    is invalidated, never pooled. A pooled connection found dead (the database restarted since it
    was opened) is replaced by a fresh one, once per pooled connection at most: a read whatever
    the error said, a write only when nothing was sent (its outcome is otherwise unknown: the
    error reaches the client as a 503).

    Args:
        engine: The engine (`ctx.db.read_engine` for queries, `ctx.db.engine` for commands).
        principal: The verified caller (the functions switch to its role).
        sql: `SELECT ... FROM tripsage.<function>($1, ...)` with `$1` the claims.
        *args: The remaining parameters.
        timeouts: The request timeouts (`ctx.db.timeouts`).
        write: The call writes (a read-write transaction behind a pooler; no blind retry).

    Returns:
        The rows.
    """
    claims = claims_json(principal)
    retried = (ClosedBeforeSending,) if write else CONNECTION_LOST
    attempts = engine.pool.size() + 1 if hasattr(engine.pool, "size") else 2
    for attempt in range(attempts):
        try:
            return await _fetch_once(engine, sql, (claims, *args), timeouts, readonly=not write)
        except retried:
            if attempt + 1 >= attempts:
                raise
            log.info("a pooled connection was closed by the server; retrying on another")
    raise AssertionError("unreachable")  # pragma: no cover
