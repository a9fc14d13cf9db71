"""Property: whatever commands run, interleaved with worker batches, duplicate nudges and worker
restarts (or with two workers racing), the read model ends equal to a fresh build of every trip."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis, create_pool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.errors import ApiError
from core.nudge import NUDGE_JOB_ID, PROJECT_JOB, redis_settings
from core.settings import Settings
from projections.apply import apply_batch, drain, drain_pass
from tests.integration.test_projection_support import Writes, assert_converged, run_burst_worker

pytestmark = pytest.mark.slow

USERS = 3
idx = st.integers(min_value=0, max_value=7)
step = st.one_of(
    st.tuples(st.just("create"), st.integers(0, USERS - 1)),
    st.tuples(st.just("patch"), idx, st.text(alphabet="abcxyz é", min_size=1, max_size=8)),
    st.tuples(st.just("delete"), idx),
    st.tuples(st.just("add_itinerary"), idx, st.integers(0, 3)),
    st.tuples(st.just("delete_itinerary"), idx, idx),
    st.tuples(
        st.just("add_activity"),
        idx,
        idx,
        st.sampled_from([None, Decimal("10.50"), Decimal("3")]),
        st.sampled_from(["USD", "EUR"]),
    ),
    st.tuples(st.just("cancel_activity"), idx, idx),
    st.tuples(st.just("delete_activity"), idx, idx),
    st.tuples(st.just("share"), idx, st.integers(0, USERS - 1), st.sampled_from(["view", "edit", "admin"])),
    st.tuples(st.just("unshare"), idx, st.integers(0, USERS - 1)),
    st.tuples(st.just("rename"), st.integers(0, USERS - 1), st.text(alphabet="ABC xyz", min_size=1, max_size=8)),
    st.tuples(st.just("batch"), st.integers(1, 4)),
    st.tuples(st.just("nudge")),
    st.tuples(st.just("restart")),
)
programs = st.lists(step, min_size=5, max_size=30)


@dataclass
class World:
    """What the program created so far (indices in steps pick among these, modulo their count)."""

    users: list[uuid.UUID]
    trips: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)  # (trip, owner)
    itineraries: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    activities: dict[uuid.UUID, list[tuple[uuid.UUID, uuid.UUID]]] = field(default_factory=dict)
    deleted: set[uuid.UUID] = field(default_factory=set)
    shared: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)  # trip → collaborators
    all_trips: list[uuid.UUID] = field(default_factory=list)

    def trip(self, i: int) -> tuple[uuid.UUID, uuid.UUID] | None:
        return self.trips[i % len(self.trips)] if self.trips else None


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=6)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="module")
async def arq_redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings(str(settings.redis_url)))
    yield pool
    await pool.aclose()


async def run_step(w: Writes, world: World, s: tuple[Any, ...]) -> None:  # noqa: C901  # one branch per command
    kind = s[0]
    if kind == "create":
        owner = world.users[s[1]]
        trip = await w.create_trip(owner, "created")
        world.trips.append((trip, owner))
        world.all_trips.append(trip)
        return
    if kind == "rename":
        await w.rename(world.users[s[1]], s[2])
        return
    picked = world.trip(s[1])
    if picked is None:
        return
    trip, owner = picked
    its = world.itineraries.setdefault(trip, [])
    acts = world.activities.setdefault(trip, [])
    if kind == "patch":
        await w.patch_trip(owner, trip, title=s[2])
    elif kind == "delete":
        await w.delete_trip(owner, trip)
        world.trips.remove(picked)
    elif kind == "add_itinerary":
        its.append(await w.add_itinerary(owner, trip, "day", position=s[2]))
    elif kind == "delete_itinerary" and its:
        itinerary = its.pop(s[2] % len(its))
        await w.delete_itinerary(owner, trip, itinerary)
        acts[:] = [a for a in acts if a[1] != itinerary]
    elif kind == "add_activity" and its:
        itinerary = its[s[2] % len(its)]
        activity = await w.add_activity(owner, trip, itinerary, "act", price=s[3], currency=s[4])
        acts.append((activity, itinerary))
    elif kind == "cancel_activity" and acts:
        await w.patch_activity(owner, trip, acts[s[2] % len(acts)][0], booking_status="cancelled")
    elif kind == "delete_activity" and acts:
        activity, _ = acts.pop(s[2] % len(acts))
        await w.delete_activity(owner, trip, activity)
    elif kind == "share":
        other = world.users[s[2]]
        if other != owner:
            await w.share(owner, trip, other, s[3])
            world.shared.setdefault(trip, set()).add(other)
    elif kind == "unshare":
        await _unshare(w, world, trip, owner, world.users[s[2]])


async def _unshare(w: Writes, world: World, trip: uuid.UUID, owner: uuid.UUID, other: uuid.UUID) -> None:
    """Unshare a collaborator; the real command refuses (404, nothing written) anyone else."""
    collaborators = world.shared.setdefault(trip, set())
    if other in collaborators:
        await w.unshare(owner, trip, other)
        collaborators.discard(other)
        return
    with pytest.raises(ApiError) as refused:
        await w.unshare(owner, trip, other)
    assert refused.value.status == 404


async def new_world(w: Writes) -> World:
    """Users with one trip each, shared with the next user (so renames and shares have subjects)."""
    world = World(users=[await w.user(f"user{i}") for i in range(USERS)])
    for i, owner in enumerate(world.users):
        trip = await w.create_trip(owner, f"seed {i}")
        await w.share(owner, trip, world.users[(i + 1) % USERS], "edit")
        world.shared[trip] = {world.users[(i + 1) % USERS]}
        world.trips.append((trip, owner))
        world.all_trips.append(trip)
    return world


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(program=programs)
async def test_read_model_converges_with_batches_nudges_and_restarts(
    engine: AsyncEngine, settings: Settings, arq_redis: ArqRedis, program: list[tuple[Any, ...]]
) -> None:
    w = Writes(engine)
    world = await new_world(w)
    for s in program:
        if s[0] == "batch":
            await apply_batch(engine, batch_size=s[1])
        elif s[0] == "nudge":
            for _ in range(3):  # duplicates are deduplicated by the job id
                await arq_redis.enqueue_job(PROJECT_JOB, _job_id=NUDGE_JOB_ID)
        elif s[0] == "restart":
            await run_burst_worker(settings)  # a fresh worker process-equivalent, start to stop
        else:
            await run_step(w, world, s)
    await arq_redis.enqueue_job(PROJECT_JOB, _job_id=NUDGE_JOB_ID)
    await run_burst_worker(settings)
    await drain(engine)
    await assert_converged(engine, world.all_trips)


async def _worker_loop(database_url: str, stop: asyncio.Event) -> int:
    """An independent worker: its own engine (connections), draining until told to stop."""
    own = create_engine(database_url, pool_size=2)
    trips = 0
    try:
        while not stop.is_set():
            trips += (await drain_pass(own, batch_size=3)).trips
            await asyncio.sleep(0.001)
    finally:
        await own.dispose()
    return trips


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(program=programs)
async def test_two_concurrent_workers_converge(
    engine: AsyncEngine, database_url: str, program: list[tuple[Any, ...]]
) -> None:
    w = Writes(engine)
    world = await new_world(w)
    stop = asyncio.Event()
    workers = [asyncio.create_task(_worker_loop(database_url, stop)) for _ in range(2)]
    try:
        for s in program:
            if s[0] not in ("batch", "nudge", "restart"):
                await run_step(w, world, s)
            await asyncio.sleep(0)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(*workers)
    for task in workers:
        assert task.exception() is None
    await drain(engine)
    await assert_converged(engine, world.all_trips)
