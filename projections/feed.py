"""The change feed: claim a gap-free batch, expanding profile changes into trip changes.

Triggers write `tripsage.changes` rows in the writer's own transaction, stamped with its xid. A row
is claimed only when its xid is below `pg_snapshot_xmin(pg_current_snapshot())` (see `HORIZON`):
every transaction with a smaller xid has ended, so all of their rows are visible and a transaction
that started earlier but commits later can never be stepped over. Claiming deletes the rows; the deletion
commits with the read-model writes they cause, so the deletion *is* the checkpoint, and a batch
that rolls back leaves its rows for the next one. `FOR UPDATE SKIP LOCKED` splits the feed between
concurrent workers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

HORIZON = """
SELECT coalesce(
  (SELECT min(x) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
   WHERE xid(x) NOT IN (SELECT backend_xid FROM pg_stat_activity
                        WHERE datname <> current_database() AND backend_xid IS NOT NULL)),
  pg_snapshot_xmax(pg_current_snapshot()))
"""
"""The claim horizon: `pg_snapshot_xmin(pg_current_snapshot())` (the oldest transaction running in
the statement's snapshot), except that transactions positively seen running in *another* database
are skipped, since they cannot write this feed. Without that, any long writer anywhere on the server
(another application's database, a migration elsewhere) would stall the projection. A transaction
that cannot be placed (it just ended, a prepared transaction, no privilege to see it) still counts,
so the horizon is never later than what is safe."""

CLAIM = text(
    f"""
WITH horizon AS MATERIALIZED ({HORIZON}),
head AS MATERIALIZED (
  SELECT id, trip_id FROM tripsage.changes
  WHERE xid < (TABLE horizon)
  ORDER BY id
  LIMIT :limit
  FOR UPDATE SKIP LOCKED
),
rest AS MATERIALIZED (
  SELECT id FROM tripsage.changes
  WHERE trip_id IN (SELECT trip_id FROM head WHERE trip_id IS NOT NULL)
    AND xid < (TABLE horizon)
    AND id NOT IN (SELECT id FROM head)
  FOR UPDATE SKIP LOCKED
),
claimed AS (
  DELETE FROM tripsage.changes c
  WHERE c.id IN (SELECT id FROM head UNION ALL SELECT id FROM rest)
  RETURNING c.id, c.xid, c.trip_id, c.profile_id, c.origin_xid, c.fanout_after
),
fan AS MATERIALIZED (
  SELECT c.id AS change_id, c.profile_id, coalesce(c.origin_xid, c.xid) AS origin, f.trip_id
  FROM claimed c
  CROSS JOIN LATERAL (
    SELECT s.trip_id
    FROM (
      SELECT t.id AS trip_id FROM trips t WHERE t.owner_id = c.profile_id
      UNION
      SELECT tc.trip_id FROM trip_collaborators tc WHERE tc.user_id = c.profile_id
    ) s
    WHERE c.fanout_after IS NULL OR s.trip_id > c.fanout_after
    ORDER BY s.trip_id
    LIMIT :fanout_limit
  ) f
  WHERE c.profile_id IS NOT NULL
),
expanded AS (
  INSERT INTO tripsage.changes (trip_id, origin_xid)
  SELECT trip_id, origin FROM fan
  RETURNING 1
),
continued AS (
  INSERT INTO tripsage.changes (profile_id, origin_xid, fanout_after)
  SELECT profile_id, origin, (array_agg(trip_id ORDER BY trip_id DESC))[1]
  FROM fan
  GROUP BY change_id, profile_id, origin
  HAVING count(*) >= :fanout_limit
  RETURNING 1
)
SELECT coalesce(origin_xid, xid) AS token, trip_id, profile_id,
       (SELECT count(*) FROM expanded) AS fanned_out
FROM claimed
"""
)
"""Claim the first :limit claimable feed rows plus every other claimable row of the same trips (so a
trip changed many times costs one rebuild, however far apart its rows are), and expand the claimed
profile changes (up to :fanout_limit trips
per profile row, plus a continuation row when there are more) into trip rows carrying the origin xid."""


@dataclass(slots=True)
class Batch:
    """What one claim took from the feed."""

    rows: int = 0
    fanned_out: int = 0
    tokens: dict[uuid.UUID, set[int]] = field(default_factory=dict)

    @property
    def trip_ids(self) -> list[uuid.UUID]:
        """The distinct trips to rebuild, sorted (one rebuild each, however many rows named them)."""
        return sorted(self.tokens)


async def claim(conn: AsyncConnection, *, limit: int, fanout_limit: int) -> Batch:
    """Claim a batch of the feed inside the caller's transaction.

    Args:
        conn: A connection inside the apply transaction (login role).
        limit: At most this many feed rows.
        fanout_limit: At most this many trips expanded per profile change row.

    Returns:
        The batch: trips to rebuild with the transaction ids (tokens) that touched each.
    """
    result = await conn.execute(CLAIM, {"limit": limit, "fanout_limit": fanout_limit})
    return batch_from_rows(result.all())


def batch_from_rows(rows: Sequence[tuple[int, uuid.UUID | None, uuid.UUID | None, int]]) -> Batch:
    """Group claimed rows by trip (profile rows only count: their fan-out is already in the feed).

    Args:
        rows: `(token, trip_id, profile_id, fanned_out)` rows of `CLAIM`.

    Returns:
        The batch.
    """
    batch = Batch(rows=len(rows))
    for token, trip_id, _profile_id, fanned_out in rows:
        batch.fanned_out = int(fanned_out)
        if trip_id is not None:
            batch.tokens.setdefault(trip_id, set()).add(int(token))
    return batch
