"""A trip that cannot be projected still loses removed members; only poison dead-letters."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from projections.apply import apply_batch, drain
from projections.dead_letters import RetryPolicy
from projections.rebuild.options import sqlstate
from projections.status import read_report
from projections.timeouts import SessionTimeouts, apply_timeouts
from tests.integration.command_kit import create_trip, signed_in
from tests.support import service_headers
from workers.projector import Projector, ProjectorOptions

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.0)
POISON = (
    "ALTER TABLE trip_views ADD CONSTRAINT test_safety_poison CHECK (search_text NOT LIKE '%safety-pill%') NOT VALID"
)
UNPOISON = "ALTER TABLE trip_views DROP CONSTRAINT IF EXISTS test_safety_poison"


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=4)
    yield eng
    await eng.dispose()


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_a_removed_collaborator_loses_a_trip_whose_document_cannot_be_projected(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, kept, removed = [await signed_in(client, n) for n in ("owner", "kept", "removed")]
    trip = (await create_trip(client, owner, title="Stale but safe"))["id"]
    for user in (kept, removed):
        share = {"permission": "view"}
        response = await client.put(f"/api/trips/{trip}/collaborators/{user.id}", json=share, headers=owner.headers)
        assert response.status_code == 200, response.text
    await drain(engine)
    assert (await client.get(f"/api/trips/{trip}", headers=removed.headers)).status_code == 200

    await execute(engine, POISON)
    try:
        # The document can no longer be built; in the same batch the owner removes a collaborator.
        patched = await client.patch(f"/api/trips/{trip}", json={"title": "safety-pill"}, headers=owner.headers)
        assert patched.status_code == 200, patched.text
        gone = await client.delete(f"/api/trips/{trip}/collaborators/{removed.id}", headers=owner.headers)
        assert gone.status_code == 204, gone.text
        await drain(engine, policy=FAST)

        # Access follows the write model at once: the removed user neither reads nor lists the trip...
        assert (await client.get(f"/api/trips/{trip}", headers=removed.headers)).status_code == 404
        listed = (await client.get("/api/trips", headers=removed.headers)).json()["items"]
        assert trip not in [item["id"] for item in listed]
        # ...while the owner and the remaining collaborator keep the last good (stale) document.
        for user in (owner, kept):
            view = await client.get(f"/api/trips/{trip}", headers=user.headers)
            assert view.status_code == 200 and view.json()["title"] == "Stale but safe"
        rows = await execute(
            engine,
            "SELECT (SELECT member_ids FROM trip_views WHERE trip_id = :t),"
            " (SELECT array_agg(user_id ORDER BY role, user_id) FROM trip_view_members WHERE trip_id = :t)",
            t=uuid.UUID(trip),
        )
        member_ids, member_rows = rows[0]
        assert member_ids == [owner.id, kept.id]
        assert sorted(member_rows) == sorted([owner.id, kept.id])

        # Status shows the stale document: counted, and the trip named among the dead letters.
        admin = (await client.get("/api/admin/projections", headers=service_headers())).json()
        assert admin["projections"][0]["stale_documents"] == len(admin["dead_letters"]) >= 1
        assert (trip, "stale") in [(d["trip_id"], d["document"]) for d in admin["dead_letters"]]
        async with engine.connect() as conn:
            report = await read_report(conn)
        assert report.projections[0].stale_documents == len(report.dead_letters)
    finally:
        await execute(engine, UNPOISON)
    # Once the cause is gone the next retry projects the document and the dead letter heals.
    await execute(engine, "INSERT INTO tripsage.changes (trip_id) VALUES (:t)", t=uuid.UUID(trip))
    await drain(engine)
    assert (await client.get(f"/api/trips/{trip}", headers=owner.headers)).json()["title"] == "safety-pill"
    assert await execute(
        engine, "SELECT count(*) FROM tripsage.dead_letters WHERE trip_id = :t", t=uuid.UUID(trip)
    ) == [(0,)]


async def _dead_letters(engine: AsyncEngine, trip: str) -> int:
    rows = await execute(engine, "SELECT count(*) FROM tripsage.dead_letters WHERE trip_id = :t", t=uuid.UUID(trip))
    return int(rows[0][0])


async def _pending(engine: AsyncEngine, trip: str) -> int:
    rows = await execute(engine, "SELECT count(*) FROM tripsage.changes WHERE trip_id = :t", t=uuid.UUID(trip))
    return int(rows[0][0])


@pytest.mark.parametrize(
    ("timeouts", "expected"),
    [
        (SessionTimeouts(statement_ms=0, lock_ms=150, idle_in_transaction_ms=0), "55P03"),
        (SessionTimeouts(statement_ms=150, lock_ms=0, idle_in_transaction_ms=0), "57014"),
    ],
    ids=["lock-timeout", "statement-timeout"],
)
async def test_timeouts_roll_the_batch_back_and_never_dead_letter(
    client: httpx.AsyncClient, engine: AsyncEngine, database_url: str, timeouts: SessionTimeouts, expected: str
) -> None:
    owner = await signed_in(client, "timeouts")
    await drain(engine)
    trip = (await create_trip(client, owner, title="Blocked"))["id"]
    worker = apply_timeouts(create_engine(database_url, pool_size=2), timeouts)
    try:
        async with engine.connect() as blocker:
            await blocker.begin()
            await blocker.execute(text("LOCK TABLE trip_views IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(DBAPIError) as raised:
                await apply_batch(worker, policy=RetryPolicy(max_attempts=1))
            assert sqlstate(raised.value) == expected
            await blocker.rollback()
        assert await _dead_letters(engine, trip) == 0  # not the trip's fault: nothing parked
        assert await _pending(engine, trip) == 1  # the batch rolled back: its feed rows wait
    finally:
        await worker.dispose()
    await drain(engine)
    assert await _pending(engine, trip) == 0
    assert (await client.get(f"/api/trips/{trip}", headers=owner.headers)).json()["title"] == "Blocked"


async def test_the_worker_retries_a_timed_out_pass_with_backoff_then_projects(
    client: httpx.AsyncClient, engine: AsyncEngine, database_url: str
) -> None:
    owner = await signed_in(client, "backoff")
    await drain(engine)
    worker = apply_timeouts(
        create_engine(database_url, pool_size=2), SessionTimeouts(statement_ms=0, lock_ms=100, idle_in_transaction_ms=0)
    )
    projector = Projector(worker, ProjectorOptions(sweep_interval_s=0.05, failure_backoff_s=0.05, policy=FAST))
    # Written before the lock is taken: an ACCESS EXCLUSIVE lock gets an xid, which holds the horizon.
    trip = (await create_trip(client, owner, title="Waits for the lock"))["id"]
    try:
        async with engine.connect() as blocker:
            await blocker.begin()
            await blocker.execute(text("LOCK TABLE trip_views IN ACCESS EXCLUSIVE MODE"))
            projector.start()
            projector.wake()

            async def failing_repeatedly() -> bool:
                return projector.failures >= 3

            await wait_until(failing_repeatedly)
            assert await _dead_letters(engine, trip) == 0
            await blocker.rollback()

        async def projected() -> bool:  # and the failure count reset by the pass that went through
            return await _pending(engine, trip) == 0 and projector.failures == 0

        await wait_until(projected)
        assert await _dead_letters(engine, trip) == 0
    finally:
        await projector.aclose()
        await worker.dispose()
    assert ProjectorOptions().failure_delay(1) == 0.1
    assert [ProjectorOptions().failure_delay(n) for n in (2, 3, 7, 50)] == [0.2, 0.4, 5.0, 5.0]
