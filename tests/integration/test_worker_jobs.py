from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis, create_pool
from arq.jobs import Job
from arq.worker import create_worker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.nudge import NUDGE_JOB_ID, PROJECT_JOB, Nudger, redis_settings
from core.settings import Settings
from projections.apply import drain
from tests.integration.test_projection_support import Writes, assert_converged, run_burst_worker
from workers.jobs import close_worker, serve
from workers.projector import Projector, ProjectorOptions


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=3)
    yield eng
    await eng.dispose()


@pytest.fixture
async def arq_redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    assert settings.redis_url is not None
    pool = await create_pool(redis_settings(settings.redis_url))
    await pool.delete("arq:queue", f"arq:job:{NUDGE_JOB_ID}", f"arq:result:{NUDGE_JOB_ID}")
    yield pool
    await pool.aclose()


async def test_nudges_are_deduplicated_and_a_real_burst_worker_projects(
    engine: AsyncEngine, settings: Settings, arq_redis: ArqRedis
) -> None:
    w = Writes(engine)
    owner = await w.user("Burst")
    trips = [await w.create_trip(owner, f"B{i}") for i in range(3)]
    assert await arq_redis.enqueue_job(PROJECT_JOB, _job_id=NUDGE_JOB_ID) is not None
    for _ in range(4):  # duplicate nudges while one is queued: dropped
        assert await arq_redis.enqueue_job(PROJECT_JOB, _job_id=NUDGE_JOB_ID) is None
    assert await arq_redis.zcard("arq:queue") == 1

    # No cron jobs: the hourly key pruning fires at minute 17, and a run then counted two jobs.
    worker = await run_burst_worker(settings, cron_jobs=[])
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    await drain(engine)  # anything held back by other sessions' open transactions
    await assert_converged(engine, trips)
    # The job kept no result under the fixed id, so the next nudge is accepted.
    assert not await arq_redis.exists(f"arq:result:{NUDGE_JOB_ID}")
    nudger = Nudger(str(settings.redis_url))
    try:
        assert await nudger.nudge() is True
    finally:
        await nudger.close()
    assert await arq_redis.zcard("arq:queue") == 1
    await run_burst_worker(settings)
    assert await arq_redis.zcard("arq:queue") == 0


async def test_a_nudge_stores_the_job_arq_would_and_a_duplicate_is_dropped(
    settings: Settings, arq_redis: ArqRedis
) -> None:
    assert settings.redis_url is not None
    nudger = Nudger(settings.redis_url)
    try:
        assert await nudger.nudge() is True
        info = await Job(NUDGE_JOB_ID, arq_redis).info()
        assert info is not None
        assert (info.function, info.args, info.kwargs) == (PROJECT_JOB, (), {})
        assert not info.job_try  # none given, as arq's enqueue_job stores it
        queued = await arq_redis.zrange("arq:queue", 0, -1, withscores=True)
        assert queued == [(NUDGE_JOB_ID.encode(), float(int(info.enqueue_time.timestamp() * 1000)))]
        ttl = await arq_redis.pttl(f"arq:job:{NUDGE_JOB_ID}")
        assert arq_redis.expires_extra_ms - 60_000 < ttl <= arq_redis.expires_extra_ms  # arq's default expiry
        assert await nudger.nudge() is True  # queued already: nothing changes
        again = await Job(NUDGE_JOB_ID, arq_redis).info()
        assert again is not None and again.enqueue_time == info.enqueue_time
        assert await arq_redis.zrange("arq:queue", 0, -1, withscores=True) == queued
    finally:
        await nudger.close()
    worker = await run_burst_worker(settings, cron_jobs=[])  # arq's worker runs what the script stored
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert await arq_redis.zcard("arq:queue") == 0


async def test_worker_settings_class_for_the_arq_cli(
    engine: AsyncEngine, settings: Settings, arq_redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.redis_url is not None and settings.database_url is not None
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SUPABASE_JWT_SECRET", str(settings.supabase_jwt_secret))
    monkeypatch.setenv("TRIPSAGE_ENCRYPTION_KEYS", str(settings.tripsage_encryption_keys))
    import workers.main  # pylint: disable=import-outside-toplevel

    main = importlib.reload(workers.main)
    expected = redis_settings(settings.redis_url)
    assert main.WorkerSettings.redis_settings.database == expected.database
    assert main.WorkerSettings.redis_settings.unix_socket_path == expected.unix_socket_path
    assert main.WorkerSettings.keep_result == 0

    w = Writes(engine)
    owner = await w.user("ArqCli")
    trip = await w.create_trip(owner)
    await arq_redis.enqueue_job(PROJECT_JOB, _job_id=NUDGE_JOB_ID)
    # What `arq workers.main.WorkerSettings --burst` does; on_startup resolves settings from the env.
    # (without its cron job, which would count as a second job in minute 17 of any hour)
    worker = create_worker(main.WorkerSettings, burst=True, poll_delay=0, handle_signals=False, cron_jobs=[])
    try:
        await worker.async_run()
    finally:
        await close_worker(worker)
    assert worker.jobs_complete == 1
    await drain(engine)
    await assert_converged(engine, [trip])


async def test_projector_loop_sweeps_without_nudges_and_beats(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Sweep")
    projector = Projector(engine, ProjectorOptions(sweep_interval_s=0.05, heartbeat_interval_s=0.05))
    projector.start()
    try:
        trip = await w.create_trip(owner, "swept")
        for _ in range(100):
            await asyncio.sleep(0.05)
            async with engine.connect() as conn:
                if await conn.scalar(text("SELECT count(*) FROM trip_views WHERE trip_id = :id"), {"id": trip}):
                    break
        await assert_converged(engine, [trip])
        async with engine.connect() as conn:
            beat = await conn.scalar(
                text("SELECT trips FROM tripsage.worker_heartbeats WHERE worker_id = :id"), {"id": projector.worker_id}
            )
        assert beat is not None
    finally:
        await projector.aclose()
    async with engine.connect() as conn:
        left = await conn.scalar(
            text("SELECT count(*) FROM tripsage.worker_heartbeats WHERE worker_id = :id"), {"id": projector.worker_id}
        )
    assert left == 0  # a graceful stop removes its heartbeat


async def test_serve_runs_until_told_and_stops_cleanly(engine: AsyncEngine, settings: Settings) -> None:
    w = Writes(engine)
    owner = await w.user("Serve")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, until=stop.wait(), options=ProjectorOptions(sweep_interval_s=0.05)))
    try:
        trip = await w.create_trip(owner, "served")
        nudger = Nudger(str(settings.redis_url))
        try:
            await nudger.nudge()
        finally:
            await nudger.close()
        for _ in range(100):
            await asyncio.sleep(0.05)
            async with engine.connect() as conn:
                if await conn.scalar(text("SELECT count(*) FROM trip_views WHERE trip_id = :id"), {"id": trip}):
                    break
        await assert_converged(engine, [trip])
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
