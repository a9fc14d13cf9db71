"""Zero-downtime rebuild of the trip read model: shadow build, catch-up, atomic switch, rollback.

Phases of `rebuild` (under the exclusive rebuild lock, see `projections.rebuild.lock`):

1. **Start** (one transaction): empty shadow copies of the read tables (`projections.rebuild.shadow`), a
   `tripsage.rebuilds` row with the trip-id space split into `concurrency` parts, and the capture
   trigger on the change feed. From its commit on, every trip whose write-model data changes is
   recorded in `tripsage.rebuild_dirty`, by the writer's own transaction.
2. **Build**: each part walks its id range in keyset order; a batch is one transaction that builds
   up to `batch_size` trips into the shadow with the worker's statement and moves the part's cursor.
   Killed at any point, the next run continues after the last committed batch of every part.
3. **Catch-up**: trips captured during the build are rebuilt into the shadow, outside any lock,
   until few remain (`projections.rebuild.switch`).
4. **Switch** (one transaction): `LOCK TABLE` the live tables (queries and the worker wait a
   moment), rebuild the trips still captured if they are at most `max_switch_trips` (else let go,
   catch up again and retry), move the live tables to `tripsage_prev` (dropping the version kept
   before) and the copies to `public`, record the switch and the definition version. Queries see
   the old complete tables until the commit, the new complete ones after it.
5. **Stop capture**: drop the trigger (outside the switch, so the lock order stays the worker's:
   feed first, read tables second) and clear the captured ids.

Why nothing written during the rebuild is lost: a change either committed before capture began (so
every batch, built later, sees it) or is captured. A captured change that committed before the
switch's catch-up statement is in the new tables; one that committed after it still has its row in
the change feed, because the worker can only consume a feed row in the same transaction as it writes
the live tables, which the switch holds locked. So the worker applies it to the new tables.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import trip_view
from projections.rebuild import shadow
from projections.rebuild.lock import exclusive
from projections.rebuild.options import (
    ProgressHook,
    RebuildError,
    RebuildOptions,
    lock_timeout,
    lock_timeout_ms,
    retrying,
)
from projections.rebuild.state import (
    Part,
    Run,
    abandon_run,
    advance,
    definition_version,
    find_run,
    resume_run,
    start_run,
)
from projections.rebuild.switch import DefinitionChanged, switch

__all__ = [
    "PROJECTIONS",
    "RebuildError",
    "RebuildOptions",
    "RebuildResult",
    "lock_timeout_ms",
    "rebuild",
    "retrying",
    "stop_capture",
]

log = logging.getLogger("tripsage.rebuild")

PROJECTIONS = (trip_view.NAME,)
"""Projections that can be rebuilt."""

COUNT_TRIPS = text("SELECT count(*) FROM trips")
SAVE_STATEMENT_TIMEOUT = text("SELECT current_setting('statement_timeout')")
SET_STATEMENT_TIMEOUT = text("SELECT set_config('statement_timeout', :value, false)")


@dataclass(frozen=True, slots=True)
class RebuildResult:  # pylint: disable=too-many-instance-attributes  # one field per reported figure
    """What a rebuild did."""

    rebuild_id: int
    rows: int
    built: int
    resumed_from: int
    caught_up: int
    seconds: float
    under_lock: int = 0
    switch_attempts: int = 1
    lock_ms: float = 0.0

    @property
    def rows_per_s(self) -> float:
        """Trips built by this run per second of it."""
        return (self.built + self.caught_up) / self.seconds if self.seconds > 0 else 0.0


async def _start_or_resume(engine: AsyncEngine, projection: str, options: RebuildOptions) -> Run:
    async with engine.begin() as conn:
        run = await find_run(conn, projection)
        capturing = bool(await conn.scalar(shadow.CAPTURING))
        if run is not None:
            if run.definition_version == definition_version() and capturing:
                await resume_run(conn, run)
                log.info("resuming rebuild #%d after %d trips", run.id, run.rows_done)
                return run
            why = "the definition changed" if capturing else "its change capture was removed"
            log.warning("abandoning interrupted rebuild #%d: %s; starting over", run.id, why)
            await abandon_run(conn, run.id)
            await conn.execute(shadow.DROP_SHADOW)

    async def start() -> Run:
        async with engine.begin() as conn:
            await conn.execute(shadow.CLEAR_DIRTY)
            await shadow.run_statements(conn, [shadow.PREPARE])
            new = await start_run(conn, projection=projection, batch_size=options.batch_size, parts=options.concurrency)
            await conn.execute(shadow.LOCK_TIMEOUT, lock_timeout(options))
            await conn.execute(shadow.CAPTURE_ON)
            return new

    run = await retrying(start, options, "start")
    log.info("rebuild #%d started: %d parts, batches of %d", run.id, len(run.parts), run.batch_size)
    return run


async def _build_batch(engine: AsyncEngine, run: Run, part: Part) -> int:
    """Build the next keyset batch of `part` into the shadow and move its cursor, in one transaction."""
    async with engine.begin() as conn:
        params = {"lo": part.next_from, "hi": part.hi, "limit": run.batch_size}
        ids: list[uuid.UUID] = list((await conn.scalars(shadow.NEXT_IDS, params)).all())
        if ids:
            await shadow.refresh_shadow(conn, ids)
        last = ids[-1] if ids else part.last_trip_id
        done = len(ids) < run.batch_size or last == part.hi
        await advance(conn, run.id, part, last, len(ids), done=done)
    part.last_trip_id, part.rows, part.done = last, part.rows + len(ids), done
    return len(ids)


async def _build(engine: AsyncEngine, run: Run, options: RebuildOptions, progress: ProgressHook) -> int:
    """Build every unfinished part, `concurrency` at a time; returns trips built by this run."""
    async with engine.connect() as conn:
        total = max(int(await conn.scalar(COUNT_TRIPS) or 0), run.rows_done)
    pending = [part for part in run.parts if not part.done]
    queue = list(reversed(pending))
    built = 0
    progress("build", run.rows_done, total)

    async def work() -> None:
        nonlocal built
        while queue:
            part = queue.pop()
            while not part.done:
                count = await _build_batch(engine, run, part)
                built += count
                progress("build", run.rows_done, max(total, run.rows_done))
                if options.pause_s:
                    await asyncio.sleep(options.pause_s)

    tasks = [asyncio.create_task(work()) for _ in range(max(1, min(options.concurrency, len(pending))))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return built


async def _analyze(engine: AsyncEngine) -> None:
    """Statistics (and the members' visibility map, for index-only list scans) before going live."""
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        # No statement timeout for VACUUM (its time grows with the table); restored for the pool.
        saved = str(await auto.scalar(SAVE_STATEMENT_TIMEOUT))
        await auto.execute(SET_STATEMENT_TIMEOUT, {"value": "0"})
        try:
            await auto.execute(text("VACUUM (ANALYZE) tripsage_rebuild.trip_view_members"))
            await auto.execute(text("ANALYZE tripsage_rebuild.trip_views"))
        finally:
            await auto.execute(SET_STATEMENT_TIMEOUT, {"value": saved})


async def stop_capture(engine: AsyncEngine, options: RebuildOptions) -> None:
    """Drop the change-capture trigger and clear the captured ids (a transaction of its own)."""

    async def stop() -> None:
        async with engine.begin() as conn:
            await conn.execute(shadow.LOCK_TIMEOUT, lock_timeout(options))
            await conn.execute(shadow.CAPTURE_OFF)
            await conn.execute(shadow.CLEAR_DIRTY)

    try:
        await retrying(stop, options, "stop capture")
    except (DBAPIError, RebuildError):
        # Harmless: with no rebuild building, the trigger records nothing; the next run replaces it.
        log.warning("could not drop the change-capture trigger now; the next rebuild will", exc_info=True)


async def rebuild(
    engine: AsyncEngine,
    *,
    projection: str = trip_view.NAME,
    options: RebuildOptions | None = None,
    on_progress: ProgressHook | None = None,
) -> RebuildResult:
    """Rebuild a projection's read tables without downtime (resuming an interrupted run).

    Args:
        engine: The database as the login role, with a pool of at least `concurrency + 2`.
        projection: Which projection (`trip_views`).
        options: Batch size, concurrency, pauses, lock waits.
        on_progress: Progress callback `(phase, done, total)`.

    Returns:
        What was built and how fast.

    Raises:
        RebuildBusy: Another rebuild or rollback is running (named in the exception).
        RebuildError: Unknown projection.
    """
    if projection not in PROJECTIONS:
        raise RebuildError(f"unknown projection {projection!r} (known: {', '.join(PROJECTIONS)})")
    options = options or RebuildOptions()
    progress: ProgressHook = on_progress or (lambda _phase, _done, _total: None)
    async with exclusive(engine, "rebuild"):
        run = await _start_or_resume(engine, projection, options)
        started = time.monotonic()
        resumed_from = run.rows_done
        built = await _build(engine, run, options, progress)
        await _analyze(engine)
        progress("switch", 0, 1)

        try:
            done = await switch(engine, run, options, progress, started=started, built=built)
        except DefinitionChanged:
            async with engine.begin() as conn:
                await abandon_run(conn, run.id)
                await conn.execute(shadow.DROP_SHADOW)
            await stop_capture(engine, options)
            raise RebuildError(
                "the live read tables changed during the rebuild (a migration?); the copy no longer matches"
                " them and was dropped: run the rebuild again"
            ) from None
        seconds = time.monotonic() - started
        progress("switch", 1, 1)
        await stop_capture(engine, options)
    log.info(
        "rebuild #%d switched: %d trips live (%.1f s; %d trips refreshed under the switch lock, held %.0f ms)",
        run.id,
        done.rows,
        seconds,
        done.under_lock,
        done.lock_ms,
    )
    return RebuildResult(
        run.id,
        done.rows,
        built,
        resumed_from,
        done.caught_up + done.under_lock,
        seconds,
        under_lock=done.under_lock,
        switch_attempts=done.attempts,
        lock_ms=done.lock_ms,
    )
