"""The projection's side of live updates: the position lock and the retention of removal tombstones.

Every document the projection changes and every removal (a trip deleted, a member who lost access)
gets a position from `tripsage.live_positions` in the batch's last statement (`apply.FINISH`). The
API streams them (`queries.live`) and replays them to a client that reconnects with
`Last-Event-ID`. Documents keep their latest position for as long as they exist; removal rows are
kept for `RETENTION_S` and then pruned here, recording the highest pruned position in
`tripsage.live_horizon`: a client resuming from below it is told to `reset`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

LIVE_LOCK = 0x4C495645_0000_0001
"""The advisory-lock key (one bigint, apart from the trips' two-key space) that orders position stamping."""

CHANNEL = "tripsage_projection"
"""The projection's NOTIFY channel: a batch's (or a rebuild's) highest position (`queries.consistency` listens)."""

RETENTION_S = 24 * 3600
"""How long removals stay replayable (README: the resume window)."""

PRUNE = text(
    """
WITH pruned AS (
  DELETE FROM tripsage.live_removals
  WHERE removed_at < clock_timestamp() - make_interval(secs => :retention_s)
  RETURNING position
)
UPDATE tripsage.live_horizon h
SET pruned_through = greatest(h.pruned_through, (SELECT max(position) FROM pruned))
WHERE (SELECT max(position) FROM pruned) IS NOT NULL
RETURNING h.pruned_through
"""
)
"""Delete removals older than the retention and raise the resume horizon to the highest one deleted."""


async def prune_removals(engine: AsyncEngine, *, retention_s: float = RETENTION_S) -> int | None:
    """Prune removal tombstones older than `retention_s` (the worker runs it every hour).

    Args:
        engine: The database, as the login role.
        retention_s: Keep removals younger than this many seconds.

    Returns:
        The new resume horizon (positions below it answer `reset`), or None when nothing was pruned.
    """
    async with engine.begin() as conn:
        horizon = await conn.scalar(PRUNE, {"retention_s": retention_s})
    return None if horizon is None else int(horizon)


# --- Documents a rebuild puts live (`projections.rebuild`): numbered like the worker's -------------
#
# A rebuild writes documents the worker did not: the copy that its switch puts live, and the one
# trip that `rebuild --trip` rebuilds from scratch. Each of them gets a position in the same
# sequence, under the same lock, in the transaction that makes it visible; a document equal to the
# live one keeps the live one's position (its subscribers have it already), and a user who could
# see a trip in the live tables and cannot in the incoming ones gets a removal.

FORGET_UNNUMBERED = text(
    "DELETE FROM tripsage.live_removals WHERE position IS NULL AND trip_id = ANY(CAST(:trip_ids AS uuid[]))"
)
"""Drop the removal rows a refresh of a rebuild's copy wrote (relative to the copy, which no subscriber
has seen; the worker's own are numbered in the transaction that wrote them, so none is committed)."""


def carry_positions(incoming: str) -> str:
    """SQL: unnumbered rows of `incoming`.trip_views equal to the live row (document and members) take its position.

    Run outside the switch's lock (it visits every row of the copy); a row it numbers can only lose
    the number again through a refresh (which writes a different document and sets it NULL).
    """
    return f"""
UPDATE {incoming}.trip_views s SET position = l.position
FROM public.trip_views l
WHERE s.position IS NULL AND l.trip_id = s.trip_id AND l.position IS NOT NULL
  AND l.doc = s.doc AND l.member_ids = s.member_ids
"""


def number_incoming(incoming: str) -> str:
    """SQL: number the unnumbered rows of `incoming`.trip_views and the removals they imply, then notify.

    Run under the switch's lock, just before the tables move: the rows still unnumbered (found by
    `trip_views_unnumbered_idx`, migration 0011) are the ones the carry could not match. Removals:
    every member of a live trip that is absent from the incoming tables, or whose incoming row was
    renumbered, who is not among the incoming row's members.
    """
    return f"""
WITH gate AS MATERIALIZED (SELECT pg_advisory_xact_lock(CAST(:live_lock AS bigint)) AS held),
numbered AS (
  UPDATE {incoming}.trip_views s SET position = coalesce(
    (SELECT l.position FROM public.trip_views l
     WHERE l.trip_id = s.trip_id AND l.doc = s.doc AND l.member_ids = s.member_ids),
    nextval('tripsage.live_positions'))
  FROM gate WHERE s.position IS NULL
  RETURNING s.trip_id, s.position
),
candidates AS MATERIALIZED (
  SELECT l.trip_id, l.member_ids FROM public.trip_views l
  WHERE l.trip_id IN (SELECT trip_id FROM numbered)
     OR NOT EXISTS (SELECT 1 FROM {incoming}.trip_views s WHERE s.trip_id = l.trip_id)
),
removed AS (
  INSERT INTO tripsage.live_removals (position, trip_id, user_id)
  SELECT nextval('tripsage.live_positions'), c.trip_id, m.user_id
  FROM gate, candidates c CROSS JOIN LATERAL unnest(c.member_ids) AS m(user_id)
  WHERE NOT EXISTS (SELECT 1 FROM {incoming}.trip_views s
                    WHERE s.trip_id = c.trip_id AND m.user_id = ANY (s.member_ids))
  RETURNING position
)
SELECT pg_notify(:channel, CAST(coalesce(
  greatest((SELECT max(position) FROM numbered), (SELECT max(position) FROM removed)), 0) AS text))
"""


NUMBER_REBUILT_TRIP = text(
    """
WITH gate AS MATERIALIZED (SELECT pg_advisory_xact_lock(CAST(:live_lock AS bigint)) AS held),
numbered AS (
  UPDATE trip_views v SET position = nextval('tripsage.live_positions')
  FROM gate WHERE v.trip_id = :trip_id AND v.position IS NULL
  RETURNING v.position, v.member_ids
),
removed AS (
  INSERT INTO tripsage.live_removals (position, trip_id, user_id)
  SELECT nextval('tripsage.live_positions'), :trip_id, b.user_id
  FROM gate, unnest(CAST(:before AS uuid[])) AS b(user_id)
  WHERE NOT EXISTS (SELECT 1 FROM trip_views v WHERE v.trip_id = :trip_id AND b.user_id = ANY (v.member_ids))
  RETURNING position
)
SELECT pg_notify(:channel, CAST(coalesce(
  greatest((SELECT max(position) FROM numbered), (SELECT max(position) FROM removed)), 0) AS text))
"""
)
"""`rebuild --trip` deleted the trip's document (its members were :before) and rebuilt it: number
the new document and a removal for each former member it no longer names, then notify."""


async def forget_unnumbered_removals(conn: AsyncConnection, trip_ids: Sequence[uuid.UUID]) -> None:
    """After a refresh of a rebuild's copy: drop the removal rows it wrote (see `FORGET_UNNUMBERED`)."""
    await conn.execute(FORGET_UNNUMBERED, {"trip_ids": list(trip_ids)})


async def carry_live_positions(conn: AsyncConnection, incoming: str) -> int:
    """Give the copy's rows equal to the live ones the live positions (`carry_positions`); returns rows."""
    result = await conn.execute(text(carry_positions(incoming)))
    return int(result.rowcount or 0)


async def number_incoming_rows(conn: AsyncConnection, incoming: str) -> None:
    """Number what a switch is about to put live (`number_incoming`), in the switch's transaction."""
    await conn.execute(text(number_incoming(incoming)), {"live_lock": LIVE_LOCK, "channel": CHANNEL})


async def number_rebuilt_trip(conn: AsyncConnection, trip_id: uuid.UUID, before: Sequence[uuid.UUID]) -> None:
    """Number one trip rebuilt from scratch (`NUMBER_REBUILT_TRIP`), in the rebuild's transaction."""
    params = {"trip_id": trip_id, "before": list(before), "live_lock": LIVE_LOCK, "channel": CHANNEL}
    await conn.execute(NUMBER_REBUILT_TRIP, params)
