from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine, set_request_claims
from projections.apply import apply_batch, drain, drain_pass, retry_due
from projections.dead_letters import RetryPolicy, list_dead_letters, retry_dead
from projections.status import read_report, read_status
from queries.consistency import is_applied
from tests.integration.test_projection_support import Writes, assert_converged, principal, read_model
from tests.support import count_statements

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.0)


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=4)
    yield eng
    await eng.dispose()


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(text(sql), params)


async def title_of(engine: AsyncEngine, trip_id: uuid.UUID) -> str | None:
    docs = await read_model(engine, [trip_id])
    return None if trip_id not in docs else str(orjson.loads(docs[trip_id])["title"])


async def test_gap_an_older_open_transaction_is_never_stepped_over(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Gap")
    slow_trip, fast_trip = await w.create_trip(owner, "slow v1"), await w.create_trip(owner, "fast v1")
    await drain(engine)

    async with engine.connect() as t1:
        await t1.begin()
        await set_request_claims(t1, principal(owner))
        # T1 writes first (so it holds the smaller xid) and stays open...
        await t1.execute(
            text("UPDATE trips SET title = 'slow v2', version = version + 1 WHERE id = :id"), {"id": slow_trip}
        )
        # ...while T2 writes and commits.
        await w.patch_trip(owner, fast_trip, title="fast v2")
        await drain(engine, settle_timeout_s=0)
        # Nothing at or after T1's xid was consumed: T2's row waits behind T1 in the feed.
        assert await title_of(engine, fast_trip) == "fast v1"
        assert await scalar(engine, "SELECT count(*) FROM tripsage.changes WHERE trip_id = :id", id=fast_trip) == 1
        await t1.commit()
    await drain(engine)
    assert await title_of(engine, slow_trip) == "slow v2"
    assert await title_of(engine, fast_trip) == "fast v2"
    await assert_converged(engine, [slow_trip, fast_trip])


async def test_applying_the_same_change_twice_changes_nothing(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Twice")
    trip = await w.create_trip(owner)
    await w.add_itinerary(owner, trip, "Day")
    await drain(engine)
    before = await _view_row(engine, trip)
    # Replay: the same change recorded again (as a redelivery would).
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO tripsage.changes (trip_id) VALUES (:id), (:id)"), {"id": trip})
    assert await drain(engine) == 1
    after = await _view_row(engine, trip)
    assert after == before  # same doc, etag, projected_at and row version (xmin): not even rewritten
    await assert_converged(engine, [trip])


async def _view_row(engine: AsyncEngine, trip_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text("SELECT xmin::text, etag, projected_at, doc FROM trip_views WHERE trip_id = :id"), {"id": trip_id}
            )
        ).one()


async def test_several_changes_to_one_trip_cost_one_rebuild(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Many")
    await drain(engine)
    trip = await w.create_trip(owner)
    for i in range(5):
        await w.patch_trip(owner, trip, title=f"v{i}")
    with count_statements(engine) as counter:
        result = await apply_batch(engine)
    assert result.claimed == 6 and result.refreshed == 1 and result.failed == 0
    assert sum("INSERT INTO trip_views" in s for s in counter.statements) == 1
    assert await title_of(engine, trip) == "v4"
    assert (await apply_batch(engine)).claimed == 0


async def test_fan_out_reaches_every_trip_that_shows_the_user(engine: AsyncEngine) -> None:
    w = Writes(engine)
    collaborator = await w.user("Colla Borator")
    owners = [await w.user(f"Owner {i}") for i in range(4)]
    trips = []
    for i in range(200):
        owner = owners[i % len(owners)]
        trip = await w.create_trip(owner, f"Shared {i}")
        await w.share(owner, trip, collaborator, "edit")
        trips.append(trip)
    own_trip = await w.create_trip(collaborator, "Mine")
    await drain(engine)

    xid = await w.rename(collaborator, "Renamed Person")
    assert not await is_applied(engine, xid)
    # A small fan-out step forces continuation rows (bounded batches), all carrying the origin xid.
    first = await drain_pass(engine, fanout_limit=50, batch_size=1)
    assert first.batches >= 1
    assert not await is_applied(engine, xid) or first.trips >= 201
    await drain(engine, fanout_limit=50, batch_size=64)
    assert await is_applied(engine, xid)
    docs = await read_model(engine, [*trips, own_trip])
    assert len(docs) == 201
    for trip in trips:
        collaborators = orjson.loads(docs[trip])["collaborators"]
        assert collaborators == [{"user_id": str(collaborator), "display_name": "Renamed Person", "permission": "edit"}]
    assert orjson.loads(docs[own_trip])["owner"]["display_name"] == "Renamed Person"
    await assert_converged(engine, [*trips, own_trip])


POISON = "ALTER TABLE trip_views ADD CONSTRAINT test_poison CHECK (search_text NOT LIKE '%poison-pill%') NOT VALID"


async def test_poison_trip_is_retried_then_parked_while_others_flow(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Poison")
    bad, good = await w.create_trip(owner, "bad"), await w.create_trip(owner, "good")
    await drain(engine)
    async with engine.begin() as conn:
        await conn.execute(text(POISON))
    try:
        bad_xid = await w.patch_trip(owner, bad, title="poison-pill")
        await w.patch_trip(owner, good, title="good v2")
        await drain(engine, policy=FAST)
        assert await title_of(engine, good) == "good v2"  # the rest of the batch flowed
        assert await title_of(engine, bad) == "bad"  # the poison trip kept its last good document
        letters = await _letters(engine)
        assert [(d.trip_id, d.attempts, d.parked) for d in letters] == [(bad, 1, False)]
        assert "23514" in letters[0].error and "test_poison" in letters[0].error
        assert not await is_applied(engine, bad_xid)  # its token stays stale

        # Retries with backoff (zero here) until the budget is spent, then parked.
        assert (await retry_due(engine, policy=FAST)).failed == 1
        assert (await retry_due(engine, policy=FAST)).failed == 1
        assert (await retry_due(engine, policy=FAST)).claimed == 0
        letters = await _letters(engine)
        assert [(d.trip_id, d.attempts, d.parked) for d in letters] == [(bad, 3, True)]
        async with engine.connect() as conn:
            status = await read_status(conn)
            report = await read_report(conn)
        assert status.dead_letters == 1 and status.retrying == 0
        assert report.to_json()["dead_letters"][0]["trip_id"] == str(bad)
        assert report.to_json()["dead_letters"][0]["parked"] is True
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE trip_views DROP CONSTRAINT test_poison"))

    # The operator fixed the cause and re-queues: the trip projects and its token turns fresh.
    assert await retry_dead(engine) == [bad]
    assert await retry_dead(engine) == []
    assert (await retry_due(engine, policy=FAST)).refreshed == 1
    assert await _letters(engine) == []
    assert await title_of(engine, bad) == "poison-pill"
    assert await is_applied(engine, bad_xid)
    await assert_converged(engine, [bad, good])


async def test_a_clean_later_change_heals_a_parked_trip(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Heal")
    trip = await w.create_trip(owner, "ok")
    await drain(engine)
    async with engine.begin() as conn:
        await conn.execute(text(POISON))
    try:
        await w.patch_trip(owner, trip, title="poison-pill")
        await drain(engine, policy=RetryPolicy(max_attempts=1))
        assert [(d.trip_id, d.parked) for d in await _letters(engine)] == [(trip, True)]
        assert (await retry_due(engine)).claimed == 0  # parked: not retried by the sweep
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE trip_views DROP CONSTRAINT test_poison"))
    await w.patch_trip(owner, trip, title="fixed")
    await drain(engine)
    assert await _letters(engine) == []
    assert await title_of(engine, trip) == "fixed"


async def _letters(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return await list_dead_letters(conn)


def test_retry_policy_backoff() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_s=1.0, max_delay_s=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(0) == 1.0


async def test_on_applied_hook_runs_in_the_apply_transaction(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Hooked")
    await drain(engine)
    trips = [await w.create_trip(owner, f"H{i}") for i in range(3)]
    seen: list[uuid.UUID] = []

    async def hook(conn: Any, trip_ids: Any) -> None:
        assert conn.in_transaction()
        seen.extend(trip_ids)

    await drain(engine, on_applied=hook)
    assert set(trips) <= set(seen)
