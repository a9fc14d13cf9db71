"""Online rebuild: under concurrent commands and queries, exclusive, with rollback and status."""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.settings import Settings
from projections import trip_view
from projections.apply import drain
from projections.rebuild.lock import LOCK_KEY, LOCK_NAMESPACE, RebuildBusy, exclusive
from projections.rebuild.rollback import rollback
from projections.rebuild.run import RebuildError, RebuildOptions, RebuildResult, rebuild
from projections.rebuild.state import definition_version, split_ranges
from projections.rebuild.status import definition_note, read_rebuild_status
from projections.rebuild.verify import verify
from tests.integration.command_kit import add_activity, add_itinerary, create_trip, signed_in
from tests.integration.test_projection_support import Writes
from tests.integration.test_rebuild_support import (
    TRIPSAGE,
    cli_environment,
    doc_is_complete,
    fresh_start,
    rows,
    running_worker,
    scalar,
)
from tests.support import User, make_settings, service_headers, serving


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=4)
    yield eng
    await eng.dispose()


class Load:
    """Writers and readers through the HTTP API while something else runs."""

    def __init__(self, client: httpx.AsyncClient, trips: dict[User, list[str]]) -> None:
        self.client = client
        self.trips = trips
        self.stop = asyncio.Event()
        self.failures: list[str] = []
        self.reads = 0
        self.writes = 0

    async def read(self, user: User) -> None:
        expected = set(self.trips[user])
        while not self.stop.is_set():
            page = await self.client.get("/api/trips", params={"limit": 100}, headers=user.headers)
            items = page.json()["items"] if page.status_code == 200 else []
            if page.status_code != 200 or {i["id"] for i in items} != expected:
                self.failures.append(
                    f"list {page.status_code}: {len(items)} of {len(expected)} trips {page.text[:300]}"
                )
            elif not all(doc_is_complete(item) for item in items):
                self.failures.append("list: an incomplete document")
            one = await self.client.get(f"/api/trips/{random.choice(list(expected))}", headers=user.headers)
            if one.status_code != 200 or not doc_is_complete(one.json()):
                self.failures.append(f"get {one.status_code}")
            self.reads += 2

    async def write(self, user: User) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            trip_id = random.choice(self.trips[user])
            response = await self.client.patch(
                f"/api/trips/{trip_id}", json={"title": f"edit {n}"}, headers=user.headers
            )
            if response.status_code != 200:
                self.failures.append(f"patch {response.status_code}")
            if n % 3 == 0 and n <= 300:  # at most 100 new itineraries: under the 200-per-trip cap
                itinerary = await add_itinerary(self.client, user, trip_id, title=f"day {n}")
                await add_activity(self.client, user, trip_id, itinerary["id"], title=f"act {n}", price="3.50")
            self.writes += 1
            # Paced like a busy user (one-round-trip commands unpaced outran the rebuild's catch-up).
            await asyncio.sleep(0.05)


@pytest.fixture
async def unlimited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app without the per-user command budget: the load below is one user's
    commands as fast as the API answers them, which outruns the default 600 a minute."""
    assert settings.database_url and settings.redis_url
    config = make_settings(settings.database_url, settings.redis_url, rate_limit_commands_per_minute=0)
    async with serving(config) as (_, http):
        yield http


async def test_rebuild_under_load_loses_nothing_and_queries_always_see_a_complete_model(
    unlimited: httpx.AsyncClient, engine: AsyncEngine, database_url: str
) -> None:
    client = unlimited
    users = [await signed_in(client, f"load{i}") for i in range(3)]
    trips: dict[User, list[str]] = {}
    for user in users:
        trips[user] = []
        for i in range(4):
            trip = await create_trip(client, user, title=f"trip {i}")
            itinerary = await add_itinerary(client, user, trip["id"])
            await add_activity(client, user, trip["id"], itinerary["id"], price="12.00")
            trips[user].append(trip["id"])
    async with running_worker(database_url):
        await drain(engine)
        load = Load(client, trips)
        tasks = [asyncio.create_task(load.read(u)) for u in users] + [asyncio.create_task(load.write(u)) for u in users]
        try:
            await asyncio.sleep(0.2)
            batch = max(2, int(await scalar(engine, "SELECT count(*) FROM trips")) // 80)  # ~40 batches a part
            result = await rebuild(engine, options=RebuildOptions(batch_size=batch, concurrency=2, pause_s=0.005))
            await asyncio.sleep(0.3)  # and queries keep working on the new tables
        finally:
            load.stop.set()
            await asyncio.gather(*tasks)
        await drain(engine)
        report = await verify(engine, settle_s=5)
    assert not load.failures, load.failures[:5]
    assert load.reads > 50 and load.writes > 10
    assert result.caught_up > 0  # commands committed during the build reached the new tables
    assert report.clean, report.differences[:5]
    assert await scalar(engine, "SELECT count(*) FROM tripsage.rebuild_dirty") == 0
    assert not await scalar(engine, "SELECT count(*) FROM pg_trigger WHERE tgname = 'changes_rebuild_capture'")


async def test_a_second_rebuild_is_refused_naming_the_holder(engine: AsyncEngine, settings: Settings) -> None:
    async with exclusive(engine, "rebuild"):
        with pytest.raises(RebuildBusy) as refused:
            await rebuild(engine)
        with pytest.raises(RebuildBusy):
            await rollback(engine)
        cli = await asyncio.to_thread(
            subprocess.run,
            [str(TRIPSAGE), "projections", "rebuild"],
            env=cli_environment(settings),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    holder = refused.value.holder
    assert holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname()
    assert holder.operation == "rebuild" and f"pid {os.getpid()}" in str(refused.value)
    assert cli.returncode == 3, cli.stderr
    assert f"pid {os.getpid()}" in cli.stderr and socket.gethostname() in cli.stderr and "started" in cli.stderr
    async with exclusive(engine, "rebuild"):  # released: free again
        pass


async def test_two_rebuilds_at_once_the_second_refuses_while_the_first_goes_on(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Twice")
    for i in range(4):
        await w.create_trip(owner, f"twice {i}")
    await drain(engine)
    first = await _building(engine, pause_s=0.02)
    with pytest.raises(RebuildBusy, match=re.escape(f"rebuild by {socket.gethostname()} pid {os.getpid()}")):
        await rebuild(engine)
    result = await first  # undisturbed
    assert result.resumed_from == 0 and result.built == result.rows


async def test_rollback_returns_to_the_previous_version(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS tripsage_prev.trip_view_members, tripsage_prev.trip_views"))
    with pytest.raises(RebuildError, match="nothing to roll back"):
        await rollback(engine)

    first = await fresh_start(engine)
    v1 = definition_version()
    w = Writes(engine)
    owner = await w.user("Rolly")
    trip = await w.create_trip(owner, "before")
    await drain(engine)

    monkeypatch.setattr(trip_view, "VERSION", 999)
    v2 = definition_version()
    async with engine.connect() as conn:
        status = await read_rebuild_status(conn)
    assert status.rebuild_due and status.live_definition == v1 and status.definition == v2
    async with engine.connect() as conn:
        assert await definition_note(conn) == f"rebuild due: live {v1}, code {v2}"
    live_before = await scalar(engine, "SELECT 'public.trip_views'::regclass::oid")

    second = await rebuild(engine)
    async with engine.connect() as conn:
        status = await read_rebuild_status(conn)
        assert await definition_note(conn) is None
    assert status.live_definition == v2 and status.previous_definition == v1 and not status.rebuild_due
    assert status.last_rebuild is not None and status.last_rebuild["id"] == second.rebuild_id
    assert status.last_rebuild["rows"] == second.rows and status.last_rebuild["rows_per_s"] > 0
    assert await scalar(engine, "SELECT 'tripsage_prev.trip_views'::regclass::oid") == live_before

    await w.patch_trip(owner, trip, title="after the switch")  # a write the previous tables never saw
    await drain(engine)
    undone = await rollback(engine)
    assert (undone.definition, undone.previous) == (v1, v2)
    assert undone.caught_up + undone.under_lock >= 1  # the trip written after the switch
    # The restored tables were caught up inside the rollback: no worker needed to see the write.
    restored = await scalar(engine, "SELECT doc FROM trip_views WHERE trip_id = :id", id=trip)
    assert orjson.loads(restored)["title"] == "after the switch"
    assert await scalar(engine, "SELECT 'public.trip_views'::regclass::oid") == live_before
    states = dict(
        await rows(
            engine,
            "SELECT id, state FROM tripsage.rebuilds WHERE id IN (:a, :b)",
            a=first.rebuild_id,
            b=second.rebuild_id,
        )
    )
    assert states == {first.rebuild_id: "switched", second.rebuild_id: "rolled_back"}
    async with running_worker(database_url):
        await drain(engine)
        report = await verify(engine)
    assert report.clean, report.differences[:5]
    doc = await scalar(engine, "SELECT doc FROM trip_views WHERE trip_id = :id", id=trip)
    assert orjson.loads(doc)["title"] == "after the switch"
    async with engine.connect() as conn:
        status = await read_rebuild_status(conn)
    assert status.live_definition == v1 and status.previous_definition == v2 and status.rebuild_due
    assert status.to_json()["rollback_available"] is True

    again = await rollback(engine)  # and forward again
    assert (again.definition, again.previous) == (v2, v1)
    monkeypatch.undo()
    await fresh_start(engine)  # leave the code's definition live for the tests after this one


async def test_an_interrupted_rebuild_of_another_definition_starts_over(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fresh_start(engine)
    monkeypatch.setattr(trip_view, "VERSION", 1001)
    first = await _interrupted_run(engine)
    monkeypatch.setattr(trip_view, "VERSION", 1002)
    result = await rebuild(engine)
    assert result.rebuild_id != first and result.resumed_from == 0
    states = dict(await rows(engine, "SELECT id, state FROM tripsage.rebuilds WHERE id = :id", id=first))
    assert states == {first: "abandoned"}

    second = await _interrupted_run(engine)  # a rollback abandons an interrupted rebuild too
    await rollback(engine)
    assert await scalar(engine, "SELECT state FROM tripsage.rebuilds WHERE id = :id", id=second) == "abandoned"
    assert await scalar(engine, "SELECT to_regclass('tripsage_rebuild.trip_views')") is None
    monkeypatch.undo()
    await fresh_start(engine)


async def _building(engine: AsyncEngine, *, pause_s: float) -> asyncio.Task[RebuildResult]:
    """Start a slow rebuild (batches of 20, one range) and return once it has built a batch."""
    started = asyncio.Event()

    def progress(phase: str, done: int, _total: int) -> None:
        if phase == "build" and done > 0:
            started.set()

    task = asyncio.create_task(
        rebuild(engine, options=RebuildOptions(batch_size=20, concurrency=1, pause_s=pause_s), on_progress=progress)
    )
    await asyncio.wait_for(started.wait(), 30)
    return task


async def _interrupted_run(engine: AsyncEngine) -> int:
    """Start a rebuild and cancel it during its build (as Ctrl-C does)."""
    task = await _building(engine, pause_s=0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    run_id = await scalar(engine, "SELECT id FROM tripsage.rebuilds WHERE state = 'building'")
    assert isinstance(run_id, int)
    return run_id


async def test_unknown_projection_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(RebuildError, match="unknown projection"):
        await rebuild(engine, projection="nope")
    with pytest.raises(RebuildError, match="unknown projection"):
        await rollback(engine, projection="nope")


def test_ranges_cover_the_id_space_without_gaps() -> None:
    ranges = split_ranges(3)
    assert ranges[0][0] == uuid.UUID(int=0) and ranges[-1][1] == uuid.UUID(int=(1 << 128) - 1)
    for (_, hi), (lo, _) in zip(ranges, ranges[1:], strict=False):
        assert lo.int == hi.int + 1
    assert split_ranges(0) == split_ranges(1)


async def test_status_admin_api_and_readyz_report_versions_and_rebuilds(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = await fresh_start(engine)
    ready = await client.get("/readyz")
    assert "notes" not in ready.json()
    admin = await client.get("/api/admin/projections", headers=service_headers())
    assert admin.status_code == 200
    status = admin.json()["projections"][0]["rebuild"]
    assert status["rebuild_due"] is False and status["live_definition"] == definition_version()
    last = status["last_rebuild"]
    assert last["id"] == done.rebuild_id and last["state"] == "switched" and last["rows"] == done.rows
    assert last["switched_at"].endswith("Z") and last["duration_s"] > 0 and last["rows_per_s"] > 0
    assert status["rebuilding"] is None

    live = definition_version()
    monkeypatch.setattr(trip_view, "VERSION", 77)
    again = await client.get("/readyz")
    assert again.status_code == ready.status_code  # informational: never makes the API unready
    assert again.json()["notes"] == {"trip_views": f"rebuild due: live {live}, code {definition_version()}"}
    admin = await client.get("/api/admin/projections", headers=service_headers())
    assert admin.json()["projections"][0]["rebuild"]["rebuild_due"] is True


async def test_the_switch_waits_for_a_long_reader_without_blocking_queries(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Patient")
    for i in range(3):
        await w.create_trip(owner, f"patient {i}")
    await fresh_start(engine)
    polite = RebuildOptions(lock_timeout_s=0.1, lock_attempts=2)
    async with engine.connect() as reader:
        await reader.execute(text("SELECT count(*) FROM trip_view_members"))  # an open transaction reading
        with pytest.raises(RebuildError, match="stayed busy") as gave_up:  # the run stays resumable
            await rebuild(engine, options=polite)
        assert isinstance(gave_up.value.__cause__, DBAPIError)
        assert "55P03" in str(gave_up.value.__cause__.orig.sqlstate)  # type: ignore[union-attr]
        building = await scalar(engine, "SELECT rows FROM tripsage.rebuilds WHERE state = 'building'")
        assert building is None  # rows are recorded at the switch
        task = asyncio.create_task(rebuild(engine, options=RebuildOptions(lock_timeout_s=0.1, lock_attempts=100)))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        assert await scalar(engine, "SELECT count(*) FROM trip_views") > 0  # queries get through meanwhile
        assert time.monotonic() - started < 1.0
        assert not task.done()
        await reader.rollback()
    result = await task
    assert result.resumed_from == result.rows and result.built == 0


async def test_a_foreign_lock_holder_is_still_reported(engine: AsyncEngine) -> None:
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_advisory_lock(:ns, :key)"), {"ns": LOCK_NAMESPACE, "key": LOCK_KEY})
        await other.commit()
        try:
            with pytest.raises(RebuildBusy) as refused:
                await rebuild(engine)
        finally:
            await other.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), {"ns": LOCK_NAMESPACE, "key": LOCK_KEY})
            await other.commit()
    holder = refused.value.holder
    assert holder is not None and holder.pid is None and "pid ?" in str(holder)


async def test_a_migration_during_the_rebuild_is_not_switched_away(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Migrated")
    await w.create_trip(owner, "migrated")
    await fresh_start(engine)
    run_id = await _interrupted_run(engine)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE INDEX test_views_status_idx ON trip_views (status)"))
    try:
        with pytest.raises(RebuildError, match="changed during the rebuild"):
            await rebuild(engine)
        assert await scalar(engine, "SELECT state FROM tripsage.rebuilds WHERE id = :id", id=run_id) == "abandoned"
        assert await scalar(engine, "SELECT to_regclass('public.test_views_status_idx')") is not None
        result = await rebuild(engine)  # a fresh copy carries the new index
        assert result.resumed_from == 0
        assert await scalar(engine, "SELECT to_regclass('public.test_views_status_idx')") is not None
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP INDEX IF EXISTS test_views_status_idx"))
