"""Poison trips: retried with exponential backoff, then parked as dead letters with their error.

A trip whose rebuild fails is taken out of the feed into `tripsage.dead_letters` (with the
transaction ids of the changes it swallowed, so their consistency tokens stay stale). The worker's
sweep retries it when `retry_at` is due; after `max_attempts` failures `retry_at` becomes NULL:
parked until an operator runs `tripsage projections retry-dead` or a later change to the trip
projects cleanly (any successful rebuild of a trip heals its dead letter).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how fast a failing trip is retried before it is parked."""

    max_attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failure: base, 2×base, 4×base… capped."""
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** max(attempts - 1, 0)))


DEFAULT_POLICY = RetryPolicy()

RECORD_FAILURES = text(
    """
INSERT INTO tripsage.dead_letters AS d (trip_id, xids, attempts, error, retry_at)
SELECT f.trip_id, CAST(f.xids AS xid8[]), 1, f.error,
       CASE WHEN CAST(:max_attempts AS integer) <= 1 THEN NULL
            ELSE now() + make_interval(secs => CAST(:base_delay AS double precision)) END
FROM jsonb_to_recordset(CAST(:failures AS jsonb)) AS f(trip_id uuid, error text, xids text[])
ON CONFLICT (trip_id) DO UPDATE SET
  attempts = d.attempts + 1,
  error = EXCLUDED.error,
  xids = (SELECT coalesce(array_agg(x ORDER BY x DESC), '{}') FROM (
            SELECT DISTINCT x FROM unnest(d.xids || EXCLUDED.xids) AS u(x) ORDER BY x DESC LIMIT 1000) k),
  last_failed_at = now(),
  retry_at = CASE WHEN d.attempts + 1 >= CAST(:max_attempts AS integer) THEN NULL
                  ELSE now() + make_interval(secs => least(CAST(:max_delay AS double precision),
                                                           CAST(:base_delay AS double precision) * 2 ^ d.attempts)) END
"""
)
"""Record failed trips: first failure → attempt 1, due after the base delay; later failures
increment attempts, keep the newest 1,000 xids and park the trip once attempts reach the limit."""

DUE = text("SELECT trip_id FROM tripsage.dead_letters WHERE retry_at <= now() ORDER BY retry_at, trip_id LIMIT :limit")
"""Candidates for a retry (read without locks; the caller re-checks under the trip locks)."""

CLAIM_DUE = text(
    """
SELECT trip_id, xids FROM tripsage.dead_letters
WHERE trip_id = ANY(CAST(:trip_ids AS uuid[])) AND retry_at <= now()
FOR UPDATE
"""
)
"""The candidates still due once the trip locks are held (another worker may have retried them)."""

RETRY_DEAD = text(
    """
UPDATE tripsage.dead_letters SET attempts = 0, retry_at = now()
WHERE retry_at IS NULL AND (CAST(:trip_id AS uuid) IS NULL OR trip_id = CAST(:trip_id AS uuid))
RETURNING trip_id
"""
)
"""Make parked trips due now with a fresh retry budget (all of them, or one)."""

LIST = text(
    """
SELECT trip_id, attempts, error, first_failed_at, last_failed_at, retry_at
FROM tripsage.dead_letters ORDER BY last_failed_at DESC, trip_id LIMIT :limit
"""
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A trip whose projection failed."""

    trip_id: uuid.UUID
    attempts: int
    error: str
    first_failed_at: datetime
    last_failed_at: datetime
    retry_at: datetime | None

    @property
    def parked(self) -> bool:
        """True once retries are exhausted (only an operator or a new change retries it)."""
        return self.retry_at is None


async def record_failures(
    conn: AsyncConnection,
    failures: Mapping[uuid.UUID, str],
    tokens: Mapping[uuid.UUID, set[int]],
    policy: RetryPolicy,
) -> None:
    """Move failed trips into the dead-letter table (same transaction as their feed rows' deletion).

    Args:
        conn: The apply transaction's connection.
        failures: Error text by failed trip.
        tokens: The transaction ids the failed changes came from, by trip.
        policy: The retry policy.
    """
    if not failures:
        return
    payload = [
        {"trip_id": str(trip_id), "error": error, "xids": [str(x) for x in sorted(tokens.get(trip_id, ()))]}
        for trip_id, error in failures.items()
    ]
    await conn.execute(
        RECORD_FAILURES,
        {
            "failures": orjson.dumps(payload).decode(),
            "max_attempts": policy.max_attempts,
            "base_delay": policy.base_delay_s,
            "max_delay": policy.max_delay_s,
        },
    )


async def list_dead_letters(conn: AsyncConnection, *, limit: int = 100) -> list[DeadLetter]:
    """The most recently failed trips, parked or awaiting a retry.

    Args:
        conn: Any connection (login role or service_role).
        limit: At most this many.

    Returns:
        The dead letters, newest failure first.
    """
    rows = await conn.execute(LIST, {"limit": limit})
    return [DeadLetter(*row) for row in rows]


async def retry_dead(engine: AsyncEngine, trip_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Re-queue parked trips: they become due for the worker's next sweep, with a fresh budget.

    Args:
        engine: The database (login role).
        trip_id: Only this trip, else every parked one.

    Returns:
        The trips re-queued.
    """
    async with engine.begin() as conn:
        rows = await conn.execute(RETRY_DEAD, {"trip_id": trip_id})
        return [row.trip_id for row in rows]
