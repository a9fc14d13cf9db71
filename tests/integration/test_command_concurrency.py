"""Concurrent commands on one trip: no lost update, exactly-once preconditions, invariants kept."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.integration.command_kit import (
    add_itinerary,
    create_trip,
    fetch,
    row_locked,
    seed_party,
    signed_in,
    trip_locked,
    version_of,
    wait_until_blocked,
)


async def test_same_if_match_twenty_times_lets_exactly_one_through(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    headers = owner.headers | {"If-Match": '"1"'}
    responses = await asyncio.gather(
        *(client.patch(f"/api/trips/{trip['id']}", json={"travelers": n + 3}, headers=headers) for n in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * 19
    winner = next(r for r in responses if r.status_code == 200)
    row = (await fetch(app, "SELECT version, travelers FROM trips WHERE id = :id", id=trip["id"]))[0]
    assert row == {"version": 2, "travelers": winner.json()["travelers"]}


async def test_fifty_unconditional_patches_raise_the_version_by_fifty(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    responses = await asyncio.gather(
        *(
            client.patch(f"/api/trips/{trip['id']}", json={"title": f"take {n}"}, headers=owner.headers)
            for n in range(50)
        )
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    assert sorted(r.json()["version"] for r in responses) == list(range(2, 52))
    assert (await version_of(app, trip["id"]))[0] == 51


async def test_concurrent_changes_under_one_trip_each_count_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    group, itinerary, _ = await seed_party(app)
    trip = group.trip_id
    owner, editor, admin = (group.headers(role) for role in ("owner", "edit", "admin"))
    requests = [
        *(client.post(f"/api/trips/{trip}/itineraries", json={"title": f"d{n}"}, headers=editor) for n in range(10)),
        *(
            client.post(f"/api/trips/{trip}/itineraries/{itinerary}/activities", json={"title": f"a{n}"}, headers=admin)
            for n in range(10)
        ),
        *(client.patch(f"/api/trips/{trip}", json={"travelers": n + 2}, headers=owner) for n in range(10)),
    ]
    responses = await asyncio.gather(*requests)
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses if r.status_code >= 300]
    seen = sorted(r.json().get("trip_version", r.json().get("version")) for r in responses)
    assert seen == list(range(2, 32))
    assert (await version_of(app, trip))[0] == 31
    counts = await fetch(
        app,
        "SELECT (SELECT count(*) FROM itineraries WHERE trip_id = :id) AS i,"
        " (SELECT count(*) FROM activities WHERE trip_id = :id) AS a",
        id=trip,
    )
    assert counts == [{"i": 11, "a": 11}]


async def test_racing_date_change_and_itinerary_never_leave_a_day_outside(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    await add_itinerary(client, owner, trip["id"], day="2026-06-02")
    url = f"/api/trips/{trip['id']}"
    requests = [client.patch(url, json={"end_date": "2026-06-04"}, headers=owner.headers)]
    requests += [
        client.post(f"{url}/itineraries", json={"title": f"edge {n}", "day": "2026-06-05"}, headers=owner.headers)
        for n in range(8)
    ]
    responses = await asyncio.gather(*requests)
    assert {r.status_code for r in responses} <= {200, 201, 422}
    outside = await fetch(
        app,
        "SELECT i.id FROM itineraries i JOIN trips t ON t.id = i.trip_id"
        " WHERE t.id = :id AND (i.day < t.start_date OR i.day > t.end_date)",
        id=trip["id"],
    )
    assert outside == []
    accepted = sum(r.status_code in (200, 201) for r in responses)
    assert (await version_of(app, trip["id"]))[0] == 2 + accepted


async def test_trip_deleted_while_a_command_waits_is_not_found(client: httpx.AsyncClient, app: FastAPI) -> None:
    group, _, _ = await seed_party(app)
    async with trip_locked(app, group.trip_id) as holder:
        waiting = asyncio.create_task(
            client.patch(f"/api/trips/{group.trip_id}", json={"title": "late"}, headers=group.headers("edit"))
        )
        await wait_until_blocked(app)
        await holder.execute(text("DELETE FROM trips WHERE id = :id"), {"id": group.trip_id})
    response = await waiting
    assert response.status_code == 404, response.text


async def test_permission_revoked_while_a_command_waits_is_not_found(client: httpx.AsyncClient, app: FastAPI) -> None:
    group, itinerary, _ = await seed_party(app)
    editor = group.users["edit"]
    revoke = text("DELETE FROM trip_collaborators WHERE trip_id = :trip AND user_id = :user")
    for method, url in [
        ("PATCH", f"/api/trips/{group.trip_id}"),
        ("PATCH", f"/api/trips/{group.trip_id}/itineraries/{itinerary}"),
    ]:
        async with trip_locked(app, group.trip_id) as holder:
            waiting = asyncio.create_task(client.request(method, url, json={"title": "late"}, headers=editor.headers))
            await wait_until_blocked(app)
            await holder.execute(revoke, {"trip": group.trip_id, "user": editor.id})
        response = await waiting
        assert response.status_code == 404, response.text
        async with app.state.ctx.db.engine.begin() as conn:  # share again for the next round
            await conn.execute(
                text("INSERT INTO trip_collaborators (trip_id, user_id, permission) VALUES (:trip, :user, 'edit')"),
                {"trip": group.trip_id, "user": editor.id},
            )
    assert (await version_of(app, group.trip_id))[0] == 1


async def test_viewer_removed_while_leaving_is_not_found(client: httpx.AsyncClient, app: FastAPI) -> None:
    group, _, _ = await seed_party(app)
    viewer = group.users["view"]
    lock = "SELECT 1 FROM trip_collaborators WHERE trip_id = :trip AND user_id = :user FOR UPDATE"
    async with row_locked(app, lock, trip=group.trip_id, user=viewer.id) as holder:
        waiting = asyncio.create_task(
            client.delete(f"/api/trips/{group.trip_id}/collaborators/{viewer.id}", headers=viewer.headers)
        )
        await wait_until_blocked(app)
        await holder.execute(
            text("DELETE FROM trip_collaborators WHERE trip_id = :trip AND user_id = :user"),
            {"trip": group.trip_id, "user": viewer.id},
        )
    response = await waiting
    assert response.status_code == 404, response.text
    assert (await version_of(app, group.trip_id))[0] == 1
