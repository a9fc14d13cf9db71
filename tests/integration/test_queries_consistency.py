"""Read your writes: `X-Consistency-Token` on the query endpoints, with the real projector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from core.deps import AppContext
from core.settings import Settings
from projections.apply import drain
from queries.consistency import is_applied
from tests.support import make_settings, new_user
from tripsage.app import create_app

TRIP = {"title": "Porto", "destination": "Porto", "start_date": "2026-06-01", "end_date": "2026-06-03"}


async def create_trip(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    response = await client.post("/api/trips", json=TRIP, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"], response.headers["x-consistency-token"]


async def test_token_waits_for_the_projection(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user("rw")
    trip_id, token = await create_trip(client, user.headers)
    ctx: AppContext = app.state.ctx

    async def project_soon() -> None:
        await asyncio.sleep(0.2)
        await drain(ctx.db.engine)

    responses = await asyncio.gather(
        client.get(f"/api/trips/{trip_id}", headers=user.headers | {"X-Consistency-Token": token}),
        client.get("/api/trips", headers=user.headers | {"X-Consistency-Token": token}),
        project_soon(),
    )
    one, listed = responses[0], responses[1]
    assert one.status_code == 200, one.text
    assert one.headers["x-consistency"] == "fresh" and one.json()["title"] == "Porto"
    assert listed.headers["x-consistency"] == "fresh"
    assert [item["id"] for item in listed.json()["items"]] == [trip_id]
    me = await client.get("/api/users/me", headers=user.headers | {"X-Consistency-Token": token})
    assert me.headers["x-consistency"] == "fresh"
    plain = await client.get(f"/api/trips/{trip_id}", headers=user.headers)
    assert "x-consistency" not in plain.headers


@pytest.fixture
async def impatient(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that waits at most 50 ms for the read model."""
    assert settings.database_url and settings.redis_url
    application = create_app(make_settings(settings.database_url, settings.redis_url, consistency_wait_ms=50))
    async with (
        LifespanManager(application),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as http,
    ):
        yield http


async def test_stale_when_the_projection_lags(client: httpx.AsyncClient, impatient: httpx.AsyncClient) -> None:
    user = new_user("stale")
    trip_id, token = await create_trip(client, user.headers)
    response = await impatient.get(f"/api/trips/{trip_id}", headers=user.headers | {"X-Consistency-Token": token})
    assert response.status_code == 404  # not projected yet: answered with what the read model has
    assert response.headers["x-consistency"] == "stale"
    listed = await impatient.get("/api/trips", headers=user.headers | {"X-Consistency-Token": token})
    assert listed.status_code == 200 and listed.headers["x-consistency"] == "stale"
    assert listed.json()["items"] == []


async def test_rename_through_the_api_changes_the_etag(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner, friend = new_user("own"), new_user("fri")
    await client.get("/api/users/me", headers=friend.headers)
    trip_id, _ = await create_trip(client, owner.headers)
    shared = await client.put(
        f"/api/trips/{trip_id}/collaborators/{friend.id}", json={"permission": "view"}, headers=owner.headers
    )
    assert shared.status_code == 200, shared.text
    ctx: AppContext = app.state.ctx
    await drain(ctx.db.engine)
    before = await client.get(f"/api/trips/{trip_id}", headers=friend.headers)
    renamed = await client.patch("/api/users/me", json={"display_name": "Renamed"}, headers=friend.headers)
    token = renamed.headers["x-consistency-token"]
    await drain(ctx.db.engine)
    after = await client.get(
        f"/api/trips/{trip_id}",
        headers=owner.headers | {"If-None-Match": before.headers["etag"], "X-Consistency-Token": token},
    )
    assert after.status_code == 200 and after.headers["x-consistency"] == "fresh"
    assert after.headers["etag"] != before.headers["etag"]
    assert after.json()["version"] == before.json()["version"]
    assert after.json()["collaborators"][0]["display_name"] == "Renamed"


async def test_a_write_the_read_database_has_not_seen_is_never_applied(app: FastAPI) -> None:
    """A replica that has not replayed a commit shows none of its feed rows: absence alone is no proof.

    An open transaction with a feed row stands in for a commit not yet replayed: its feed row is
    invisible to every other snapshot, exactly as on a lagging standby.
    """
    ctx = app.state.ctx
    assert isinstance(ctx, AppContext)
    engine = ctx.db.engine
    async with engine.connect() as writer:
        await writer.execute(text("INSERT INTO tripsage.changes (trip_id) VALUES (gen_random_uuid())"))
        xid = int(await writer.scalar(text("SELECT pg_current_xact_id()::text::bigint")) or 0)
        assert not await is_applied(engine, xid)  # its feed row is invisible, and so is the transaction
        await writer.rollback()
    assert await is_applied(engine, 1)  # an old, long-settled transaction id: applied
