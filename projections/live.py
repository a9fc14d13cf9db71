"""The projection's side of live updates: the position lock and the retention of removal tombstones.

Every document the projection changes and every removal (a trip deleted, a member who lost access)
gets a position from `tripsage.live_positions` in the batch's last statement (`apply.FINISH`). The
API streams them (`queries.live`) and replays them to a client that reconnects with
`Last-Event-ID`. Documents keep their latest position for as long as they exist; removal rows are
kept for `RETENTION_S` and then pruned here, recording the highest pruned position in
`tripsage.live_horizon`: a client resuming from below it is told to `reset`.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

LIVE_LOCK = 0x4C495645_0000_0001
"""The advisory-lock key (one bigint, apart from the trips' two-key space) that orders position stamping."""

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
