"""Live updates survive their processes dying: the worker SIGKILLed mid-batch, the API killed mid-stream.

Real processes (`arq workers.main.WorkerSettings`, `tripsage serve`), real PostgreSQL and Redis,
commands coming all along. Each subscriber must end with the latest document of every changed trip
(equal to `GET /api/trips/{id}`), in order, with nothing it may not see.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.settings import Settings
from tests.integration.command_kit import create_trip, signed_in
from tests.integration.live_kit import converged, only_visible
from tests.integration.live_procs import Follower, api_process, following, worker_process
from tests.integration.test_worker_faults import _in_batch, backlog, wait_until
from tests.support import User, free_port, serve
from tripsage.app import create_app
from workers.jobs import serve as serve_worker
from workers.projector import ProjectorOptions

CONVERGE_S = 60.0  # generous: the box is shared


@dataclass
class Cast:
    """An owner, a friend the owner shares with and unshares, a stranger; their trips."""

    owner: User
    friend: User
    stranger: User
    trips: list[str]

    @property
    def users(self) -> list[User]:
        """Everyone, owner first."""
        return [self.owner, self.friend, self.stranger]


async def _cast(http: httpx.AsyncClient) -> Cast:
    owner, friend, stranger = [await signed_in(http, name) for name in ("owner", "friend", "stranger")]
    trips = [(await create_trip(http, owner))["id"] for _ in range(3)]
    response = await http.put(
        f"/api/trips/{trips[0]}/collaborators/{friend.id}", json={"permission": "edit"}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    return Cast(owner, friend, stranger, trips)


async def _traffic(http: httpx.AsyncClient, cast: Cast, stop: asyncio.Event) -> int:
    """Commands until `stop`: patches by owner and friend, the friend shared on and off trip 2."""
    sent = 0
    while not stop.is_set():
        shared, alone, toggled = cast.trips
        owner, friend = cast.owner.headers, cast.friend.headers
        requests = [
            http.patch(f"/api/trips/{shared}", json={"title": f"by friend {sent}"}, headers=friend),
            http.patch(f"/api/trips/{alone}", json={"title": f"alone {sent}"}, headers=owner),
            http.put(f"/api/trips/{toggled}/collaborators/{cast.friend.id}", json={"permission": "view"}, headers=owner)
            if sent % 2 == 0
            else http.delete(f"/api/trips/{toggled}/collaborators/{cast.friend.id}", headers=owner),
        ]
        for request in requests:
            with contextlib.suppress(httpx.TransportError):  # an API process going away mid-request
                await request
        sent += 1
        await asyncio.sleep(0.05)
    return sent


@contextlib.asynccontextmanager
async def _commands(http: httpx.AsyncClient, cast: Cast) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(_traffic(http, cast, stop))
    try:
        yield
    finally:
        stop.set()
        assert await asyncio.wait_for(task, CONVERGE_S) > 0


async def _all_converge(http: httpx.AsyncClient, cast: Cast, followers: list[Follower]) -> None:
    ids = cast.trips
    async with asyncio.timeout(CONVERGE_S):
        for user, follower in zip(cast.users, followers, strict=True):
            while not await converged(http, user, follower.of, ids):
                await asyncio.sleep(0.1)
    for user, follower in zip(cast.users, followers, strict=True):
        only_visible(user, follower.events)
        for trip_id in ids:  # in order per trip: versions only grow
            versions = [e.data["version"] for e in follower.of(trip_id) if e.event == "trip"]
            assert versions == sorted(versions), (trip_id, versions)
    assert followers[2].events == []  # the stranger


async def _documents(engine: AsyncEngine, trip_ids: list[str]) -> dict[str, bytes]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT trip_id::text, doc FROM trip_views WHERE trip_id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": trip_ids},
        )
        return {trip_id: bytes(doc) for trip_id, doc in rows}


async def test_worker_sigkill_mid_batch_subscribers_miss_nothing(settings: Settings) -> None:
    engine = create_engine(str(settings.database_url))
    with serve(create_app(settings)) as port:
        url = f"http://127.0.0.1:{port}"
        worker = killed = worker_process(settings)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                cast = await _cast(http)
                async with following(url, cast.users) as followers:
                    async with _commands(http, cast):
                        # A backlog keeps the worker's batches long enough to be killed inside one; fewer
                        # trips than a stream's queue holds (QUEUE_TRIPS), so the owner is never reset.
                        piled = [str(t) for t in await backlog(engine, cast.owner.id, 150)]
                        await wait_until(lambda: _in_batch(engine), timeout=30)
                        killed.send_signal(signal.SIGKILL)
                        killed.wait(10)
                        await asyncio.sleep(0.5)  # commands keep coming with no worker at all
                        worker = worker_process(settings)
                        await asyncio.sleep(1)
                    await _all_converge(http, cast, followers)
                    await wait_until(lambda: _backlog_received(engine, followers[0], piled), timeout=CONVERGE_S)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
            async with engine.begin() as conn:  # the killed worker's heartbeat stays behind: readiness would report it
                await conn.execute(text("DELETE FROM tripsage.worker_heartbeats WHERE pid = :pid"), {"pid": killed.pid})
            await engine.dispose()


async def test_api_killed_mid_stream_clients_resume_and_miss_nothing(settings: Settings) -> None:
    port, stop = free_port(), asyncio.Event()
    worker = asyncio.create_task(serve_worker(settings, until=stop.wait(), options=ProjectorOptions()))
    streams = f"http://127.0.0.1:{port}"
    try:
        with serve(create_app(settings)) as commands_port, contextlib.ExitStack() as processes:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{commands_port}", timeout=10) as http:
                cast = await _cast(http)  # a second API process takes the commands
                first = processes.enter_context(api_process(settings, port))
                async with following(streams, cast.users) as followers:
                    async with _commands(http, cast):
                        await wait_until(lambda: _heard(followers), timeout=CONVERGE_S)
                        first.send_signal(signal.SIGKILL)
                        first.wait(10)
                        await asyncio.sleep(0.5)  # commands keep coming while no API serves the streams
                        processes.enter_context(api_process(settings, port))
                        await wait_until(lambda: _reconnected(followers), timeout=CONVERGE_S)
                        await asyncio.sleep(1)
                    await _all_converge(http, cast, followers)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)


async def _backlog_received(engine: AsyncEngine, follower: Follower, piled: list[str]) -> bool:
    """Every backlog trip is projected and the follower's last event of it is the stored document."""
    stored = await _documents(engine, piled)
    return len(stored) == len(piled) and all(
        [e.data for e in follower.of(trip_id)][-1:] == [orjson.loads(doc)] for trip_id, doc in stored.items()
    )


async def _heard(followers: list[Follower]) -> bool:
    return bool(followers[0].events and followers[1].events)


async def _reconnected(followers: list[Follower]) -> bool:
    return all(f.connections >= 2 for f in followers)
