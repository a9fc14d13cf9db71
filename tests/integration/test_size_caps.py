"""Size caps (issue 10): itineraries per trip, activities per itinerary and per trip; 413, nothing written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from commands.access import Cap, insert_child, itineraries
from commands.unit import UnitOfWork
from core.errors import ApiError
from core.settings import Settings
from tests.integration.command_kit import (
    add_activity,
    add_itinerary,
    create_trip,
    fetch,
    seed_party,
    signed_in,
    trip_locked,
    version_of,
    wait_until_blocked,
)
from tests.support import User, count_statements, make_settings, serving

Served = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture(scope="module")
async def small(settings: Settings) -> AsyncIterator[Served]:
    """An app allowing 3 itineraries per trip, 2 activities per itinerary and 3 per trip."""
    assert settings.database_url and settings.redis_url
    caps = {"max_itineraries_per_trip": 3, "max_activities_per_itinerary": 2, "max_activities_per_trip": 3}
    async with serving(make_settings(settings.database_url, settings.redis_url, **caps)) as served:
        yield served


def assert_over_cap(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == f"size limit reached: {detail}"


async def count(app: FastAPI, table: str, trip_id: str) -> int:
    rows = await fetch(app, f"SELECT count(*) AS n FROM {table} WHERE trip_id = :t", t=trip_id)  # noqa: S608
    return int(rows[0]["n"])


async def test_itineraries_per_trip(small: Served) -> None:
    app, http = small
    party, _, _ = await seed_party(app)  # one itinerary already
    editor = party.users["edit"]
    url = f"/api/trips/{party.trip_id}/itineraries"
    await add_itinerary(http, editor, party.trip_id, title="Day 2")
    last = await add_itinerary(http, editor, party.trip_id, title="Day 3")
    version, updated_at = await version_of(app, party.trip_id)
    with count_statements(app.state.ctx.db.engine) as counter:
        refused = await http.post(url, json={"title": "Day 4"}, headers=editor.headers)
    assert_over_cap(refused, "at most 3 itineraries per trip")
    assert counter.count == 2  # claim, the capped insert (claims travel with BEGIN): no statement more than a success
    assert await version_of(app, party.trip_id) == (version, updated_at)
    assert await count(app, "itineraries", party.trip_id) == 3
    # With an Idempotency-Key nothing is remembered either: the same key works once there is room.
    keyed = editor.headers | {"Idempotency-Key": "cap-1"}
    assert_over_cap(await http.post(url, json={"title": "Day 4"}, headers=keyed), "at most 3 itineraries per trip")
    assert (await http.delete(f"{url}/{last['id']}", headers=editor.headers)).status_code == 204
    assert (await http.post(url, json={"title": "Day 4"}, headers=keyed)).status_code == 201
    # Permission is checked before the cap: a viewer is told 403, a stranger 404.
    assert (await http.post(url, json={"title": "x"}, headers=party.users["view"].headers)).status_code == 403
    assert (await http.post(url, json={"title": "x"}, headers=party.users["stranger"].headers)).status_code == 404


async def test_activities_per_itinerary_and_per_trip(small: Served) -> None:
    app, http = small
    party, first, _ = await seed_party(app)  # one activity already, in the first itinerary
    owner = party.users["owner"]
    await add_activity(http, owner, party.trip_id, first)
    url = f"/api/trips/{party.trip_id}/itineraries/{first}/activities"
    assert_over_cap(
        await http.post(url, json={"title": "third"}, headers=owner.headers), "at most 2 activities per itinerary"
    )
    second = (await add_itinerary(http, owner, party.trip_id, title="Day 2"))["id"]
    await add_activity(http, owner, party.trip_id, second)
    version, _ = await version_of(app, party.trip_id)
    other = f"/api/trips/{party.trip_id}/itineraries/{second}/activities"
    assert_over_cap(
        await http.post(other, json={"title": "4th"}, headers=owner.headers), "at most 3 activities per trip"
    )
    assert (await version_of(app, party.trip_id))[0] == version
    assert await count(app, "activities", party.trip_id) == 3


async def test_the_cap_holds_under_concurrent_inserts(small: Served) -> None:
    app, http = small
    owner: User = await signed_in(http, "racer")
    trip = await create_trip(http, owner)
    url = f"/api/trips/{trip['id']}/itineraries"
    # Every request queues behind one lock holder, then they all pass the claim in turn.
    async with trip_locked(app, trip["id"]):
        racing = [
            asyncio.ensure_future(http.post(url, json={"title": f"d{n}"}, headers=owner.headers)) for n in range(8)
        ]
        await wait_until_blocked(app)
    responses = await asyncio.gather(*racing)
    assert sorted(r.status_code for r in responses) == [201] * 3 + [413] * 5
    assert await count(app, "itineraries", trip["id"]) == 3
    assert (await version_of(app, trip["id"]))[0] == trip["version"] + 3
    assert sorted(r.json()["trip_version"] for r in responses if r.status_code == 201) == [2, 3, 4]


async def test_openapi_documents_413_on_the_capped_commands(small: Served) -> None:
    app, _ = small
    paths = app.openapi()["paths"]
    itineraries = paths["/api/trips/{trip_id}/itineraries"]["post"]["responses"]
    activities = paths["/api/trips/{trip_id}/itineraries/{itinerary_id}/activities"]["post"]["responses"]
    for responses in (itineraries, activities):
        assert "size limit" in responses["413"]["description"]


async def test_the_counts_reveal_nothing_to_those_who_may_not_edit(small: Served) -> None:
    app, _ = small
    party, day, _ = await seed_party(app)
    trip_id, itinerary = uuid.UUID(party.trip_id), uuid.UUID(day)
    for role, expected in (("owner", 1), ("edit", 1), ("view", None), ("stranger", None)):
        principal = await app.state.ctx.verifier.verify(party.users[role].token)
        async with app.state.ctx.db.request_session(principal) as session:
            counts = select(
                func.tripsage.count_itineraries(trip_id),
                func.tripsage.count_activities(trip_id, itinerary),
                func.tripsage.count_activities(trip_id, None),
            )
            assert tuple((await session.execute(counts)).one()) == (expected, expected, expected), role
            if expected is None:  # the capped insert itself answers 404, whatever its caps say
                uow = UnitOfWork(session=session, user_id=party.users[role].id)
                cap = Cap(func.tripsage.count_itineraries(trip_id), 1, "itineraries per trip")
                with pytest.raises(ApiError) as refused:
                    await insert_child(uow, trip_id, itineraries, {"title": "sneaky"}, [cap])
                assert refused.value.status == 404
