"""One rebuild (or rollback) at a time, and who is running it.

The exclusion is a session-level advisory lock held on a dedicated connection for the whole
operation: a crash, Ctrl-C or `kill -9` closes the connection and PostgreSQL frees the lock by
itself, so there is no stale lock to clean up. The holder names itself in that connection's
`application_name`; a refused caller reads it back from `pg_locks` and `pg_stat_activity`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("tripsage.rebuild")

LOCK_NAMESPACE = 0x52424C44  # "RBLD": not the trip locks' namespace, so no trip id can collide
LOCK_KEY = 1

TRY_LOCK = text(
    "SELECT pg_try_advisory_lock(:namespace, :key) AS got, set_config('application_name', :name, false) AS name"
)
UNLOCK = text("SELECT pg_advisory_unlock(:namespace, :key), set_config('application_name', 'tripsage', false)")
RESET_NAME = text("SELECT set_config('application_name', 'tripsage', false)")

HOLDER = text(
    """
SELECT a.pid AS backend_pid, a.application_name, a.backend_start
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = CAST(:namespace AS oid) AND l.objid = CAST(:key AS oid) AND l.objsubid = 2
"""
)
"""The session holding the rebuild lock (two-key advisory locks store the keys in classid/objid)."""

_NAME = re.compile(r"^tripsage-(?P<operation>\w+) (?P<pid>\d+)@(?P<host>.*)$")


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds the rebuild lock."""

    operation: str
    host: str
    pid: int | None
    started_at: datetime
    backend_pid: int

    def __str__(self) -> str:
        """`rebuild by host pid 123, started 2026-… (server pid 456)`."""
        pid = "?" if self.pid is None else str(self.pid)
        return (
            f"{self.operation} by {self.host} pid {pid}, started {self.started_at.isoformat(timespec='seconds')}"
            f" (server pid {self.backend_pid})"
        )


class RebuildBusy(RuntimeError):
    """Another rebuild or rollback holds the lock."""

    def __init__(self, holder: Holder | None) -> None:
        """Name the holder (None when it let go between our attempt and the lookup)."""
        self.holder = holder
        who = str(holder) if holder else "another process (it has just finished; try again)"
        super().__init__(f"a projection rebuild is already running: {who}")


def application_name(operation: str) -> str:
    """The lock connection's `application_name` (at most 63 bytes, as PostgreSQL keeps)."""
    return f"tripsage-{operation} {os.getpid()}@{socket.gethostname()}"[:63]


async def read_holder(conn: AsyncConnection) -> Holder | None:
    """The current holder of the rebuild lock, or None."""
    row = (await conn.execute(HOLDER, {"namespace": LOCK_NAMESPACE, "key": LOCK_KEY})).first()
    if row is None:
        return None
    match = _NAME.match(row.application_name or "")
    if match is None:
        return Holder("rebuild", row.application_name or "unknown", None, row.backend_start, row.backend_pid)
    return Holder(match["operation"], match["host"], int(match["pid"]), row.backend_start, row.backend_pid)


@asynccontextmanager
async def exclusive(engine: AsyncEngine, operation: str) -> AsyncIterator[None]:
    """Hold the rebuild lock for the block, or raise `RebuildBusy` naming the holder.

    Args:
        engine: The database as the login role.
        operation: `rebuild` or `rollback` (shown to refused callers).

    Yields:
        Nothing; the lock is held until the block ends.
    """
    conn = await engine.connect()
    try:
        params = {"namespace": LOCK_NAMESPACE, "key": LOCK_KEY}
        got = (await conn.execute(TRY_LOCK, {**params, "name": application_name(operation)})).one().got
        await conn.commit()
        if not got:
            holder = await read_holder(conn)
            await conn.execute(RESET_NAME)
            await conn.commit()
            raise RebuildBusy(holder)
        try:
            yield
        finally:
            try:
                await conn.execute(UNLOCK, params)
                await conn.commit()
            except DBAPIError:
                # Never return a connection to the pool that might still hold the lock.
                log.warning("could not release the rebuild lock cleanly; discarding its connection")
                await conn.invalidate()
    finally:
        await conn.close()
