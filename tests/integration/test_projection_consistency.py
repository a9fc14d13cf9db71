from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from core.consistency import make_token
from core.db import create_engine
from core.deps import AppContext
from core.errors import ApiError
from projections.apply import drain
from queries.consistency import ProjectionListener, close_listener, listener_for, wait_for, wait_for_xid
from tests.integration.test_projection_support import Writes


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=3)
    yield eng
    await eng.dispose()


def short_wait(app: FastAPI, wait_ms: int) -> AppContext:
    ctx: AppContext = app.state.ctx
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"consistency_wait_ms": wait_ms}))


async def test_no_token_and_garbage_tokens(app: FastAPI) -> None:
    ctx = short_wait(app, 100)
    assert await wait_for(ctx, None) is None
    for garbage in ("", "v1.", "v1.abc", "v2.12", "v1." + "9" * 30):
        with pytest.raises(ApiError) as caught:
            await wait_for(ctx, garbage)
        assert caught.value.status == 422


async def test_stale_after_the_wait_when_no_worker_runs_then_fresh(app: FastAPI, engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Waiter")
    trip = await w.create_trip(owner)
    await drain(engine)
    token = make_token(await w.patch_trip(owner, trip, title="new title"))
    ctx = short_wait(app, 300)
    started = time.monotonic()
    assert await wait_for(ctx, token) == "stale"
    assert 0.29 <= time.monotonic() - started < 2.0
    await drain(engine)
    assert await wait_for(ctx, token) == "fresh"


async def test_a_waiter_wakes_on_the_workers_notification(app: FastAPI, engine: AsyncEngine, database_url: str) -> None:
    w = Writes(engine)
    owner = await w.user("Woken")
    trip = await w.create_trip(owner)
    await drain(engine)
    xid = await w.rename(owner, "Woken Up")  # a profile change: fresh only once the fan-out is applied
    listener = listener_for(database_url)

    async def worker_later() -> None:
        await asyncio.sleep(0.3)
        await drain(engine)

    task = asyncio.create_task(worker_later())
    started = time.monotonic()
    assert await wait_for(short_wait(app, 5000), make_token(xid)) == "fresh"
    elapsed = time.monotonic() - started
    await task
    assert listener.listening
    assert 0.25 <= elapsed < 1.5
    await close_listener(database_url)
    await close_listener(database_url)  # idempotent
    assert not listener.listening
    assert trip


async def test_polling_fallback_without_a_listener(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Poller")
    trip = await w.create_trip(owner)
    await drain(engine)
    xid = await w.patch_trip(owner, trip, title="polled")
    deaf = ProjectionListener("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # LISTEN cannot connect
    assert not await deaf.ensure()
    assert not await deaf.ensure()  # does not retry at once

    async def worker_later() -> None:
        await asyncio.sleep(0.2)
        await drain(engine)

    task = asyncio.create_task(worker_later())
    assert await wait_for_xid(engine, xid, 5.0, deaf) == "fresh"
    await task
    assert await wait_for_xid(engine, xid, 0.0, deaf) == "fresh"
    await deaf.close()


async def test_each_event_loop_has_its_own_listener(database_url: str) -> None:
    """Two apps on two loops (a test's server in a thread) neither share nor close each other's connection."""
    mine = listener_for(database_url)
    assert await mine.ensure()

    async def another_loop() -> tuple[bool, bool]:
        theirs = listener_for(database_url)
        opened = await theirs.ensure()
        await close_listener(database_url)  # that app's shutdown
        return theirs is not mine and opened, theirs.listening

    separate, theirs_listening = await asyncio.to_thread(asyncio.run, another_loop())
    assert separate and not theirs_listening
    assert mine.listening and listener_for(database_url) is mine
