"""Read your writes: wait (bounded) until the read model includes a command's transaction.

A command hands out `X-Consistency-Token: v1.<xid>`. The write is in the read model once no feed
row of that transaction is left: neither its own rows (`xid`) nor the trip rows fanned out of its
profile change (`origin_xid`), and no failed trip holds it in the dead-letter table, and the
transaction itself is visible there. The check is one indexed statement on the read database, so a
lagging replica that has not replayed the commit yet counts as not yet fresh.

Waiting does not busy-loop: the worker runs `NOTIFY tripsage_projection` in every batch (delivered
when the batch commits) and one listener per process and database (a dedicated asyncpg connection,
opened lazily) wakes every waiter. Where LISTEN is unavailable (transaction pooling, a replica) the
waiters poll with backoff instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Literal

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from core.consistency import parse_token
from core.deps import AppContext

log = logging.getLogger("tripsage.consistency")

CHANNEL = "tripsage_projection"  # the worker's NOTIFY channel (projections.apply.CHANNEL)
HEADER = "X-Consistency"
FIRST_POLL_S = 0.005
MAX_POLL_S = 0.1
CONNECT_TIMEOUT_S = 1.0
RECONNECT_AFTER_S = 5.0

Freshness = Literal["fresh", "stale"]

APPLIED = text(
    """
SELECT pg_visible_in_snapshot(CAST(:xid AS xid8), pg_current_snapshot())
   AND NOT EXISTS (SELECT 1 FROM tripsage.changes WHERE xid = CAST(:xid AS xid8))
   AND NOT EXISTS (SELECT 1 FROM tripsage.changes WHERE origin_xid = CAST(:xid AS xid8))
   AND NOT EXISTS (SELECT 1 FROM tripsage.dead_letters WHERE CAST(:xid AS xid8) = ANY (xids))
"""
)
"""True once transaction :xid is fully reflected in the read model.

The absence of its feed rows proves that only where the transaction itself is visible: on a
streaming replica that has not replayed the command's commit yet, its feed rows are absent because
they have not arrived, not because they were projected. So the transaction must be visible in the
read database's current snapshot first (on a hot standby the snapshot is the replayed state)."""


class ProjectionListener:
    """One LISTEN connection per database and event loop; wakes every waiter on each notification."""

    def __init__(self, database_url: str) -> None:
        """Create the listener; the connection opens on first use.

        Args:
            database_url: The primary database (where the worker notifies).
        """
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: Any = None
        self._event = asyncio.Event()
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self.generation = 0

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is open."""
        return self._conn is not None and not self._conn.is_closed()

    def _notified(self, *_args: object) -> None:
        self.generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def _lost(self, *_args: object) -> None:
        self._conn = None
        self._notified()

    async def ensure(self) -> bool:
        """Open the LISTEN connection if needed (not more than once per few seconds after a failure)."""
        if self.listening:
            return True
        if time.monotonic() < self._retry_at:
            return False
        async with self._lock:
            if self.listening:
                return True
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
                await conn.add_listener(CHANNEL, self._notified)
                conn.add_termination_listener(self._lost)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("consistency listener unavailable (%s); polling instead", type(exc).__name__)
                self._retry_at = time.monotonic() + RECONNECT_AFTER_S
                return False
            self._conn = conn
            return True

    async def wait(self, generation: int, timeout: float) -> None:
        """Sleep until a notification newer than `generation` arrives, or `timeout` seconds pass."""
        if self.generation != generation or timeout <= 0:
            return
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    async def close(self) -> None:
        """Close the LISTEN connection."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()


_listeners: dict[tuple[str, asyncio.AbstractEventLoop], ProjectionListener] = {}
"""Per database and event loop: the LISTEN connection, its events and its lock belong to one loop.
(Two apps in one process on two loops — a test's servers in threads — must not share, nor close,
each other's connection: one closed from another loop's thread crashed the process.)"""


def listener_for(database_url: str) -> ProjectionListener:
    """The running loop's listener for a database (created on first use)."""
    key = (database_url, asyncio.get_running_loop())
    listener = _listeners.get(key)
    if listener is None:
        listener = _listeners[key] = ProjectionListener(database_url)
    return listener


async def close_listener(database_url: str) -> None:
    """Close and forget the running loop's listener for a database (app shutdown)."""
    listener = _listeners.pop((database_url, asyncio.get_running_loop()), None)
    if listener is not None:
        await listener.close()


async def is_applied(engine: AsyncEngine, xid: int) -> bool:
    """True when the read model reflects transaction `xid` (one statement)."""
    async with engine.connect() as conn:
        return bool(await conn.scalar(APPLIED, {"xid": xid}))


async def wait_for_xid(engine: AsyncEngine, xid: int, timeout_s: float, listener: ProjectionListener) -> Freshness:
    """Wait up to `timeout_s` for transaction `xid` to reach the read model.

    Args:
        engine: Where queries read (the replica, if any).
        xid: The command's transaction id.
        timeout_s: The longest wait.
        listener: Wakes the wait when a batch commits.

    Returns:
        "fresh" once applied, else "stale" when the time is up.
    """
    deadline = time.monotonic() + timeout_s
    poll = FIRST_POLL_S
    while True:
        listening = await listener.ensure()
        generation = listener.generation
        if await is_applied(engine, xid):
            return "fresh"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "stale"
        # With the listener, the poll is only a safety net; without it, it is the mechanism.
        await listener.wait(generation, min(remaining, MAX_POLL_S if listening else poll))
        poll = min(poll * 2, MAX_POLL_S)


async def wait_for(ctx: AppContext, token: str | None, timeout_ms: int | None = None) -> Freshness | None:
    """Wait for the write behind a consistency token before a query reads.

    Args:
        ctx: The app context (read engine, settings).
        token: The `X-Consistency-Token` header, if the client sent one.
        timeout_ms: The longest wait; `CONSISTENCY_WAIT_MS` by default.

    Returns:
        None without a token; "fresh" when the read model includes the write; "stale" when it did
        not catch up in time (the query then answers with what it has).

    Raises:
        ApiError: 422 when the token is not one of ours.
    """
    if token is None:
        return None
    xid = parse_token(token)
    wait_ms = ctx.settings.consistency_wait_ms if timeout_ms is None else timeout_ms
    database_url = ctx.settings.database_url
    assert database_url is not None
    return await wait_for_xid(ctx.db.read_engine, xid, wait_ms / 1000, listener_for(database_url))
