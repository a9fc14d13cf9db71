"""`GET /api/events` end to end: a real uvicorn on loopback, a real projection worker, httpx streaming clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from core.db import create_engine
from core.settings import Settings
from projections.live import prune_removals
from queries.live.shutdown import ClosingHandler
from tests.integration.command_kit import create_trip, signed_in
from tests.integration.live_kit import converged, hub, new_id, only_visible, subscribe, trip_ids
from tests.support import StatementCounter, User, count_statements, serve
from tripsage.app import create_app
from workers.jobs import serve as serve_worker
from workers.projector import ProjectorOptions

GRANTS = """
SELECT has_table_privilege('authenticated', 'tripsage.live_removals', 'SELECT'),
       has_table_privilege('anon', 'tripsage.live_removals', 'SELECT'),
       has_function_privilege('authenticated', 'tripsage.live_replay(text, bigint, uuid)', 'EXECUTE'),
       has_function_privilege('tripsage_api', 'tripsage.live_replay(text, bigint, uuid)', 'EXECUTE'),
       (SELECT relrowsecurity FROM pg_class WHERE oid = 'tripsage.live_removals'::regclass)
"""


@dataclass
class Live:
    """The API under test (its base URL and app) and a client for commands."""

    url: str
    app: FastAPI
    http: httpx.AsyncClient


@pytest.fixture(scope="module")
def served(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    """A second app instance in uvicorn (its own lifespan, hub and listener)."""
    app = create_app(settings)
    with serve(app) as port:
        hub(app).keepalive_s = 0.5
        yield f"http://127.0.0.1:{port}", app


@pytest.fixture(scope="module")
async def live(served: tuple[str, FastAPI], settings: Settings) -> AsyncIterator[Live]:
    """The served API plus a running projection worker (`workers.jobs.serve`)."""
    url, app = served
    stop = asyncio.Event()
    worker = asyncio.create_task(serve_worker(settings, until=stop.wait(), options=ProjectorOptions()))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield Live(url, app, http)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)


async def _share(live: Live, owner: User, trip_id: str, user: User, permission: str = "edit") -> None:
    response = await live.http.put(
        f"/api/trips/{trip_id}/collaborators/{user.id}", json={"permission": permission}, headers=owner.headers
    )
    assert response.status_code == 200, response.text


async def _patch(live: Live, user: User, trip_id: str, title: str) -> None:
    response = await live.http.patch(f"/api/trips/{trip_id}", json={"title": title}, headers=user.headers)
    assert response.status_code == 200, response.text


async def test_changes_arrive_in_order_and_strangers_get_nothing(live: Live) -> None:
    owner, stranger = await signed_in(live.http, "owner"), await signed_in(live.http, "stranger")
    async with (
        subscribe(live.url, owner) as mine,
        subscribe(live.url, stranger) as theirs,
    ):
        trip = await create_trip(live.http, owner)
        async with subscribe(live.url, stranger, trip_id=trip["id"]) as narrowed:
            for n in range(3):
                await _patch(live, owner, trip["id"], f"title {n}")
            response = await live.http.post(
                f"/api/trips/{trip['id']}/itineraries", json={"title": "Day 1", "position": 0}, headers=owner.headers
            )
            assert response.status_code == 201, response.text
            await mine.until(lambda r: any(e.data["version"] == 5 for e in r.of(trip["id"])))
            await asyncio.sleep(0.3)
            assert narrowed.events == [] and theirs.events == []
        seen = mine.of(trip["id"])
        assert all(e.event == "trip" for e in seen)
        versions = [e.data["version"] for e in seen]
        assert versions == sorted(versions) and versions[-1] == 5
        assert [e.id for e in seen] == sorted(e.id for e in seen)
        assert seen[-1].data["itineraries"][0]["title"] == "Day 1"
        got = await live.http.get(f"/api/trips/{trip['id']}", headers=owner.headers)
        assert got.json() == seen[-1].data


async def test_share_then_unshare_and_delete(live: Live) -> None:
    owner, friend = await signed_in(live.http, "owner"), await signed_in(live.http, "friend")
    trip = await create_trip(live.http, owner)
    async with subscribe(live.url, friend) as friends, subscribe(live.url, owner) as owners:
        await _share(live, owner, trip["id"], friend)
        await friends.until(lambda r: r.of(trip["id"]))
        assert friends.of(trip["id"])[-1].event == "trip"
        response = await live.http.delete(f"/api/trips/{trip['id']}/collaborators/{friend.id}", headers=owner.headers)
        assert response.status_code == 204
        await friends.until(lambda r: r.of(trip["id"])[-1].event == "trip_removed")
        await _patch(live, owner, trip["id"], "after unshare")
        await owners.until(lambda r: any(e.data.get("title") == "after unshare" for e in r.of(trip["id"])))
        assert friends.of(trip["id"])[-1].event == "trip_removed"  # silence after removal
        response = await live.http.delete(f"/api/trips/{trip['id']}", headers=owner.headers)
        assert response.status_code == 204
        await owners.until(lambda r: r.of(trip["id"])[-1].event == "trip_removed")
        assert owners.of(trip["id"])[-1].data == {"id": trip["id"]}


async def test_resume_with_last_event_id_misses_nothing(live: Live) -> None:
    owner, friend = await signed_in(live.http, "owner"), await signed_in(live.http, "friend")
    kept, lost = await create_trip(live.http, owner), await create_trip(live.http, owner)
    await _share(live, owner, lost["id"], friend)
    async with subscribe(live.url, friend) as first:
        await _share(live, owner, kept["id"], friend)
        await first.until(lambda r: r.of(kept["id"]))
    resume_from = first.last_id
    # While the friend is away: a change they may see, a removal, and a change of a trip they never see.
    await _patch(live, owner, kept["id"], "while away")
    await live.http.delete(f"/api/trips/{lost['id']}/collaborators/{friend.id}", headers=owner.headers)
    other = await create_trip(live.http, owner)
    async with subscribe(live.url, owner) as watcher:
        await _patch(live, owner, other["id"], "sync point")
        await watcher.until(lambda r: r.of(other["id"]))
    async with subscribe(live.url, friend, last_event_id=resume_from) as second:
        await second.until(lambda r: r.of(lost["id"]) and r.of(kept["id"]))
        assert second.of(kept["id"])[-1].data["title"] == "while away"
        assert second.of(lost["id"])[-1].event == "trip_removed"
        assert other["id"] not in trip_ids(second)
        assert all(e.id > resume_from for e in second.events)


async def test_old_last_event_id_gets_reset(live: Live, settings: Settings) -> None:
    owner = await signed_in(live.http, "owner")
    trip = await create_trip(live.http, owner)
    friend = await signed_in(live.http, "friend")
    await _share(live, owner, trip["id"], friend)
    await live.http.delete(f"/api/trips/{trip['id']}/collaborators/{friend.id}", headers=owner.headers)
    engine = create_engine(str(settings.database_url))
    try:
        async with subscribe(live.url, owner) as watcher:
            await _patch(live, owner, trip["id"], "projected")
            await watcher.until(lambda r: r.of(trip["id"]))
        horizon = await prune_removals(engine, retention_s=0)
        assert horizon is not None and horizon > 0
    finally:
        await engine.dispose()
    async with subscribe(live.url, owner, last_event_id=horizon - 1) as stale:
        await stale.until(lambda r: r.events)
        assert stale.events[0].event == "reset" and stale.events[0].id >= horizon
    async with subscribe(live.url, owner, last_event_id=horizon) as fresh:
        await asyncio.sleep(0.2)
        assert all(e.event != "reset" for e in fresh.events)


def _live_reads(counter: StatementCounter) -> int:
    return sum("tripsage.live_removals r WHERE r.position >" in s for s in counter.statements)


async def test_reads_per_notification_do_not_grow_with_subscribers(live: Live) -> None:
    owner = await signed_in(live.http, "owner")
    members = [await signed_in(live.http, "member") for _ in range(6)]
    trip = await create_trip(live.http, owner)
    for member in members:
        await _share(live, owner, trip["id"], member, "view")
    counts = []
    for group in (members[:1], members):
        async with contextlib.AsyncExitStack() as stack:
            readers = [await stack.enter_async_context(subscribe(live.url, m)) for m in group for _ in range(2)]
            with count_statements(live.app.state.ctx.db.engine) as counter:
                title = new_id()
                await _patch(live, owner, trip["id"], title)
                for reader in readers:
                    await reader.until(lambda r, t=title: any(e.data.get("title") == t for e in r.of(trip["id"])))
            counts.append(_live_reads(counter))
    assert 1 <= counts[1] <= counts[0] + 1 <= 3, counts  # one read per batch: 2 streams or 12, same work
    assert hub(live.app).listener.listening  # woken by NOTIFY, not by polling


async def test_stream_cap_keepalive_and_validation(live: Live) -> None:
    user = await signed_in(live.http, "capped")
    cap = hub(live.app).max_streams_per_user
    async with contextlib.AsyncExitStack() as stack:
        readers = [await stack.enter_async_context(subscribe(live.url, user)) for _ in range(cap)]
        async with subscribe(live.url, user) as refused:
            assert refused.status == 429 and int(refused.headers["retry-after"]) >= 1
            assert refused.headers["content-type"].startswith("application/problem+json")
        await readers[0].until(lambda r: r.comments >= 3)  # keep-alive comments (0.5 s in this app)
    response = await live.http.get("/api/events", headers={"Last-Event-ID": "abc", **user.headers})
    assert response.status_code == 422
    assert (await live.http.get("/api/events")).status_code == 401
    response = await live.http.get("/api/events", params={"trip_id": "nope"}, headers=user.headers)
    assert response.status_code == 422


async def test_a_stream_is_logged_as_it_opens_and_its_head_says_what_it_is(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_in(live.http, "head")
    with caplog.at_level(logging.INFO, logger="tripsage.access"):
        async with subscribe(live.url, user) as reader:
            assert reader.status == 200
            assert reader.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert reader.headers["cache-control"] == "no-cache" and reader.headers["x-accel-buffering"] == "no"
            opened = [
                (vars(r)["status"], vars(r)["request_id"])
                for r in caplog.records
                if r.name == "tripsage.access" and vars(r).get("route") == "/api/events"
            ]
            assert opened == [(200, reader.headers["x-request-id"])]  # logged while the stream is open


async def test_live_objects_are_the_service_roles_only(settings: Settings) -> None:
    engine = create_engine(str(settings.database_url))
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(GRANTS))).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in rows] == [(False, False, False, True, True)]


async def test_a_stop_signal_ends_open_streams_then_reaches_the_server(settings: Settings) -> None:
    app = create_app(settings)
    stopped: list[int] = []
    with serve(app) as port:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            user = await signed_in(http, "leaving")
        async with subscribe(url, user) as reader:
            # What the app's lifespan puts in front of uvicorn's handler (main thread only; here a thread).
            handler = ClosingHandler(hub(app), lambda sig, _frame: stopped.append(sig))
            handler(signal.SIGTERM, None)
            await asyncio.wait_for(reader.ended.wait(), 5)
            assert hub(app).count() == 0 and reader.comments >= 2  # `: connected`, then `: closing`
    assert stopped == [signal.SIGINT]  # passed on as Ctrl-C: uvicorn then exits 0, not 143


async def _random_command(live: Live, rng: random.Random, users: list[User], trips: dict[str, User]) -> None:
    """One random command among create, patch, share, unshare and delete (refusals are fine)."""
    action = rng.choice(["create", "patch", "patch", "share", "share", "unshare", "delete"] if trips else ["create"])
    if action == "create":
        owner = rng.choice(users)
        trips[(await create_trip(live.http, owner))["id"]] = owner
        return
    trip_id = rng.choice(sorted(trips))
    owner, other = trips[trip_id], rng.choice(users)
    if action == "patch":
        await live.http.patch(f"/api/trips/{trip_id}", json={"title": new_id()}, headers=owner.headers)
    elif action == "share" and other != owner:
        await live.http.put(
            f"/api/trips/{trip_id}/collaborators/{other.id}", json={"permission": "view"}, headers=owner.headers
        )
    elif action == "unshare" and other != owner:
        await live.http.delete(f"/api/trips/{trip_id}/collaborators/{other.id}", headers=owner.headers)
    elif action == "delete":
        await live.http.delete(f"/api/trips/{trip_id}", headers=owner.headers)
        del trips[trip_id]


async def test_random_commands_never_leak_and_converge(live: Live) -> None:
    rng = random.Random(20261206)
    users = [await signed_in(live.http, f"p{n}") for n in range(5)]
    trips: dict[str, User] = {}
    async with contextlib.AsyncExitStack() as stack:
        readers = [await stack.enter_async_context(subscribe(live.url, u)) for u in users]
        touched: set[str] = set()
        for _ in range(40):
            await _random_command(live, rng, users, trips)
            touched |= set(trips)
        ids = sorted(touched)
        for user, reader in zip(users, readers, strict=True):
            async with asyncio.timeout(10):
                while not await converged(live.http, user, reader.of, ids):
                    await asyncio.sleep(0.05)
            only_visible(user, reader.events)
