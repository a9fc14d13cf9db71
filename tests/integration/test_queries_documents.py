"""The trip queries with the process's held documents (`queries.documents`): used only while current and visible."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import orjson
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from queries.documents import DocumentCache
from tests.integration.test_queries_trips import T0, TripSpec, ctx_of, make_trip, project, signed_in
from tests.support import count_driver_statements
from tripsage.app import create_app

HELD = b'{"held":"bytes"}'
"""What the tests put in place of a held document: served only while the database says it is current."""


def served(source: str) -> float:
    """`tripsage_read_documents_served` of `source` in this process (as `/metrics` shows it)."""
    return REGISTRY.get_sample_value("tripsage_read_documents_served_total", {"source": source}) or 0.0


def documents_of(app: FastAPI) -> DocumentCache:
    documents: DocumentCache = app.state.documents
    return documents


async def change_title(engine: AsyncEngine, trip_id: uuid.UUID, title: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE trips SET title = :t, version = version + 1 WHERE id = :id"), {"t": title, "id": trip_id}
        )
    await project(engine, [trip_id])


async def test_one_trip_uses_the_held_document_only_while_its_etag_is_current(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, stranger = await signed_in(client, "held"), await signed_in(client, "stranger")
    engine = ctx_of(app).db.engine
    trip_id = await make_trip(engine, TripSpec(owner))
    url, documents = f"/api/trips/{trip_id}", documents_of(app)
    first = await client.get(url, headers=owner.headers)
    etag = first.headers["etag"]
    assert documents.get(trip_id) == (etag, first.content)

    # The held bytes are what is served while the database confirms the ETag: they did not come from it.
    documents.put(trip_id, etag, HELD)
    before = served("held")
    async with count_driver_statements(ctx_of(app).db.read_engine) as sent:
        held = await client.get(url, headers=owner.headers)
    assert (held.status_code, held.content, held.headers["etag"]) == (200, HELD, etag)
    assert served("held") == before + 1
    assert sent.count == 1 and sent.args[0][-1] == [etag]  # the call named the held ETag
    # A client's own If-None-Match still answers 304; a stranger still gets 404.
    assert (await client.get(url, headers=owner.headers | {"If-None-Match": etag})).status_code == 304
    assert (await client.get(url, headers=stranger.headers)).status_code == 404

    await change_title(engine, trip_id, "Renamed")
    fresh = await client.get(url, headers=owner.headers | {"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    assert fresh.json()["title"] == "Renamed"
    assert documents.get(trip_id) == (fresh.headers["etag"], fresh.content)


async def test_a_list_page_uses_held_documents_only_for_current_visible_trips(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    alice, bob = await signed_in(client, "alice"), await signed_in(client, "bob")
    engine, documents = ctx_of(app).db.engine, documents_of(app)
    own = await make_trip(engine, TripSpec(alice, title="Own"))
    shared = await make_trip(
        engine, TripSpec(alice, title="Shared", collaborators=[(bob, "edit")], updated_at=T0 - timedelta(hours=1))
    )
    first = await client.get("/api/trips", headers=alice.headers)
    assert [t["id"] for t in first.json()["items"]] == [str(own), str(shared)]
    assert (await client.get("/api/trips", headers=bob.headers)).json()["items"][0]["id"] == str(shared)

    # The second page names both held documents; the database leaves them out and the process fills
    # them in: what it holds for `own` (replaced here) is what the page shows.
    etag = documents.get(own)[0]  # type: ignore[index]
    documents.put(own, etag, HELD)
    before = served("held"), served("database")
    async with count_driver_statements(ctx_of(app).db.read_engine) as sent:
        second = await client.get("/api/trips", headers=alice.headers)
    assert (served("held"), served("database")) == (before[0] + 2, before[1])
    assert sent.count == 1 and sorted(sent.args[0][-1]) == sorted(
        [f"{own}{etag}", f"{shared}{documents.get(shared)[0]}"]  # type: ignore[index]
    )
    assert orjson.loads(second.content)["items"][0] == {"held": "bytes"}
    assert orjson.loads(second.content)["items"][1] == first.json()["items"][1]

    # A change gives the trip a new ETag: the page shows the database's document, not the held one.
    await change_title(engine, own, "Own, renamed")
    third = (await client.get("/api/trips", headers=alice.headers)).json()["items"]
    assert [t["title"] for t in third] == ["Own, renamed", "Shared"]

    # Bob loses the trip: gone from his page and 404, though the process still holds its document.
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM trip_collaborators WHERE trip_id = :t"), {"t": shared})
        await conn.execute(text("UPDATE trips SET version = version + 1 WHERE id = :t"), {"t": shared})
    await project(engine, [shared])
    assert documents.get(shared) is not None
    assert (await client.get("/api/trips", headers=bob.headers)).json()["items"] == []
    assert (await client.get(f"/api/trips/{shared}", headers=bob.headers)).status_code == 404


async def test_read_cache_mb_0_keeps_nothing_and_serves_the_same(settings: Settings, app: FastAPI) -> None:
    off = create_app(settings.model_copy(update={"read_cache_mb": 0}))
    async with (
        LifespanManager(off),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=off), base_url="http://t") as c,
    ):
        owner = await signed_in(c, "nocache")
        trip_id = await make_trip(ctx_of(app).db.engine, TripSpec(owner))
        for _ in range(2):
            async with count_driver_statements(ctx_of(off).db.read_engine) as sent:
                page = await c.get("/api/trips", headers=owner.headers)
                one = await c.get(f"/api/trips/{trip_id}", headers=owner.headers)
            assert page.json()["items"] == [one.json()] and one.json()["id"] == str(trip_id)
            assert [a[-1] for a in sent.args] == [[], []]  # nothing named as held
        assert (len(documents_of(off)), documents_of(off).size) == (0, 0)
