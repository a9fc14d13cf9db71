"""`verify`: every kind of difference is found and located; pending changes are waited for, not blamed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from projections.rebuild.verify import Difference, VerifyReport, first_difference, verify
from tests.integration.test_projection_support import Writes
from tests.integration.test_rebuild_support import fresh_start, running_worker


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=4)
    yield eng
    await eng.dispose()


async def execute(engine: AsyncEngine, sql: str, **params: object) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def test_verify_finds_corrupted_missing_extra_and_inconsistent_rows(engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Verifier")
    friend = await w.user("Friend")
    trips = [await w.create_trip(owner, f"verify {i}") for i in range(6)]
    itinerary = await w.add_itinerary(owner, trips[0], "Day")
    await w.add_activity(owner, trips[0], itinerary, "Ride")
    await w.share(owner, trips[4], friend)
    await fresh_start(engine)
    assert (await verify(engine, batch_size=50)).clean

    doc = orjson.loads(
        await _scalar(engine, "SELECT doc FROM trip_views WHERE trip_id = :id", id=trips[0])  # corrupted
    )
    doc["itineraries"][0]["activities"][0]["title"] = "Tampered"
    await execute(engine, "UPDATE trip_views SET doc = :doc WHERE trip_id = :id", doc=orjson.dumps(doc), id=trips[0])
    await execute(engine, "DELETE FROM trip_views WHERE trip_id = :id", id=trips[1])  # missing
    ghost = uuid.uuid4()  # extra: a document without a trip
    await execute(
        engine,
        "INSERT INTO trip_views (trip_id, owner_id, member_ids, status, search_text, updated_at, version, etag, doc)"
        " SELECT :ghost, owner_id, member_ids, status, search_text, updated_at, version, etag, doc"
        " FROM trip_views WHERE trip_id = :id",
        ghost=ghost,
        id=trips[5],
    )
    await execute(engine, "UPDATE trip_views SET status = 'booked' WHERE trip_id = :id", id=trips[2])  # columns
    await execute(engine, "UPDATE trip_views SET etag = '\"1-0\"' WHERE trip_id = :id", id=trips[3])  # etag
    await execute(engine, "DELETE FROM trip_view_members WHERE trip_id = :id AND role = 'shared'", id=trips[4])

    report = await verify(engine, batch_size=40, settle_s=0)
    found = {d.trip_id: d for d in report.differences}
    assert found == {
        trips[0]: Difference(trips[0], "differs", "$.itineraries[0].activities[0].title"),
        trips[1]: Difference(trips[1], "missing"),
        ghost: Difference(ghost, "extra"),
        trips[2]: Difference(trips[2], "columns"),
        trips[3]: Difference(trips[3], "etag"),
        trips[4]: Difference(trips[4], "members"),
    }
    assert report.checked >= 6 and not report.clean
    assert str(found[trips[0]]) == f"differs  {trips[0]}  at $.itineraries[0].activities[0].title"
    assert report.to_json()["differences"][0]["kind"] in {"differs", "missing", "extra", "columns", "etag", "members"}

    await execute(engine, "DELETE FROM trip_views WHERE trip_id = :id", id=ghost)
    await fresh_start(engine)
    assert (await verify(engine)).clean


async def test_pending_changes_are_waited_for_or_drained_before_reporting(
    engine: AsyncEngine, database_url: str
) -> None:
    w = Writes(engine)
    owner = await w.user("Pending")
    trip = await w.create_trip(owner, "pending v1")
    await fresh_start(engine)

    await w.patch_trip(owner, trip, title="pending v2")  # no worker: the feed row waits
    stale = await verify(engine, settle_s=0.3)
    assert stale.differences == [Difference(trip, "differs", "$.title", pending=True)]
    assert "changes still pending" in str(stale.differences[0])

    async def late_worker() -> None:
        await asyncio.sleep(0.3)
        async with running_worker(database_url):
            await asyncio.sleep(1.0)

    worker = asyncio.create_task(late_worker())
    settled = await verify(engine, settle_s=10)  # re-checked until the worker applied it
    await worker
    assert settled.clean, settled.differences

    await w.rename(owner, "Pending Renamed")  # a profile change pending: every trip it shows
    assert (await verify(engine, settle_s=0)).differences[0].pending
    assert (await verify(engine, drain=True)).clean


def test_first_difference_names_the_path() -> None:
    base = {"a": 1, "b": [{"c": "x"}, {"c": "y"}], "d": {"e": None}}

    def path(live: object) -> str:
        return first_difference(orjson.dumps(live), orjson.dumps(base))

    assert path({**base, "a": 2}) == "$.a"
    assert path({**base, "a": True}) == "$.a"  # True == 1 in Python, not in JSON
    assert path({**base, "b": [{"c": "x"}, {"c": "z"}]}) == "$.b[1].c"
    assert path({**base, "b": [{"c": "x"}]}) == "$.b[1] (length 1, expected 2)"
    assert path({"a": 1, "b": base["b"]}) == "$.d (missing)"
    assert path({**base, "x y": 1}) == '$["x y"] (unexpected)'
    assert path({"b": base["b"], "a": 1, "d": base["d"]}) == "$ (key order)"
    assert first_difference(b"{nope", orjson.dumps(base)) == "$ (not valid JSON)"
    assert first_difference(b'{"a": 1}', b'{"a":1}') == "$ (same JSON, different bytes)"
    assert VerifyReport(0, []).clean


async def _scalar(engine: AsyncEngine, sql: str, **params: object) -> bytes:
    async with engine.connect() as conn:
        value = await conn.scalar(text(sql), params)
    assert isinstance(value, bytes)
    return value
