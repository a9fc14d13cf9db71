"""The worker's maintenance cron: stored Idempotency-Key records are pruned after their retry window."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from arq.connections import ArqRedis, create_pool
from arq.worker import func
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commands.idempotency import prune_keys
from core.settings import Settings
from tests.support import new_user
from workers.jobs import (
    CRON_JOBS,
    FUNCTIONS,
    build_worker,
    close_worker,
    prune_idempotency_keys,
    prune_live_removals,
    worker_redis_settings,
)
from workers.main import WorkerSettings

TRIP = {"title": "Keyed", "destination": "Oslo", "start_date": "2027-01-01", "end_date": "2027-01-02"}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(database_url)
    yield eng
    await eng.dispose()


async def _keys(engine: AsyncEngine, user_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT key FROM idempotency_keys WHERE user_id = :u ORDER BY key"), {"u": user_id}
        )
        return [row.key for row in rows]


async def _age(engine: AsyncEngine, user_id: uuid.UUID, key: str, hours: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE idempotency_keys SET created_at = now() - make_interval(hours => :h) WHERE user_id = :u AND key = :k"
            ),
            {"h": hours, "u": user_id, "k": key},
        )


async def _store_keys(client: httpx.AsyncClient, count: int) -> uuid.UUID:
    user = new_user("keys")
    for n in range(count):
        headers = {**user.headers, "Idempotency-Key": f"k{n:03d}"}
        assert (await client.post("/api/trips", json=TRIP, headers=headers)).status_code == 201
    return user.id


async def test_prune_deletes_only_keys_past_the_window_in_batches(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user_id = await _store_keys(client, 5)
    for key in ("k000", "k001", "k002"):
        await _age(engine, user_id, key, 25)
    assert await prune_keys(engine, batch=2) >= 3
    assert await _keys(engine, user_id) == ["k003", "k004"]
    assert await prune_keys(engine, keep=timedelta(hours=24)) == 0


async def test_the_cron_job_runs_in_a_real_worker(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    assert [job.name for job in CRON_JOBS] == ["cron:prune_idempotency_keys", "cron:prune_live_removals"]
    assert WorkerSettings.cron_jobs == CRON_JOBS
    user_id = await _store_keys(client, 2)
    await _age(engine, user_id, "k000", 48)
    assert settings.redis_url is not None
    redis: ArqRedis = await create_pool(worker_redis_settings(settings.redis_url))
    try:
        # Run the cron job's function as a queued job, through Redis, in a real burst worker.
        functions = [
            *FUNCTIONS,
            func(prune_idempotency_keys, keep_result=0),
            func(prune_live_removals, keep_result=0),
        ]
        worker = build_worker(settings, burst=True, poll_delay=0, handle_signals=False, functions=functions)
        assert await redis.enqueue_job("prune_idempotency_keys") is not None
        assert await redis.enqueue_job("prune_live_removals") is not None
        await worker.async_run()
        await close_worker(worker)
    finally:
        await redis.aclose()
    assert await _keys(engine, user_id) == ["k001"]
