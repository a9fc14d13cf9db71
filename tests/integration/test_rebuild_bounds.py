"""The switch holds its exclusive lock for a bounded set of trips; rollback catches the old tables up."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from projections.apply import drain
from projections.rebuild.rollback import rollback
from projections.rebuild.run import RebuildError, RebuildOptions, rebuild
from projections.rebuild.verify import verify
from tests.integration.command_kit import create_trip, signed_in
from tests.integration.test_projection_support import Writes, assert_converged
from tests.integration.test_rebuild_support import fresh_start, rows, scalar

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=6)
    yield eng
    await eng.dispose()


def _write_from_another_thread(database_url: str, owner: uuid.UUID, trips: list[uuid.UUID], title: str) -> None:
    """Run commands on the trips from a thread with its own loop and engine, while the caller's loop is blocked."""

    async def write() -> None:
        own = create_engine(database_url, pool_size=1)
        try:
            w = Writes(own)
            for trip in trips:
                await w.patch_trip(owner, trip, title=title)
        finally:
            await own.dispose()

    thread = threading.Thread(target=asyncio.run, args=(write(),))
    thread.start()
    thread.join(60)


async def rebuilt_with_trips(engine: AsyncEngine, name: str, count: int) -> tuple[Writes, uuid.UUID, list[uuid.UUID]]:
    """A user with `count` trips, then a known-good read model (feed drained, everything rebuilt)."""
    w = Writes(engine)
    owner = await w.user(name)
    trips = [await w.create_trip(owner, f"{name} {i}") for i in range(count)]
    await fresh_start(engine)
    return w, owner, trips


async def refused_while_a_reader_holds_the_tables(engine: AsyncEngine, action: Awaitable[object], match: str) -> None:
    """`action` (a rebuild or rollback) gives up with `match` while a long reader holds the live tables; nothing moved."""
    live_before = await scalar(engine, "SELECT 'public.trip_views'::regclass::oid")
    async with engine.connect() as reader:
        await reader.execute(text("SELECT count(*) FROM trip_view_members"))  # a long reader holds its lock
        with pytest.raises(RebuildError, match=match):
            await action
        await reader.rollback()
    assert await scalar(engine, "SELECT 'public.trip_views'::regclass::oid") == live_before  # nothing switched


async def test_the_switch_refreshes_at_most_max_switch_trips_under_its_lock(
    engine: AsyncEngine, database_url: str
) -> None:
    w, owner, trips = await rebuilt_with_trips(engine, "Bounded", 40)
    options = RebuildOptions(batch_size=8, catch_up_until=2, max_switch_trips=5)
    fired = False

    def just_before_the_switch(phase: str, done: int, _total: int) -> None:
        nonlocal fired
        if phase == "switch" and done == 0 and not fired:
            fired = True  # 30 trips change between the end of the build and the switch
            _write_from_another_thread(database_url, owner, trips[:30], "changed before the switch")

    result = await rebuild(engine, options=options, on_progress=just_before_the_switch)
    assert fired
    assert result.under_lock <= options.max_switch_trips  # the bound held...
    assert result.caught_up >= 30  # ...because the 30 changed trips were caught up outside the lock
    assert result.switch_attempts >= 1 and result.lock_ms > 0
    # Nothing was lost: the new live tables hold every change, before and after the worker ran.
    live = await rows(
        engine,
        "SELECT count(*) FROM trip_views WHERE trip_id = ANY(CAST(:ids AS uuid[]))"
        " AND convert_from(doc, 'UTF8')::json->>'title' = 'changed before the switch'",
        ids=trips[:30],
    )
    assert live == [(30,)]
    await drain(engine)
    await assert_converged(engine, trips)


async def test_a_switch_that_cannot_get_its_locks_fails_clearly_and_resumes_later(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Locked out")
    await w.create_trip(owner, "locked out")
    await fresh_start(engine)
    busy = RebuildOptions(lock_timeout_s=0.05, lock_attempts=3)
    await refused_while_a_reader_holds_the_tables(engine, rebuild(engine, options=busy), "stayed busy .* 3 attempts")
    assert await scalar(engine, "SELECT count(*) FROM tripsage.rebuilds WHERE state = 'building'") == 1
    resumed = await rebuild(engine)
    assert resumed.built == 0 and resumed.resumed_from == resumed.rows  # the copy was kept and went live


async def test_rollback_never_brings_back_a_deleted_or_unshared_trip(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, friend = await signed_in(client, "rollback-owner"), await signed_in(client, "rollback-friend")
    deleted = (await create_trip(client, owner, title="Deleted after the switch"))["id"]
    unshared = (await create_trip(client, owner, title="Unshared after the switch"))["id"]
    for trip in (deleted, unshared):
        put = {"permission": "view"}
        response = await client.put(f"/api/trips/{trip}/collaborators/{friend.id}", json=put, headers=owner.headers)
        assert response.status_code == 200, response.text
    await fresh_start(engine)  # the tables the rollback will restore saw both trips shared
    await rebuild(engine)  # a second rebuild: those tables are now the previous version

    gone = await client.delete(f"/api/trips/{deleted}", headers=owner.headers)
    assert gone.status_code == 204, gone.text
    token = gone.headers["x-consistency-token"]
    left = await client.delete(f"/api/trips/{unshared}/collaborators/{friend.id}", headers=owner.headers)
    assert left.status_code == 204, left.text
    await drain(engine)

    undone = await rollback(engine)
    assert undone.caught_up + undone.under_lock >= 2
    # At once, with no worker running: the deleted trip is gone, the unshared one invisible to the
    # friend, and the delete's consistency token is honestly fresh (its write is in the tables).
    assert (await client.get(f"/api/trips/{deleted}", headers=owner.headers)).status_code == 404
    assert (await client.get(f"/api/trips/{unshared}", headers=friend.headers)).status_code == 404
    listed = (await client.get("/api/trips", headers=friend.headers)).json()["items"]
    assert {deleted, unshared}.isdisjoint(item["id"] for item in listed)
    assert (await client.get(f"/api/trips/{unshared}", headers=owner.headers)).status_code == 200
    fresh = await client.get(f"/api/trips/{unshared}", headers=owner.headers | {"X-Consistency-Token": token})
    assert fresh.headers["x-consistency"] == "fresh"
    report = await verify(engine)
    assert report.clean, report.differences[:5]

    forward = await rollback(engine)  # and forward again, caught up the same way
    assert (forward.definition, forward.previous) == (undone.previous, undone.definition)
    assert (await client.get(f"/api/trips/{deleted}", headers=owner.headers)).status_code == 404
    assert (await client.get(f"/api/trips/{unshared}", headers=friend.headers)).status_code == 404
    await fresh_start(engine)


async def test_writes_that_keep_outrunning_the_catch_up_stop_the_switch_clearly(
    engine: AsyncEngine, database_url: str
) -> None:
    w, owner, trips = await rebuilt_with_trips(engine, "Outrun", 6)
    live_before = await scalar(engine, "SELECT 'public.trip_views'::regclass::oid")

    def before_the_switch(phase: str, done: int, _total: int) -> None:
        if phase == "switch" and done == 0:
            _write_from_another_thread(database_url, owner, trips, "outran")

    # No catch-up rounds at all: the 6 changed trips stay over the bound of 2 at every attempt.
    starved = RebuildOptions(catch_up_batches=0, max_switch_trips=2, lock_attempts=2)
    with pytest.raises(RebuildError, match="writes kept changing more than 2 trips"):
        await rebuild(engine, options=starved, on_progress=before_the_switch)
    assert await scalar(engine, "SELECT 'public.trip_views'::regclass::oid") == live_before  # nothing switched
    resumed = await rebuild(engine)  # with catch-up rounds it goes through, and nothing was lost
    assert resumed.built == 0 and resumed.under_lock <= RebuildOptions().max_switch_trips
    await drain(engine)
    await assert_converged(engine, trips)


async def test_a_rollback_that_cannot_catch_up_or_lock_refuses_clearly(engine: AsyncEngine) -> None:
    w, owner, trips = await rebuilt_with_trips(engine, "Refused rollback", 3)
    await rebuild(engine)
    for trip in trips:
        await w.patch_trip(owner, trip, title="after the switch")
    await drain(engine)
    live_before = await scalar(engine, "SELECT 'public.trip_views'::regclass::oid")
    behind = RebuildOptions(catch_up_batches=0, max_switch_trips=1, lock_attempts=2)
    with pytest.raises(RebuildError, match="rollback: writes kept changing more than 1 trips"):
        await rollback(engine, options=behind)
    busy = RebuildOptions(lock_timeout_s=0.05, lock_attempts=2)
    await refused_while_a_reader_holds_the_tables(engine, rollback(engine, options=busy), "rollback: .* stayed busy")
    assert await scalar(engine, "SELECT 'public.trip_views'::regclass::oid") == live_before  # nothing swapped
    await fresh_start(engine)


async def test_a_trip_the_rollback_cannot_project_keeps_its_old_document_with_narrowed_access(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, friend = await signed_in(client, "poisoned-owner"), await signed_in(client, "poisoned-friend")
    trip = (await create_trip(client, owner, title="Shared before"))["id"]
    put = await client.put(
        f"/api/trips/{trip}/collaborators/{friend.id}", json={"permission": "view"}, headers=owner.headers
    )
    assert put.status_code == 200, put.text
    await fresh_start(engine)
    await rebuild(engine)  # the tables that saw the trip shared are now the previous version
    async with engine.begin() as conn:  # the previous tables refuse this trip's new document
        await conn.execute(
            text(
                "ALTER TABLE tripsage_prev.trip_views ADD CONSTRAINT test_prev_poison"
                " CHECK (search_text NOT LIKE '%prev-pill%') NOT VALID"
            )
        )
    patched = await client.patch(f"/api/trips/{trip}", json={"title": "prev-pill"}, headers=owner.headers)
    assert patched.status_code == 200, patched.text
    left = await client.delete(f"/api/trips/{trip}/collaborators/{friend.id}", headers=owner.headers)
    assert left.status_code == 204, left.text
    await drain(engine)

    await rollback(engine)
    assert (await client.get(f"/api/trips/{trip}", headers=friend.headers)).status_code == 404  # access narrowed
    view = await client.get(f"/api/trips/{trip}", headers=owner.headers)
    assert view.status_code == 200 and view.json()["title"] == "Shared before"  # the document stays old
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE trip_views DROP CONSTRAINT test_prev_poison"))
    await fresh_start(engine)
