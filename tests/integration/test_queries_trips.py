"""Trip query endpoints on real PostgreSQL: contract shape, paging, filters, ETags, statement count, RLS."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.auth import Principal
from core.deps import AppContext
from projections.trip_view import refresh_trips
from queries.plumbing import call_as, read_transaction
from queries.trips import TRIP_GET, TRIP_PAGE
from tests.support import User, count_driver_statements, count_statements, new_user

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def ctx_of(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


def principal(user: User) -> Principal:
    claims = {"sub": str(user.id), "role": "authenticated", "email": user.email, "aud": "authenticated"}
    return Principal(claims=claims, user_id=user.id, role="authenticated", email=user.email, expires_at=2e9)


async def signed_in(client: httpx.AsyncClient, name: str, full_name: str | None = None) -> User:
    """A user whose profile exists (provisioned by a first request)."""
    user = new_user(name, full_name=full_name)
    assert (await client.get("/api/users/me", headers=user.headers)).status_code == 200
    return user


@dataclass
class TripSpec:
    owner: User
    title: str = "Lisbon weekend"
    destination: str = "Lisbon"
    description: str | None = None
    status: str = "planning"
    updated_at: datetime = T0
    collaborators: list[tuple[User, str]] = field(default_factory=list)
    itineraries: list[dict[str, Any]] = field(default_factory=list)


async def make_trip(engine: AsyncEngine, spec: TripSpec) -> uuid.UUID:
    """Write a trip and everything under it as the login role, then project it."""
    trip_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO trips (id, owner_id, title, description, destination, start_date, end_date, budget,"
                " status, tags, created_at, updated_at) VALUES (:id, :owner, :title, :description, :destination,"
                " :start, :end, :budget, :status, :tags, :created, :updated)"
            ),
            {
                "id": trip_id, "owner": spec.owner.id, "title": spec.title, "description": spec.description,
                "destination": spec.destination, "start": date(2026, 5, 1), "end": date(2026, 5, 4),
                "budget": Decimal("1500.00"), "status": spec.status, "tags": ["city", "food"],
                "created": spec.updated_at - timedelta(days=1), "updated": spec.updated_at,
            },
        )  # fmt: skip
        for n, (user, permission) in enumerate(spec.collaborators):
            await conn.execute(
                text(
                    "INSERT INTO trip_collaborators (trip_id, user_id, permission, created_at) VALUES (:t, :u, :p, :c)"
                ),
                {"t": trip_id, "u": user.id, "p": permission, "c": T0 + timedelta(minutes=n)},
            )
        for itinerary in spec.itineraries:
            await conn.execute(
                text(
                    "INSERT INTO itineraries (id, trip_id, title, day, position, created_at)"
                    " VALUES (:id, :t, :title, :day, :position, :created)"
                ),
                {"t": trip_id, **{k: v for k, v in itinerary.items() if k != "activities"}},
            )
            for activity in itinerary.get("activities", []):
                await conn.execute(
                    text(
                        "INSERT INTO activities (id, itinerary_id, trip_id, title, item_type, starts_at, ends_at,"
                        " location, price, currency, booking_status, notes, position, created_at) VALUES (:id, :it,"
                        " :t, :title, 'meal', :starts, :ends, 'Rua Augusta', :price, :currency, :booking,"
                        " :notes, :position, :created)"
                    ),
                    {"it": itinerary["id"], "t": trip_id, **activity},
                )
    await project(engine, [trip_id])
    return trip_id


async def project(engine: AsyncEngine, trip_ids: list[uuid.UUID]) -> None:
    async with engine.begin() as conn:
        await refresh_trips(conn, trip_ids)


def activity(
    position: int, *, created: datetime, price: str | None, currency: str = "USD", booking: str = "booked"
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(), "title": f"Dinner {position}", "starts": T0, "ends": T0 + timedelta(hours=2),
        "price": Decimal(price) if price else None, "currency": currency, "booking": booking,
        "notes": None, "position": position, "created": created,
    }  # fmt: skip


async def test_trip_view_contract_shape(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client, "owner", full_name="Olive Owner")
    first, second = await signed_in(client, "ann", "Ann"), await signed_in(client, "bob", "Bob")
    async with ctx_of(app).db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE user_preferences SET currency = 'EUR', dietary_restrictions = '{vegan}' WHERE user_id = :u"),
            {"u": owner.id},
        )
    day_two, day_one, tie = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    a1, a2, a3, a4 = (
        activity(1, created=T0, price="12.50"),
        activity(0, created=T0, price="100.00", booking="cancelled"),
        activity(0, created=T0 + timedelta(seconds=1), price="7.25", currency="EUR"),
        activity(2, created=T0, price=None),
    )
    trip_id = await make_trip(
        ctx_of(app).db.engine,
        TripSpec(
            owner,
            collaborators=[(second, "edit"), (first, "view")],
            itineraries=[
                {"id": day_two, "title": "Day 2", "day": date(2026, 5, 2), "position": 1, "created": T0, "activities": []},
                {"id": day_one, "title": "Day 1", "day": date(2026, 5, 1), "position": 0, "created": T0 + timedelta(seconds=5), "activities": [a1, a2, a3, a4]},
                {"id": tie, "title": "Day 2b", "day": None, "position": 1, "created": T0 + timedelta(seconds=9), "activities": []},
            ],
        ),
    )  # fmt: skip
    response = await client.get(f"/api/trips/{trip_id}", headers=owner.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    view = response.json()
    assert list(view) == [
        "id", "title", "description", "destination", "start_date", "end_date", "budget", "currency", "travelers",
        "status", "trip_type", "tags", "version", "created_at", "updated_at", "owner", "collaborators",
        "itineraries", "stats",
    ]  # fmt: skip
    assert view["id"] == str(trip_id)
    assert (view["start_date"], view["end_date"], view["budget"], view["currency"]) == (
        "2026-05-01",
        "2026-05-04",
        "1500.00",
        "USD",
    )
    assert view["updated_at"] == "2026-03-01T12:00:00.123456Z"
    assert view["owner"] == {
        "id": str(owner.id),
        "display_name": "Olive Owner",
        "preferences": {"currency": "EUR", "home_airport": None, "travel_style": None, "dietary_restrictions": ["vegan"], "accessibility_needs": []},
    }  # fmt: skip
    assert view["collaborators"] == [
        {"user_id": str(second.id), "display_name": "Bob", "permission": "edit"},
        {"user_id": str(first.id), "display_name": "Ann", "permission": "view"},
    ]
    assert [i["id"] for i in view["itineraries"]] == [str(day_one), str(day_two), str(tie)]
    assert [a["id"] for a in view["itineraries"][0]["activities"]] == [
        str(a2["id"]),
        str(a3["id"]),
        str(a1["id"]),
        str(a4["id"]),
    ]
    assert view["itineraries"][2]["day"] is None
    first_activity = view["itineraries"][0]["activities"][0]
    assert list(first_activity) == ["id", "title", "item_type", "starts_at", "ends_at", "location", "price", "currency", "booking_status", "notes", "position"]  # fmt: skip
    assert first_activity["price"] == "100.00" and first_activity["starts_at"] == "2026-03-01T12:00:00.123456Z"
    assert view["stats"] == {"itinerary_count": 3, "activity_count": 4, "total_cost": {"EUR": "7.25", "USD": "12.50"}}
    etag = response.headers["etag"]
    async with ctx_of(app).db.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT etag, doc FROM trip_views WHERE trip_id = :t"), {"t": trip_id})).one()
    assert etag == stored.etag and etag.startswith(f'"{view["version"]}-')
    assert response.content == bytes(stored.doc)
    listed = await client.get("/api/trips", headers=second.headers)
    assert listed.json()["items"] == [view]


async def test_trip_without_anything_has_empty_parts(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client, "bare")
    trip_id = await make_trip(ctx_of(app).db.engine, TripSpec(owner))
    view = (await client.get(f"/api/trips/{trip_id}", headers=owner.headers)).json()
    assert (view["collaborators"], view["itineraries"]) == ([], [])
    assert view["stats"] == {"itinerary_count": 0, "activity_count": 0, "total_cost": {}}


async def test_pagination_walk_returns_each_trip_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    me, other = await signed_in(client, "walker"), await signed_in(client, "other")
    engine = ctx_of(app).db.engine
    mine = [await make_trip(engine, TripSpec(me, updated_at=T0 + timedelta(minutes=n // 2))) for n in range(7)]
    shared = [await make_trip(engine, TripSpec(other, collaborators=[(me, "view")], updated_at=T0 + timedelta(minutes=n))) for n in range(2)]  # fmt: skip
    hidden = await make_trip(engine, TripSpec(other))
    seen: list[str] = []
    stamps: list[tuple[str, str]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        body = (await client.get("/api/trips", params=params, headers=me.headers)).json()
        pages += 1
        seen += [item["id"] for item in body["items"]]
        stamps += [(item["updated_at"], item["id"]) for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["items"]) == 2
    assert pages == 5
    assert sorted(seen) == sorted(str(t) for t in mine + shared)
    assert len(seen) == len(set(seen)) and str(hidden) not in seen
    assert stamps == sorted(stamps, reverse=True)


async def test_filters(client: httpx.AsyncClient, app: FastAPI) -> None:
    me, other = await signed_in(client, "filterer"), await signed_in(client, "sharer")
    engine = ctx_of(app).db.engine
    kyoto = await make_trip(engine, TripSpec(me, title="Temples", destination="Kyoto", status="booked"))
    fifty = await make_trip(engine, TripSpec(me, title="100% fun_trip", destination="Oslo", description="Fjords"))
    shared = await make_trip(engine, TripSpec(other, title="Shared", destination="Kyoto", collaborators=[(me, "edit")]))

    async def ids(**params: str) -> set[str]:
        response = await client.get("/api/trips", params=params, headers=me.headers)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert await ids(status="booked") == {str(kyoto)}
    assert await ids(q="kyOTO") == {str(kyoto), str(shared)}
    assert await ids(q="fjord") == {str(fifty)}
    assert await ids(q="0% f") == {str(fifty)}
    assert await ids(q="_") == {str(fifty)}
    assert await ids(q="%") == {str(fifty)}
    assert await ids(role="owner") == {str(kyoto), str(fifty)}
    assert await ids(role="shared") == {str(shared)}
    assert await ids(role="shared", q="kyoto", status="planning") == {str(shared)}
    assert await ids(role="owner", status="cancelled") == set()


async def test_if_none_match_and_rename(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner, friend = await signed_in(client, "etag"), await signed_in(client, "friend", "Fran")
    engine = ctx_of(app).db.engine
    trip_id = await make_trip(engine, TripSpec(owner, collaborators=[(friend, "view")]))
    url = f"/api/trips/{trip_id}"
    first = await client.get(url, headers=owner.headers)
    etag = first.headers["etag"]
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        not_modified = await client.get(url, headers=owner.headers | {"If-None-Match": header})
        assert not_modified.status_code == 304, header
        assert not_modified.headers["etag"] == etag and not_modified.content == b""
    assert (await client.get(url, headers=owner.headers | {"If-None-Match": '"1-0000"'})).status_code == 200
    assert (
        await client.get(f"/api/trips/{uuid.uuid4()}", headers=owner.headers | {"If-None-Match": "*"})
    ).status_code == 404

    async with engine.begin() as conn:
        await conn.execute(text("UPDATE profiles SET display_name = 'Francesca' WHERE id = :u"), {"u": friend.id})
    await project(engine, [trip_id])
    renamed = await client.get(url, headers=owner.headers | {"If-None-Match": etag})
    assert renamed.status_code == 200
    assert renamed.headers["etag"] != etag
    assert renamed.json()["version"] == first.json()["version"]
    assert renamed.json()["collaborators"][0]["display_name"] == "Francesca"


async def test_one_data_statement_per_endpoint(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client, "counted")
    engine = ctx_of(app).db.engine
    trip_id = await make_trip(engine, TripSpec(owner))
    await make_trip(engine, TripSpec(owner, updated_at=T0 - timedelta(days=1)))
    cursor = (await client.get("/api/trips?limit=1", headers=owner.headers)).json()["next_cursor"]
    assert cursor
    read_engine = ctx_of(app).db.read_engine
    urls = [
        "/api/trips",
        "/api/trips?limit=1&status=planning&role=owner&q=lisbon",
        f"/api/trips?limit=5&cursor={cursor}",
        f"/api/trips/{trip_id}",
    ]
    # The trip endpoints: ONE statement in all (the read function call; no BEGIN, set_config, COMMIT).
    for url in urls:
        async with count_driver_statements(read_engine) as sent:
            with count_statements(read_engine) as via_sqlalchemy:
                response = await client.get(url, headers=owner.headers)
        assert response.status_code == 200, (url, response.text)
        assert sent.count == 1, (url, sent.statements)
        assert "FROM tripsage.trip_view_" in sent.statements[0]
        assert via_sqlalchemy.count == 0, (url, via_sqlalchemy.statements)
    # The profile (read_transaction): one data statement, plus BEGIN+claims and COMMIT on the driver.
    async with count_driver_statements(read_engine) as sent:
        with count_statements(read_engine) as via_sqlalchemy:
            response = await client.get("/api/users/me", headers=owner.headers)
    assert response.status_code == 200
    assert via_sqlalchemy.count == 1, via_sqlalchemy.statements
    assert [s.split(";")[0] for s in sent.statements] == ["BEGIN READ ONLY", "COMMIT"], sent.statements


async def test_rls_holds_inside_the_read_functions(client: httpx.AsyncClient, app: FastAPI) -> None:
    alice, bob = await signed_in(client, "alice"), await signed_in(client, "bob")
    engine = ctx_of(app).db.engine
    private = await make_trip(engine, TripSpec(alice, title="Private"))
    shared = await make_trip(engine, TripSpec(alice, title="Shared", collaborators=[(bob, "view")]))
    bobs = await make_trip(engine, TripSpec(bob, title="Bob's"))
    read_engine = ctx_of(app).db.read_engine
    # The functions take no user id: the user is the claims' sub. Bob's claims see Bob's member rows
    # (the trip Alice shares with him included) and never Alice's private document.
    as_bob = await call_as(read_engine, principal(bob), TRIP_PAGE, 1000, *[None] * 5, [])
    assert {row["trip_id"] for row in as_bob} == {shared, bobs}
    assert await call_as(read_engine, principal(bob), TRIP_GET, private, []) == []
    assert len(await call_as(read_engine, principal(bob), TRIP_GET, shared, [])) == 1
    as_alice = await call_as(read_engine, principal(alice), TRIP_PAGE, 1000, *[None] * 5, [])
    assert {row["trip_id"] for row in as_alice} == {private, shared}
    async with read_transaction(read_engine, principal(bob)) as conn:
        docs = (await conn.execute(text("SELECT trip_id FROM trip_views"))).scalars().all()
    assert private not in docs and {shared, bobs} <= set(docs)
    # and the login role, without claims, would have seen it: the filter above is RLS, not luck
    async with engine.connect() as conn:
        everything = (await conn.execute(text("SELECT trip_id FROM trip_views"))).scalars().all()
    assert private in everything
    # the functions leave nothing behind: the pooled connection is back to the login role, no claims
    async with read_engine.connect() as conn:
        role, claims = (
            await conn.execute(text("SELECT current_user, current_setting('request.jwt.claims', true)"))
        ).one()
    assert role != "tripsage_api" and not claims


async def test_not_visible_trip_is_404(client: httpx.AsyncClient, app: FastAPI) -> None:
    alice, mallory = await signed_in(client, "alice"), await signed_in(client, "mallory")
    trip_id = await make_trip(ctx_of(app).db.engine, TripSpec(alice))
    response = await client.get(f"/api/trips/{trip_id}", headers=mallory.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("token", ["garbage", "v1.", "v1.-3", "v1.99999999999999999999"])
async def test_bad_consistency_token_is_422(client: httpx.AsyncClient, token: str) -> None:
    user = new_user()
    response = await client.get("/api/trips", headers=user.headers | {"X-Consistency-Token": token})
    assert response.status_code == 422
