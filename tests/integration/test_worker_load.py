"""Under sustained load the worker still runs its dead-letter retry sweep."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.settings import Settings
from projections.apply import drain
from projections.dead_letters import RetryPolicy
from tests.integration.test_projection_support import Writes
from tests.integration.test_worker_faults import backlog, feed_count
from workers.jobs import serve
from workers.projector import ProjectorOptions

POISON = "ALTER TABLE trip_views ADD CONSTRAINT test_load_poison CHECK (search_text NOT LIKE '%load-pill%') NOT VALID"
RETRIES = RetryPolicy(max_attempts=5, base_delay_s=0.0)


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=4)
    yield eng
    await eng.dispose()


async def _dead_letter_of(engine: AsyncEngine, trip: uuid.UUID) -> bool:
    async with engine.connect() as conn:
        return bool(
            await conn.scalar(
                text("SELECT EXISTS (SELECT 1 FROM tripsage.dead_letters WHERE trip_id = :t)"), {"t": trip}
            )
        )


async def _park_due(engine: AsyncEngine, w: Writes, owner: uuid.UUID) -> uuid.UUID:
    """A trip that failed to project once and is due for a retry now (its cause already fixed)."""
    trip = await w.create_trip(owner, "will heal")
    await drain(engine)
    async with engine.begin() as conn:
        await conn.execute(text(POISON))
    try:
        await w.patch_trip(owner, trip, title="load-pill")
        await drain(engine, policy=RETRIES)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE trip_views DROP CONSTRAINT test_load_poison"))
    assert await _dead_letter_of(engine, trip)
    return trip


async def test_dead_letter_retries_run_while_the_feed_never_empties(engine: AsyncEngine, settings: Settings) -> None:
    w = Writes(engine)
    owner = await w.user("Loaded")
    healed = await _park_due(engine, w, owner)
    await backlog(engine, owner, 3000)  # hundreds of small batches: the feed stays busy for seconds
    writing = asyncio.Event()
    writing.set()
    written = 0

    async def writer() -> None:  # and new changes keep coming while the worker drains
        nonlocal written
        trip = await w.create_trip(owner, "busy")
        while writing.is_set():
            await w.patch_trip(owner, trip, title=f"busy {written}")
            written += 1

    stop = asyncio.Event()
    options = ProjectorOptions(batch_size=10, sweep_interval_s=0.2, policy=RETRIES)
    worker = asyncio.create_task(serve(settings, until=stop.wait(), options=options))
    load = asyncio.create_task(writer())
    try:
        started = time.monotonic()
        while await _dead_letter_of(engine, healed):
            assert time.monotonic() - started < 15, "the retry sweep never ran under load"
            await asyncio.sleep(0.02)
        # The sweep healed the trip while the feed was still far from empty: the drain yielded to it.
        assert await feed_count(engine) > 100
        assert written > 0
    finally:
        writing.clear()
        with contextlib.suppress(Exception):
            await load
        stop.set()
        await asyncio.wait_for(worker, 60)
    async with engine.connect() as conn:
        title = await conn.scalar(
            text("SELECT convert_from(doc, 'UTF8')::json->>'title' FROM trip_views WHERE trip_id = :t"), {"t": healed}
        )
    assert title == "load-pill"
    await drain(engine)
    assert await feed_count(engine) == 0
