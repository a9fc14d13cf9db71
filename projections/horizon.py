"""Who holds the feed horizon: the oldest open transaction that keeps the projector from reading on.

The projector claims only feed rows below the oldest transaction id still running in this database
(`projections.feed.HORIZON`), so that a transaction that began earlier but commits later is never
stepped over. The price: one writer left open (`idle in transaction`, a forgotten `psql` session, a
long migration) holds back every change committed after it began, and every projection stalls
with no error anywhere. This module names that transaction so that `tripsage projections status`,
`GET /api/admin/projections`, `/metrics` and `/readyz` can show it.

Only transactions that have an xid (they wrote something) hold the horizon; a read-only
transaction does not. A transaction's age is measured from its `xact_start`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("tripsage.projections")

REPORT_AFTER_S = 5.0
"""A transaction holding the horizon is reported (status, `/readyz`) once it is this old: shorter
ones are ordinary commands and batches."""

OLDEST_HOLDER = """
SELECT a.pid, a.state, a.application_name,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS age_seconds
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
ORDER BY age(a.backend_xid) DESC
LIMIT 1
"""
"""The oldest transaction of this database that has an xid (so holds the feed horizon), if any."""

READ_HOLDER = text(OLDEST_HOLDER)


@dataclass(frozen=True, slots=True)
class HorizonHolder:
    """The open transaction holding the feed horizon back."""

    pid: int
    state: str | None
    application_name: str | None
    age_seconds: float

    @property
    def reportable(self) -> bool:
        """Old enough to be worth an operator's attention (see `REPORT_AFTER_S`)."""
        return self.age_seconds >= REPORT_AFTER_S

    def describe(self) -> str:
        """`held for 42 s by server pid 123 (idle in transaction, application 'psql')…`."""
        return (
            f"held for {self.age_seconds:.0f} s by server pid {self.pid} ({self.state or 'unknown state'},"
            f" application {self.application_name or '?'!r}): changes committed since it began are not"
            f" projected until it ends (pg_terminate_backend({self.pid}) ends it)"
        )

    def to_json(self) -> dict[str, object]:
        """The holder as JSON-ready data."""
        return {
            "pid": self.pid,
            "state": self.state,
            "application_name": self.application_name,
            "age_seconds": round(self.age_seconds, 3),
        }


def holder_from(
    pid: int | None, state: str | None, application_name: str | None, age: float | None
) -> HorizonHolder | None:
    """A holder from the columns of `OLDEST_HOLDER` (None when no transaction holds an xid)."""
    if pid is None:
        return None
    return HorizonHolder(int(pid), state, application_name, max(float(age or 0.0), 0.0))


async def horizon_note(engine: AsyncEngine, *, timeout_s: float = 2.0) -> str | None:
    """The `/readyz` note when an old transaction holds the feed horizon, else None.

    Informational: the API is not at fault, so readiness stays 200. A database that does not answer
    gives no note (the database check reports it).
    """
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            row = (await conn.execute(READ_HOLDER)).first()
    except (SQLAlchemyError, OSError, TimeoutError):
        log.debug("no feed horizon note for /readyz", exc_info=True)
        return None
    holder = None if row is None else holder_from(row.pid, row.state, row.application_name, row.age_seconds)
    if holder is None or not holder.reportable:
        return None
    return f"projections stalled: the change feed horizon is {holder.describe()}"
