"""Apply the change feed to the trip read model: idempotent, monotonic, safe with many workers.

One batch is one transaction (READ COMMITTED):

1. `feed.claim` deletes up to N visible feed rows (`FOR UPDATE SKIP LOCKED`, below the snapshot
   xmin) and expands profile changes into trip rows for a later batch;
2. the batch's trip advisory locks are taken in ascending order (`locks.lock_trips`);
3. one `trip_view.refresh_trips` statement rebuilds every trip of the batch, however many changes
   named it. Under READ COMMITTED each statement takes a new snapshot, and this one starts after the
   locks were granted, so it sees everything committed before, including the work of the worker
   that held a trip's lock before us: a later rebuild of a trip always sees a later state (and the
   version guard in the upsert refuses to go back anyway);
4. if the rebuild fails on bad data, the transaction rolls back and the batch is redone with the
   rebuild bisected in savepoints until the poison trips are isolated; they move to the
   dead-letter table while every other trip is applied, and their access is narrowed to what the
   write model grants (`projections.access`): the stale document stays, a removed member's access
   does not. A transient error (a timeout, a lock wait, a lost connection) rolls the batch back for
   the worker to retry; it never parks a trip;
5. dead letters of the trips that projected cleanly are healed and `NOTIFY tripsage_projection`
   is queued; PostgreSQL delivers it only if the transaction commits.

The feed rows' deletion commits with the read rows they produced (the checkpoint), so a crash or a
rollback anywhere leaves the rows for the next batch, and re-applying a change rebuilds the same
document, which the upsert then skips: applying twice changes nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.access import narrow_failed
from projections.dead_letters import CLAIM_DUE, DEFAULT_POLICY, DUE, RetryPolicy, record_failures
from projections.feed import claim
from projections.live import CHANNEL, LIVE_LOCK
from projections.locks import lock_trips
from projections.poison import is_poison, rebuild_isolating
from projections.trip_view import refresh_trips

DEFAULT_BATCH_SIZE = 500
DEFAULT_FANOUT_LIMIT = 1000

ApplyHook = Callable[[AsyncConnection, Sequence[uuid.UUID]], Awaitable[None]]
"""Called inside the apply transaction with the trips just rebuilt (for a rebuild in progress to
learn which trips the live worker already brought up to date)."""

FINISH = text(
    """
WITH healed AS (
  DELETE FROM tripsage.dead_letters WHERE trip_id = ANY(CAST(:ok AS uuid[])) RETURNING 1
),
gate AS MATERIALIZED (SELECT pg_advisory_xact_lock(CAST(:live_lock AS bigint)) AS held),
docs AS (
  UPDATE trip_views v SET position = nextval('tripsage.live_positions') FROM gate
  WHERE v.trip_id = ANY(CAST(:ok AS uuid[])) AND v.position IS NULL
  RETURNING v.position
),
removals AS (
  UPDATE tripsage.live_removals r SET position = nextval('tripsage.live_positions') FROM gate
  WHERE r.trip_id = ANY(CAST(:ok AS uuid[])) AND r.position IS NULL
  RETURNING r.position
)
SELECT pg_notify(:channel, CAST(coalesce(
  greatest((SELECT max(position) FROM docs), (SELECT max(position) FROM removals)), 0) AS text))
  FROM (SELECT count(*) FROM healed) h
"""
)
"""Heal the dead letters of trips that projected cleanly, number the batch's live changes, notify.

The documents and removals this batch wrote (`trip_view.REFRESH` leaves their position NULL) get
positions from `tripsage.live_positions` after a transaction-scoped advisory lock that is held
until commit, so batches of concurrent workers take their positions in commit order: once a reader
sees position N, every smaller position is visible too (`queries.live` relies on it). The
notification's payload is the batch's highest position (0: nothing live changed)."""


WAITING = text(
    """
SELECT EXISTS (
  SELECT 1 FROM tripsage.changes
  WHERE CAST(:horizon AS xid8) IS NULL OR coalesce(origin_xid, xid) < CAST(:horizon AS xid8)
)
"""
)
"""Committed feed rows (from before :horizon, if given) still waiting to be applied: held back by an
older open transaction, or claimed by another worker right now. (Rows of transactions still in
progress are invisible to this statement, so every row it sees is committed.)"""

HORIZON = text("SELECT pg_snapshot_xmax(pg_current_snapshot())")
"""Every transaction that committed before now has a smaller xid than this."""


@dataclass(slots=True)
class DrainResult:
    """What a drain pass did (`yielded`: it stopped at its budget with work left, so call again soon)."""

    trips: int = 0
    batches: int = 0
    waiting: bool = False
    yielded: bool = False


@dataclass(slots=True)
class ApplyResult:
    """What one batch did."""

    claimed: int = 0
    refreshed: int = 0
    failed: int = 0


class _PoisonBatch(Exception):
    """The optimistic attempt at a batch hit a poison trip: redo it isolating failures."""


async def _apply_locked(
    conn: AsyncConnection,
    trip_ids: Sequence[uuid.UUID],
    tokens: Mapping[uuid.UUID, set[int]],
    policy: RetryPolicy,
    on_applied: ApplyHook | None,
    *,
    isolate: bool,
) -> ApplyResult:
    """Rebuild trips whose locks this transaction holds; park failures, heal the rest, notify.

    Optimistically (`isolate=False`) the batch is rebuilt without a savepoint, which saves two round
    trips per batch; a poison error then aborts the transaction and the caller redoes the batch
    with `isolate=True`, bisecting in savepoints.
    """
    if not trip_ids:
        failures: dict[uuid.UUID, str] = {}
    elif isolate:
        failures = await rebuild_isolating(conn, trip_ids)
    else:
        try:
            await refresh_trips(conn, trip_ids)
        except DBAPIError as exc:
            if is_poison(exc):
                raise _PoisonBatch from exc
            raise
        failures = {}
    applied = [trip_id for trip_id in trip_ids if trip_id not in failures]
    await record_failures(conn, failures, tokens, policy)
    if failures:
        await narrow_failed(conn, sorted(failures))
    if on_applied is not None and applied:
        await on_applied(conn, applied)
    await conn.execute(FINISH, {"ok": applied, "channel": CHANNEL, "live_lock": LIVE_LOCK})
    return ApplyResult(refreshed=len(applied), failed=len(failures))


async def apply_batch(
    engine: AsyncEngine,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fanout_limit: int = DEFAULT_FANOUT_LIMIT,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_applied: ApplyHook | None = None,
) -> ApplyResult:
    """Claim and apply one batch of the feed in one transaction.

    Args:
        engine: The database, as the login role (no RLS).
        batch_size: At most this many feed rows (plus the other pending rows of the same trips).
        fanout_limit: At most this many trips expanded per profile change in this batch.
        policy: Retry policy for trips that fail.
        on_applied: Optional hook run in the transaction with the rebuilt trips.

    Returns:
        Rows claimed, trips rebuilt and trips that failed.
    """
    try:
        return await _apply_batch(engine, batch_size, fanout_limit, policy, on_applied, isolate=False)
    except _PoisonBatch:
        return await _apply_batch(engine, batch_size, fanout_limit, policy, on_applied, isolate=True)


async def _apply_batch(
    engine: AsyncEngine,
    batch_size: int,
    fanout_limit: int,
    policy: RetryPolicy,
    on_applied: ApplyHook | None,
    *,
    isolate: bool,
) -> ApplyResult:
    async with engine.begin() as conn:
        batch = await claim(conn, limit=batch_size, fanout_limit=fanout_limit)
        if batch.rows == 0:
            return ApplyResult()
        trip_ids = batch.trip_ids
        await lock_trips(conn, trip_ids)
        result = await _apply_locked(conn, trip_ids, batch.tokens, policy, on_applied, isolate=isolate)
        result.claimed = batch.rows
        return result


async def retry_due(
    engine: AsyncEngine,
    *,
    limit: int = 100,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_applied: ApplyHook | None = None,
) -> ApplyResult:
    """Retry the failed trips whose backoff has expired (the sweep's second half).

    Candidates are read without locks, then their trip locks are taken (the same order as every
    other writer) before they are claimed, so the sweep never waits on a dead-letter row while
    holding a trip lock somebody else needs.

    Args:
        engine: The database, as the login role.
        limit: At most this many trips.
        policy: Retry policy.
        on_applied: Optional hook run in the transaction with the rebuilt trips.

    Returns:
        Trips retried, rebuilt and failed again.
    """
    async with engine.begin() as conn:
        candidates = list((await conn.scalars(DUE, {"limit": limit})).all())
        if not candidates:
            return ApplyResult()
        await lock_trips(conn, candidates)
        due = sorted((await conn.scalars(CLAIM_DUE, {"trip_ids": candidates})).all())
        result = await _apply_locked(conn, due, {}, policy, on_applied, isolate=True)
        result.claimed = len(due)
        return result


async def drain_pass(
    engine: AsyncEngine,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fanout_limit: int = DEFAULT_FANOUT_LIMIT,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_applied: ApplyHook | None = None,
    budget_s: float | None = None,
) -> DrainResult:
    """Apply batches until none can be claimed, or until `budget_s` is spent (one worker pass).

    Under sustained load the feed never empties, so a pass without a budget would never return and
    the worker's other duties (the dead-letter retry sweep) would never run; with a budget the pass
    stops after the batch that crossed it and says so (`yielded`). See `drain` for the other options.

    Returns:
        Trips rebuilt and batches applied; whether the budget ran out with work left (`yielded`);
        whether committed changes are still waiting (behind an older open transaction, or claimed
        by another worker), i.e. whether to look again soon.
    """
    result = DrainResult()
    deadline = None if budget_s is None else time.monotonic() + budget_s
    while True:
        batch = await apply_batch(
            engine, batch_size=batch_size, fanout_limit=fanout_limit, policy=policy, on_applied=on_applied
        )
        if batch.claimed == 0:
            break
        result.batches += 1
        result.trips += batch.refreshed
        if deadline is not None and time.monotonic() >= deadline:
            result.yielded = True
            return result
    async with engine.connect() as conn:
        result.waiting = bool(await conn.scalar(WAITING, {"horizon": None}))
    return result


async def drain(
    engine: AsyncEngine,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fanout_limit: int = DEFAULT_FANOUT_LIMIT,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_applied: ApplyHook | None = None,
    settle_timeout_s: float = 5.0,
) -> int:
    """Apply the feed batch after batch until nothing is left below the snapshot xmin.

    The snapshot xmin is cluster-wide: any transaction that is open on the server holds back the
    changes committed after it began. So that "drain" means "everything committed before this call
    is projected" in tests and tools, it waits (polling, up to `settle_timeout_s`) until no change
    committed before the call (nor its fan-out) is left in the feed.

    Args:
        engine: The database, as the login role (what a worker does).
        batch_size: Feed rows per batch (one transaction each).
        fanout_limit: Trips expanded per profile change per batch.
        policy: Retry policy for trips that fail.
        on_applied: Optional hook run in each transaction with the rebuilt trips.
        settle_timeout_s: How long to wait for changes held back by older open transactions (0: none).

    Returns:
        Trips rebuilt (a trip named by several changes of one batch counts once per batch).
    """
    async with engine.connect() as conn:
        horizon = await conn.scalar(HORIZON)
    deadline = time.monotonic() + settle_timeout_s
    total, delay = 0, 0.002
    while True:
        result = await drain_pass(
            engine, batch_size=batch_size, fanout_limit=fanout_limit, policy=policy, on_applied=on_applied
        )
        total += result.trips
        if not result.waiting or time.monotonic() >= deadline:
            return total
        async with engine.connect() as conn:
            if not await conn.scalar(WAITING, {"horizon": horizon}):
                return total
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
