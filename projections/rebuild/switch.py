"""The end of a rebuild: catch up outside any lock, then switch under a short, bounded lock.

Writes go on while a rebuild builds; every trip they touch is captured (`tripsage.rebuild_dirty`)
and must be rebuilt into the copy before it goes live. Catch-up rounds do that in batches, outside
any lock, until few remain (`RebuildOptions.catch_up_until`). The switch then locks the live read
tables exclusively (readers and the worker wait), counts what is still captured and refreshes it
only if that is at most `RebuildOptions.max_switch_trips`; if writes outran the catch-up, it lets
go of the lock at once, catches up outside it again and retries. Each attempt waits for the locks
at most `lock_timeout_s`; after `lock_attempts` attempts the rebuild fails with a clear message and
nothing switched (the copy and the capture stay: the next run resumes).

So the exclusive lock is held for one refresh of at most `max_switch_trips` trips (500 by
default: one batch, tens of milliseconds) plus the table moves, never for an unbounded set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.live import carry_live_positions, number_incoming_rows
from projections.rebuild import shadow
from projections.rebuild.options import (
    RETRYABLE,
    ProgressHook,
    RebuildError,
    RebuildOptions,
    backoff,
    busy_error,
    lock_timeout_ms,
    sqlstate,
)
from projections.rebuild.state import Run, record_switch

log = logging.getLogger("tripsage.rebuild")


class DefinitionChanged(Exception):
    """The live tables' definition no longer matches the copy (checked under the switch's locks)."""


class _TooDirty(Exception):
    """More captured trips than the switch may refresh under its lock."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


@dataclass(frozen=True, slots=True)
class Switched:
    """What the switch did."""

    rows: int
    under_lock: int
    attempts: int
    lock_ms: float
    caught_up: int


async def catch_up(engine: AsyncEngine, options: RebuildOptions, progress: ProgressHook, *, until: int) -> int:
    """Rebuild captured trips into the shadow, one batch per transaction, until at most `until` remain.

    Returns:
        Trips rebuilt (at most `catch_up_batches` batches).
    """
    caught = 0
    for _ in range(options.catch_up_batches):
        async with engine.begin() as conn:
            ids = list((await conn.scalars(shadow.CLAIM_DIRTY, {"limit": options.batch_size})).all())
            if ids:
                await shadow.refresh_shadow(conn, ids)
            remaining = int(await conn.scalar(shadow.COUNT_DIRTY) or 0)
        caught += len(ids)
        progress("catch-up", caught, caught + remaining)
        if remaining <= until:
            break
    return caught


async def _attempt(
    engine: AsyncEngine, run: Run, options: RebuildOptions, *, started: float, built: int
) -> tuple[int, int, float]:
    """One switch attempt in one transaction; returns (rows now live, trips refreshed under the lock, ms locked)."""
    async with engine.begin() as conn:
        await shadow.lock_live(conn, lock_timeout_ms(options))
        locked_at = time.monotonic()
        shapes = [await conn.scalar(shadow.SHAPE, {"schema": schema}) for schema in ("public", shadow.SHADOW)]
        if shapes[0] != shapes[1]:
            raise DefinitionChanged
        dirty = int(await conn.scalar(shadow.COUNT_DIRTY) or 0)
        if dirty > options.max_switch_trips:
            raise _TooDirty(dirty)  # rolls back: the lock is released at once
        # Everything captured so far, including what committed since the count (the worker cannot
        # have applied those to the old tables: it would need the locks we hold).
        last = list((await conn.scalars(shadow.CLAIM_DIRTY, {"limit": None})).all())
        if last:
            await shadow.refresh_shadow(conn, last)
        await number_incoming_rows(conn, shadow.SHADOW)  # live updates: what changes gets a position
        rows = int(await conn.scalar(shadow.SHADOW_ROWS) or 0)
        await shadow.run_statements(conn, shadow.SWITCH)
        seconds = time.monotonic() - started
        rate = (built + len(last)) / seconds if seconds > 0 else None
        await record_switch(conn, run, rows=rows, rows_per_s=rate)
    return rows, len(last), (time.monotonic() - locked_at) * 1000


async def switch(
    engine: AsyncEngine, run: Run, options: RebuildOptions, progress: ProgressHook, *, started: float, built: int
) -> Switched:
    """Catch up, then switch under a bounded exclusive lock, retrying as the module explains.

    Raises:
        DefinitionChanged: A migration changed the live tables during the rebuild.
        RebuildError: The locks could not be had, or writes kept outrunning the catch-up, through
            every attempt; nothing was switched.
    """
    caught = await catch_up(engine, options, progress, until=min(options.catch_up_until, options.max_switch_trips))
    async with engine.begin() as conn:  # outside the lock: copied documents equal to the live ones keep their positions
        await carry_live_positions(conn, shadow.SHADOW)
    outrun = False
    busy: DBAPIError | None = None
    for attempt in range(1, options.lock_attempts + 1):
        try:
            rows, under_lock, lock_ms = await _attempt(engine, run, options, started=started, built=built + caught)
        except _TooDirty as exc:
            outrun = True
            log.info(
                "switch: %d trips changed meanwhile (over %d); catching up first", exc.count, options.max_switch_trips
            )
            caught += await catch_up(engine, options, progress, until=options.max_switch_trips)
            continue
        except DBAPIError as exc:
            if sqlstate(exc) not in RETRYABLE:
                raise
            outrun, busy = False, exc
            log.info("switch: tables busy (attempt %d of %d), retrying", attempt, options.lock_attempts)
            if attempt < options.lock_attempts:
                await asyncio.sleep(backoff(attempt))
            continue
        return Switched(rows, under_lock, attempt, lock_ms, caught)
    if outrun:
        raise RebuildError(
            f"switch: writes kept changing more than {options.max_switch_trips} trips between the catch-up and"
            f" the switch through {options.lock_attempts} attempts; nothing was switched. Run the same command"
            " again (it resumes) when writes are calmer."
        )
    raise busy_error("switch", options) from busy
