"""Rollback to the read tables the last rebuild replaced, and the single-trip repair.

`rollback` exchanges the live tables with the previous version that `rebuild` keeps in
`tripsage_prev` (one transaction, under the same exclusive lock and with the same short lock waits
as a switch), then queues every trip in the change feed in that transaction: the restored tables
stopped being maintained when they were replaced, and the worker re-derives every trip from the
write model (documents it rewrites get the shape of the worker's current code, so roll the code
back too when the definition is what you are undoing). Running it again swaps forward.

`rebuild_trip` (`rebuild --trip ID`) rebuilds one trip's live rows at once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import shadow, trip_view
from projections.locks import lock_trips
from projections.rebuild import PROJECTIONS, RebuildError, RebuildOptions, lock_timeout_ms, retrying, stop_capture
from projections.rebuild_lock import exclusive
from projections.rebuild_state import abandon_run, find_run

log = logging.getLogger("tripsage.rebuild")

SWAP_VERSIONS = text(
    """
UPDATE tripsage.projection_versions SET
  definition_version = coalesce(previous_version, 'unknown'), previous_version = definition_version,
  rebuild_id = previous_rebuild_id, previous_rebuild_id = rebuild_id, switched_at = clock_timestamp()
WHERE projection = :projection
RETURNING definition_version, previous_version, rebuild_id, previous_rebuild_id
"""
)
MARK_SWAPPED = text(
    """
UPDATE tripsage.rebuilds SET state = CASE WHEN id = :leaving THEN 'rolled_back' ELSE 'switched' END
WHERE id IN (:leaving, :entering) AND state IN ('switched', 'rolled_back')
"""
)
ENQUEUE_ALL = text("INSERT INTO tripsage.changes (trip_id) SELECT id FROM trips")
"""Every trip into the change feed: the worker re-derives what changed since the tables parted."""

DELETE_LIVE = text("DELETE FROM trip_views WHERE trip_id = :trip_id")
HAS_LIVE = text("SELECT EXISTS (SELECT 1 FROM trip_views WHERE trip_id = :trip_id)")


@dataclass(frozen=True, slots=True)
class RollbackResult:
    """What a rollback did."""

    definition: str
    previous: str
    queued: int


async def rollback(
    engine: AsyncEngine, *, projection: str = trip_view.NAME, options: RebuildOptions | None = None
) -> RollbackResult:
    """Swap the live read tables with the previous version kept by the last rebuild.

    The swap is one transaction; then every trip is queued in the change feed, in the same
    transaction, so the worker brings the restored tables up to date with everything written since
    they were replaced (with the worker's current code). An interrupted rebuild is abandoned first.
    Running it again swaps back.

    Args:
        engine: The database as the login role.
        projection: Which projection.
        options: Lock waits.

    Returns:
        The definition now live, the one kept as previous, and how many trips were queued.

    Raises:
        RebuildBusy: A rebuild or rollback is running.
        RebuildError: No previous version is kept, or unknown projection.
    """
    if projection not in PROJECTIONS:
        raise RebuildError(f"unknown projection {projection!r} (known: {', '.join(PROJECTIONS)})")
    options = options or RebuildOptions()
    async with exclusive(engine, "rollback"):
        async with engine.begin() as conn:
            run = await find_run(conn, projection)
            if run is not None:
                log.warning("abandoning interrupted rebuild #%d for the rollback", run.id)
                await abandon_run(conn, run.id)
                await conn.execute(shadow.DROP_SHADOW)
        if run is not None:
            await stop_capture(engine, options)

        async def swap() -> RollbackResult:
            async with engine.begin() as conn:
                await shadow.lock_live(conn, lock_timeout_ms(options))
                if not await conn.scalar(shadow.HAS_PREVIOUS):
                    raise RebuildError("nothing to roll back to: no previous version is kept (no rebuild switched yet)")
                await conn.execute(shadow.DROP_SHADOW)  # the swap passes through the (empty) shadow schema
                await shadow.run_statements(conn, shadow.SWAP_BACK)
                row = (await conn.execute(SWAP_VERSIONS, {"projection": projection})).one()
                await conn.execute(MARK_SWAPPED, {"leaving": row.previous_rebuild_id, "entering": row.rebuild_id})
                queued = (await conn.execute(ENQUEUE_ALL)).rowcount
                return RollbackResult(row.definition_version, row.previous_version, queued)

        return await retrying(swap, options, "rollback")


async def rebuild_trip(engine: AsyncEngine, trip_id: uuid.UUID) -> bool:
    """Rebuild one trip's live document and member rows at once, from scratch (a repair).

    The row is deleted and rebuilt in one transaction under the trip's lock (as the worker takes
    it), so even a document corrupted to a higher version is replaced; readers see the old row
    until the commit. No other trip is touched.

    Args:
        engine: The database as the login role.
        trip_id: The trip.

    Returns:
        Whether the trip has a document now (False: the trip does not exist; any document is gone).
    """
    async with engine.begin() as conn:
        await lock_trips(conn, [trip_id])
        await conn.execute(DELETE_LIVE, {"trip_id": trip_id})
        await trip_view.refresh_trips(conn, [trip_id])
        return bool(await conn.scalar(HAS_LIVE, {"trip_id": trip_id}))
