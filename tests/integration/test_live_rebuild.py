"""Live updates across rebuilds: what a switch or `rebuild --trip` puts live is numbered and pushed.

Each test makes the read model differ from the write model behind the worker's back (a change whose
feed row is lost; a member the live document names wrongly), so that only the rebuild brings the
right documents live. A subscriber must then receive them (and a removal for the member who lost
access), and a client resuming with an id from before the rebuild must get them replayed.
Also: migration 0011 upgrades a 0010 database holding data.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.migrate import migrate
from core.settings import Settings
from projections.rebuild.rollback import rebuild_trip
from projections.rebuild.run import rebuild
from tests.integration.command_kit import create_trip, signed_in
from tests.integration.live_kit import Reader, converged, only_visible, subscribe
from tests.integration.test_migrations import empty_database, script, sql
from tests.support import User, serve
from tripsage.app import create_app
from workers.jobs import serve as serve_worker
from workers.projector import ProjectorOptions

__all__ = ["empty_database"]  # a fixture, used by name

LOST_CHANGE = """
UPDATE trips SET title = :title WHERE id = :trip_id;
"""
WRONG_MEMBER = text("UPDATE trip_views SET member_ids = member_ids || CAST(:user_id AS uuid) WHERE trip_id = :trip_id")


@dataclass
class World:
    """The served API, a client, the login-role engine; an owner with a trip shared with a friend, and another trip."""

    url: str
    http: httpx.AsyncClient
    engine: AsyncEngine
    owner: User
    friend: User
    shared: str = ""
    mine: str = ""

    async def make_trips(self) -> None:
        """The owner's two trips, `shared` with the friend (once the readers listen)."""
        self.shared = (await create_trip(self.http, self.owner))["id"]
        self.mine = (await create_trip(self.http, self.owner))["id"]
        response = await self.http.put(
            f"/api/trips/{self.shared}/collaborators/{self.friend.id}",
            json={"permission": "view"},
            headers=self.owner.headers,
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def served(settings: Settings) -> Iterator[str]:
    """An app in uvicorn on loopback."""
    app: FastAPI = create_app(settings)
    with serve(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def world(served: str, settings: Settings) -> AsyncIterator[World]:
    """A running worker and a fresh cast for each test."""
    stop = asyncio.Event()
    worker = asyncio.create_task(serve_worker(settings, until=stop.wait(), options=ProjectorOptions()))
    engine = create_engine(str(settings.database_url), pool_size=6)
    try:
        async with httpx.AsyncClient(base_url=served, timeout=30) as http:
            owner, friend = await signed_in(http, "owner"), await signed_in(http, "friend")
            yield World(served, http, engine, owner, friend)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
        await engine.dispose()


async def _diverge(w: World, title: str) -> None:
    """The shared trip's title changes with its feed row lost; the live `mine` names the friend wrongly."""
    async with w.engine.begin() as conn:
        await conn.execute(text(LOST_CHANGE), {"title": title, "trip_id": w.shared})
        await conn.execute(text("DELETE FROM tripsage.changes WHERE trip_id = :trip_id"), {"trip_id": w.shared})
        await conn.execute(WRONG_MEMBER, {"user_id": w.friend.id, "trip_id": w.mine})


async def _settled(w: World, reader: Reader, user: User) -> int:
    """Wait until the reader has both trips as GET has them; the id of its last event."""
    async with asyncio.timeout(30):
        while not await converged(w.http, user, reader.of, [w.shared, w.mine]):
            await asyncio.sleep(0.05)
    return reader.last_id


async def _check(w: World, owners: Reader, friends: Reader, title: str, before: int) -> None:
    """Both readers converge to the rebuilt documents; the friend lost `mine`; a resume from `before` replays it all."""
    await friends.until(lambda r: any(e.event == "trip_removed" for e in r.of(w.mine)), 30)
    await owners.until(lambda r: any(e.event == "trip" and e.data["title"] == title for e in r.of(w.shared)), 30)
    for user, reader in ((w.owner, owners), (w.friend, friends)):
        await _settled(w, reader, user)
        only_visible(user, reader.events)
    async with subscribe(w.url, w.friend, last_event_id=before) as resumed:
        await resumed.until(lambda r: r.of(w.shared) and r.of(w.mine), 30)
        assert resumed.of(w.shared)[-1].data["title"] == title
        assert resumed.of(w.mine)[-1].event == "trip_removed"


@pytest.mark.parametrize("how", ["online rebuild", "rebuild --trip"])
async def test_what_a_rebuild_puts_live_is_pushed_and_resume_spans_it(world: World, how: str) -> None:
    w = world
    async with subscribe(w.url, w.owner) as owners, subscribe(w.url, w.friend) as friends:
        await w.make_trips()
        await owners.until(lambda r: r.of(w.shared) and r.of(w.mine), 30)
        await friends.until(lambda r: r.of(w.shared), 30)
        await _settled(w, owners, w.owner)
        before = await _settled(w, friends, w.friend)
        await _diverge(w, f"fixed by {how}")
        if how == "online rebuild":
            await rebuild(w.engine)  # `tripsage projections rebuild`
        else:  # `tripsage projections rebuild --trip ID`, once per trip
            assert await rebuild_trip(w.engine, uuid.UUID(w.shared))
            assert await rebuild_trip(w.engine, uuid.UUID(w.mine))
        await _check(w, owners, friends, f"fixed by {how}", before)


async def test_upgrade_from_0010_numbers_every_document(empty_database: str) -> None:
    await asyncio.to_thread(migrate, empty_database, "0010")
    owner, trips = "00000000-0000-0000-0000-00000000000a", [f"00000000-0000-0000-0000-0000000000f{n}" for n in (1, 2)]
    await script(
        empty_database,
        f"""
        INSERT INTO profiles (id, email, display_name) VALUES ('{owner}', 'a@example.com', 'Ann');
        INSERT INTO trips (id, owner_id, title, destination, start_date, end_date)
          SELECT CAST(t AS uuid), '{owner}', 'T', 'D', '2027-01-01', '2027-01-03' FROM unnest(ARRAY{trips}) t;
        INSERT INTO trip_views (trip_id, owner_id, member_ids, status, search_text, updated_at, version, etag, doc,
                                position)
          SELECT CAST(t AS uuid), '{owner}', ARRAY[CAST('{owner}' AS uuid)], 'planning', 't', now(), 1, '"1-x"',
                 '{{"id": 1}}', CASE WHEN t = '{trips[0]}' THEN nextval('tripsage.live_positions') END
          FROM unnest(ARRAY{trips}) t;
        """,
    )
    before = {str(r[0]): r[1] for r in await sql(empty_database, "SELECT trip_id, position FROM trip_views")}
    assert before[trips[1]] is None and before[trips[0]] is not None
    await asyncio.to_thread(migrate, empty_database)
    after = {str(r[0]): r[1] for r in await sql(empty_database, "SELECT trip_id, position FROM trip_views")}
    assert after[trips[0]] == before[trips[0]]  # numbered documents keep their position
    assert after[trips[1]] is not None and after[trips[1]] > before[trips[0]]  # the others come after
    index = await sql(empty_database, "SELECT to_regclass('public.trip_views_unnumbered_idx') IS NOT NULL")
    assert index[0][0]
