"""Telling a poison trip (its data breaks the build) from a transient failure, and isolating it.

A transient error (connection trouble, serialization failure, deadlock, a statement or lock timeout,
an idle-in-transaction timeout, resource exhaustion, server shutdown) says nothing about the trips:
the batch rolls back and the worker retries it with backoff; no trip is parked for it. Any other
database error in a rebuild is blamed on the data, and the batch is bisected in savepoints until the
failing trips are known, so one bad trip never holds back the others.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.trip_view import refresh_trips

log = logging.getLogger("tripsage.projections")

# SQLSTATEs (classes or codes) that say nothing about the trip: connection trouble (08), serialization
# failures and deadlocks (40), resource exhaustion (53), server shutdown (57P), system errors (58), a
# statement timeout or cancel (57014), a lock wait that timed out (55P03), an object in use (55006)
# and an idle-in-transaction timeout (25P03). The batch is retried whole; nobody is blamed: a lock
# held by someone else or a slow moment of the server is not the data's fault.
TRANSIENT_SQLSTATES = ("08", "40", "53", "57P", "58", "57014", "55P03", "55006", "25P03")


def _sqlstate(exc: DBAPIError) -> str:
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return str(state or "")


def is_poison(exc: DBAPIError) -> bool:
    """True when a rebuild error is the data's fault (retrying the same trip will fail again)."""
    if exc.connection_invalidated:
        return False
    state = _sqlstate(exc)
    return bool(state) and not state.startswith(TRANSIENT_SQLSTATES)


def describe(exc: DBAPIError) -> str:
    """A short, value-free description of a rebuild error for the dead-letter table."""
    orig = exc.orig
    message = str(getattr(orig, "__cause__", None) or orig or exc).strip().splitlines()
    first = message[0] if message else type(exc).__name__
    return f"{_sqlstate(exc) or 'error'}: {first}"[:500]


async def rebuild_isolating(conn: AsyncConnection, trip_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Rebuild `trip_ids`; on a poison error bisect in savepoints. Returns the failing trips."""
    try:
        async with conn.begin_nested():
            await refresh_trips(conn, trip_ids)
    except DBAPIError as exc:
        if not is_poison(exc):
            raise
        if len(trip_ids) == 1:
            log.warning("projection of trip %s failed: %s", trip_ids[0], describe(exc))
            return {trip_ids[0]: describe(exc)}
        middle = len(trip_ids) // 2
        failures = await rebuild_isolating(conn, trip_ids[:middle])
        failures.update(await rebuild_isolating(conn, trip_ids[middle:]))
        return failures
    return {}
