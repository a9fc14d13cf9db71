"""`kill -9` in the middle of `tripsage projections rebuild`: the next run resumes where the batches stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.settings import Settings
from projections.apply import drain
from projections.rebuild.lock import exclusive
from projections.rebuild.run import rebuild
from projections.rebuild.verify import verify
from tests.integration.test_projection_support import Writes
from tests.integration.test_rebuild_support import TRIPSAGE, bulk_trips, cli_environment, fresh_start, rows, scalar


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=4)
    yield eng
    await eng.dispose()


async def _progress(engine: AsyncEngine) -> tuple[int, int]:
    """(trips built, parts finished) of the building run."""
    row = (
        await rows(
            engine,
            "SELECT coalesce(sum(p.rows), 0), count(*) FILTER (WHERE p.done) FROM tripsage.rebuilds r"
            " JOIN tripsage.rebuild_parts p ON p.rebuild_id = r.id WHERE r.state = 'building'",
        )
    )[0]
    return int(row[0]), int(row[1])


async def test_kill_9_half_way_then_the_next_run_resumes_after_the_last_batch(
    engine: AsyncEngine, settings: Settings
) -> None:
    w = Writes(engine)
    owner = await w.user("Resumer")
    trips = await bulk_trips(engine, owner, 240, title="resume")
    await fresh_start(engine)
    total = int(await scalar(engine, "SELECT count(*) FROM trips"))

    process = subprocess.Popen(  # the real command, killed without a chance to clean up
        [str(TRIPSAGE), "projections", "rebuild", "--batch-size", str(max(4, total // 120)), "--pause", "0.05"],
        env=cli_environment(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while (await _progress(engine))[0] < total // 4:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the rebuild made no progress"
            await asyncio.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    await asyncio.sleep(0.2)  # the killed backends finish rolling back their last batch
    built_before, _ = await _progress(engine)
    assert 0 < built_before < total
    cursors = await rows(
        engine,
        "SELECT p.part, p.last_trip_id, p.rows FROM tripsage.rebuild_parts p JOIN tripsage.rebuilds r"
        " ON r.id = p.rebuild_id WHERE r.state = 'building' ORDER BY p.part",
    )
    shadow = dict(await rows(engine, "SELECT trip_id, projected_at FROM tripsage_rebuild.trip_views"))
    assert len(shadow) == built_before  # every committed batch moved its cursor, nothing else is there
    async with exclusive(engine, "rebuild"):  # kill -9 released the lock by itself
        pass

    # Written while nobody is rebuilding: captured all the same, and in the result.
    changed = next(t for t in trips if t in shadow)
    await w.patch_trip(owner, changed, title="changed while the rebuild was dead")

    result = await rebuild(engine)
    assert result.resumed_from == built_before
    assert result.built == total - built_before  # the built batches were not built again
    assert result.caught_up >= 1
    for part, last_trip_id, built in cursors:
        assert built > 0 and last_trip_id is not None, part
    kept = dict(
        await rows(engine, "SELECT trip_id, projected_at FROM trip_views WHERE trip_id = ANY(:ids)", ids=list(shadow))
    )
    untouched = [t for t in shadow if t != changed]
    assert all(kept[t] == shadow[t] for t in untouched)  # rows built before the kill went live as they were
    assert kept[changed] > shadow[changed]
    await drain(engine)
    report = await verify(engine)
    assert report.clean, report.differences[:5]
