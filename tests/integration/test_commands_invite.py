"""`POST /api/trips/{trip_id}/collaborators` by email: found case-insensitively, else 404; who may invite."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.integration.command_kit import create_trip, fetch, signed_in
from tests.support import new_user


async def test_invite_by_email_any_case(client: httpx.AsyncClient) -> None:
    owner, guest = await signed_in(client, "owner"), await signed_in(client, "guest")
    trip = await create_trip(client, owner)
    response = await client.post(
        f"/api/trips/{trip['id']}/collaborators",
        json={"email": guest.email.upper(), "permission": "edit"},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["user_id"], body["permission"], body["trip_version"]) == (str(guest.id), "edit", 2)
    assert "X-Consistency-Token" in response.headers
    # the same as PUT: the guest now edits the trip
    patched = await client.patch(f"/api/trips/{trip['id']}", json={"title": "ours"}, headers=guest.headers)
    assert patched.status_code == 200


async def test_unknown_email_is_404_and_changes_nothing(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client, "owner")
    trip = await create_trip(client, owner)
    never_signed_in = new_user("ghost")
    response = await client.post(
        f"/api/trips/{trip['id']}/collaborators",
        json={"email": never_signed_in.email, "permission": "view"},
        headers=owner.headers,
    )
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    rows = await fetch(app, "SELECT version FROM trips WHERE id = :id", id=trip["id"])
    assert rows == [{"version": 1}]


async def test_only_managers_may_invite_and_strangers_learn_nothing(client: httpx.AsyncClient) -> None:
    o, v, s, t = [await signed_in(client, name) for name in ("o", "v", "s", "t")]
    trip = await create_trip(client, o)
    await client.put(f"/api/trips/{trip['id']}/collaborators/{v.id}", json={"permission": "view"}, headers=o.headers)
    path = f"/api/trips/{trip['id']}/collaborators"
    as_viewer = await client.post(path, json={"email": t.email, "permission": "view"}, headers=v.headers)
    as_stranger = await client.post(path, json={"email": t.email, "permission": "view"}, headers=s.headers)
    assert (as_viewer.status_code, as_stranger.status_code) == (403, 404)
    bad = await client.post(path, json={"email": 5, "permission": "view"}, headers=o.headers)
    assert bad.status_code == 422
