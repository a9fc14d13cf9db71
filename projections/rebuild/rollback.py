"""Rollback to the read tables the last rebuild replaced, and the single-trip repair.

`rollback` exchanges the live tables with the previous version that `rebuild` keeps in
`tripsage_prev`. Those tables stopped being maintained when they were replaced, so swapping them
back as they are would resurrect deleted trips, give unshared users their access back and answer
`fresh` to consistency tokens of writes they never saw. So the previous tables are caught up first:

1. **Outside any lock**, in rounds of `batch_size`: every trip whose previous row lags the live
   one (missing on either side, another version or member list, the live document rewritten since
   the tables parted, or, when both have the same definition, another ETag) is rebuilt into the
   previous tables from the write model, under the trip's advisory lock like any projection write.
2. **The swap** (one transaction, the same exclusive lock and short lock waits as a switch): the
   lagging trips are computed again; if more than `max_switch_trips` lag (writes outran the
   catch-up), the lock is let go at once and step 1 runs again; else they are rebuilt into the
   previous tables, which then go live. Changes not yet projected into the live tables are still in
   the change feed and reach the restored tables through the worker, as after a switch.

Documents rebuilt this way get the shape of the current code's builder: roll the code back first
when the definition is what you are undoing, and only the trips changed since the switch are
rebuilt. Trips that cannot be projected keep their previous document, with their access narrowed
to the write model (`projections.access`). The comparison scans both tables (under the lock too):
about a second per million trips. Running `rollback` again swaps forward the same way.

`rebuild_trip` (`rebuild --trip ID`) rebuilds one trip's live rows at once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections import trip_view
from projections.access import narrow_access
from projections.live import forget_unnumbered_removals, number_incoming_rows, number_rebuilt_trip
from projections.locks import lock_trips
from projections.poison import rebuild_isolating
from projections.rebuild import shadow
from projections.rebuild.lock import exclusive
from projections.rebuild.run import PROJECTIONS, RebuildError, RebuildOptions, lock_timeout_ms, retrying, stop_capture
from projections.rebuild.state import abandon_run, find_run

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
LAGGING = text(
    """
SELECT coalesce(l.trip_id, p.trip_id) AS trip_id
FROM public.trip_views l
FULL JOIN tripsage_prev.trip_views p ON p.trip_id = l.trip_id
CROSS JOIN (
  SELECT switched_at, definition_version IS NOT DISTINCT FROM previous_version AS same_definition
  FROM tripsage.projection_versions WHERE projection = :projection
) v
WHERE l.trip_id IS NULL OR p.trip_id IS NULL
   OR l.version <> p.version OR l.member_ids <> p.member_ids
   OR l.projected_at > greatest(p.projected_at, v.switched_at)
   OR (v.same_definition AND l.etag <> p.etag)
ORDER BY 1
LIMIT :limit
"""
)
"""Trips whose previous row lags the live one (see the module docstring), at most :limit."""

UNNUMBER_DIFFERENT = text(
    """
UPDATE tripsage_prev.trip_views p SET position = NULL
WHERE p.position IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM public.trip_views l WHERE l.trip_id = p.trip_id AND l.doc = p.doc AND l.member_ids = p.member_ids)
"""
)
"""Previous rows that differ from the live ones lose their old position (the swap numbers them anew)."""

PREVIOUS_PATH = text("SELECT set_config('search_path', 'tripsage_prev, public', true)")
"""Unqualified read tables are the previous ones for the rest of the transaction (`shadow.refresh_shadow`'s trick)."""

DELETE_LIVE = text("DELETE FROM trip_views WHERE trip_id = :trip_id RETURNING member_ids")
HAS_LIVE = text("SELECT EXISTS (SELECT 1 FROM trip_views WHERE trip_id = :trip_id)")


@dataclass(frozen=True, slots=True)
class RollbackResult:
    """What a rollback did."""

    definition: str
    previous: str
    caught_up: int
    under_lock: int


class _Behind(Exception):
    """More lagging trips than the swap may rebuild under its lock."""


async def _catch_up_previous(conn: AsyncConnection, trip_ids: list[uuid.UUID], *, trip_locks: bool) -> None:
    """Rebuild `trip_ids` into the previous tables (caller's transaction), narrowing what cannot be built.

    Outside the swap the trips' advisory locks order this write with the worker's (whoever goes
    second sees the later state). Inside the swap they are not taken: the worker cannot write the
    live tables we hold, and waiting for a trip lock it holds while it waits for our table lock
    would be a deadlock.
    """
    if trip_locks:
        await lock_trips(conn, trip_ids)
    await conn.execute(PREVIOUS_PATH)
    failures = await rebuild_isolating(conn, trip_ids)
    await forget_unnumbered_removals(conn, trip_ids)  # relative to the previous tables: no subscriber saw them
    if failures:
        log.warning("rollback: %d trip(s) cannot be projected; their access is narrowed instead", len(failures))
        await narrow_access(conn, sorted(failures))


async def _catch_up_rounds(engine: AsyncEngine, projection: str, options: RebuildOptions) -> int:
    """Step 1 of the module docstring: rounds until at most `max_switch_trips` trips lag."""
    caught = 0
    for _ in range(options.catch_up_batches):
        async with engine.begin() as conn:
            lagging = list((await conn.scalars(LAGGING, {"projection": projection, "limit": options.batch_size})).all())
            if lagging:
                await _catch_up_previous(conn, lagging, trip_locks=True)
        caught += len(lagging)
        if len(lagging) < options.batch_size:
            break
    return caught


async def rollback(
    engine: AsyncEngine, *, projection: str = trip_view.NAME, options: RebuildOptions | None = None
) -> RollbackResult:
    """Catch the previous tables up and swap them live (see the module docstring).

    An interrupted rebuild is abandoned first. Running it again swaps back.

    Args:
        engine: The database as the login role.
        projection: Which projection.
        options: Catch-up batches, the bound on trips rebuilt under the lock, lock waits.

    Returns:
        The definition now live, the one kept as previous, trips caught up before and under the lock.

    Raises:
        RebuildBusy: A rebuild or rollback is running.
        RebuildError: No previous version is kept, unknown projection, or the tables stayed busy.
    """
    if projection not in PROJECTIONS:
        raise RebuildError(f"unknown projection {projection!r} (known: {', '.join(PROJECTIONS)})")
    options = options or RebuildOptions()
    async with exclusive(engine, "rollback"):
        async with engine.begin() as conn:
            if not await conn.scalar(shadow.HAS_PREVIOUS):
                raise RebuildError("nothing to roll back to: no previous version is kept (no rebuild switched yet)")
            run = await find_run(conn, projection)
            if run is not None:
                log.warning("abandoning interrupted rebuild #%d for the rollback", run.id)
                await abandon_run(conn, run.id)
                await conn.execute(shadow.DROP_SHADOW)
        if run is not None:
            await stop_capture(engine, options)
        caught = await _catch_up_rounds(engine, projection, options)

        async def swap() -> RollbackResult:
            async with engine.begin() as conn:
                await shadow.lock_live(conn, lock_timeout_ms(options))
                limit = {"projection": projection, "limit": options.max_switch_trips + 1}
                lagging = list((await conn.scalars(LAGGING, limit)).all())
                if len(lagging) > options.max_switch_trips:
                    raise _Behind
                if lagging:
                    await _catch_up_previous(conn, lagging, trip_locks=False)
                await conn.execute(UNNUMBER_DIFFERENT)  # live updates: what the swap changes gets a position
                await number_incoming_rows(conn, shadow.PREVIOUS)
                await conn.execute(shadow.DROP_SHADOW)  # the swap passes through the (empty) shadow schema
                await shadow.run_statements(conn, shadow.SWAP_BACK)
                row = (await conn.execute(SWAP_VERSIONS, {"projection": projection})).one()
                await conn.execute(MARK_SWAPPED, {"leaving": row.previous_rebuild_id, "entering": row.rebuild_id})
                return RollbackResult(row.definition_version, row.previous_version, caught, len(lagging))

        for _ in range(options.lock_attempts):
            try:
                return await retrying(swap, options, "rollback")
            except _Behind:
                log.info("rollback: writes outran the catch-up; catching up again before the swap")
                caught += await _catch_up_rounds(engine, projection, options)
        raise RebuildError(
            f"rollback: writes kept changing more than {options.max_switch_trips} trips between the catch-up and"
            " the swap; nothing was swapped. Run it again when writes are calmer."
        )


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
        before = (await conn.scalars(DELETE_LIVE, {"trip_id": trip_id})).all()
        await trip_view.refresh_trips(conn, [trip_id])
        await number_rebuilt_trip(conn, trip_id, before[0] if before else [])
        return bool(await conn.scalar(HAS_LIVE, {"trip_id": trip_id}))
