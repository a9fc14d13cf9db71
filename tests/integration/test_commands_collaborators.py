from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from tests.integration.command_kit import create_trip, fetch, party, signed_in, version_of
from tests.support import new_user


async def collaborator_rows(app: FastAPI, trip_id: str) -> dict[str, str]:
    rows = await fetch(app, "SELECT user_id, permission FROM trip_collaborators WHERE trip_id = :id", id=trip_id)
    return {str(row["user_id"]): row["permission"] for row in rows}


async def test_share_creates_then_changes_then_repeats(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    friend = await signed_in(client, "friend")
    trip = await create_trip(client, owner)
    url = f"/api/trips/{trip['id']}/collaborators/{friend.id}"
    created = await client.put(url, json={"permission": "view"}, headers=owner.headers)
    assert created.status_code == 200, created.text
    body = created.json()
    assert list(body) == ["trip_id", "user_id", "permission", "created_at", "updated_at", "trip_version"]
    assert (body["user_id"], body["permission"], body["trip_version"]) == (str(friend.id), "view", 2)
    assert created.headers["x-consistency-token"].startswith("v1.")
    changed = await client.put(url, json={"permission": "admin"}, headers=owner.headers)
    assert changed.status_code == 200 and changed.json()["permission"] == "admin"
    assert changed.json()["trip_version"] == 3 and changed.json()["created_at"] == body["created_at"]
    repeated = await client.put(url, json={"permission": "admin"}, headers=owner.headers)
    assert repeated.status_code == 200 and repeated.json()["trip_version"] == 3
    assert repeated.json()["updated_at"] == changed.json()["updated_at"]
    assert await collaborator_rows(app, trip["id"]) == {str(friend.id): "admin"}
    assert (await version_of(app, trip["id"]))[0] == 3


async def test_share_with_unknown_user_or_owner_is_refused(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await signed_in(client)
    trip = await create_trip(client, owner)
    never_signed_in = new_user("ghost")
    for user_id in (never_signed_in.id, uuid.uuid4()):
        response = await client.put(
            f"/api/trips/{trip['id']}/collaborators/{user_id}", json={"permission": "edit"}, headers=owner.headers
        )
        assert response.status_code == 404, response.text
    itself = await client.put(
        f"/api/trips/{trip['id']}/collaborators/{owner.id}", json={"permission": "edit"}, headers=owner.headers
    )
    assert itself.status_code == 422 and itself.json()["errors"][0]["loc"] == ["path", "user_id"]
    bad = await client.put(
        f"/api/trips/{trip['id']}/collaborators/{owner.id}", json={"permission": "owner"}, headers=owner.headers
    )
    assert bad.status_code == 422
    assert await collaborator_rows(app, trip["id"]) == {}
    assert (await version_of(app, trip["id"]))[0] == 1


async def test_remove_collaborator_and_leave(client: httpx.AsyncClient, app: FastAPI) -> None:
    group = await party(client)
    trip = group.trip_id
    users = group.users
    assert (await version_of(app, trip))[0] == 4
    removed = await client.delete(f"/api/trips/{trip}/collaborators/{users['edit'].id}", headers=group.headers("admin"))
    assert removed.status_code == 204 and removed.headers["x-consistency-token"].startswith("v1.")
    assert (await version_of(app, trip))[0] == 5
    left = await client.delete(f"/api/trips/{trip}/collaborators/{users['view'].id}", headers=group.headers("view"))
    assert left.status_code == 204, left.text
    assert (await version_of(app, trip))[0] == 6
    assert await collaborator_rows(app, trip) == {str(users["admin"].id): "admin"}
    admin_leaves = await client.delete(
        f"/api/trips/{trip}/collaborators/{users['admin'].id}", headers=group.headers("admin")
    )
    assert admin_leaves.status_code == 204
    assert await collaborator_rows(app, trip) == {}
    assert (await version_of(app, trip))[0] == 7
    gone = await client.delete(f"/api/trips/{trip}/collaborators/{users['view'].id}", headers=group.headers("owner"))
    assert gone.status_code == 404
    owner_is_no_collaborator = await client.delete(
        f"/api/trips/{trip}/collaborators/{users['owner'].id}", headers=group.headers("owner")
    )
    assert owner_is_no_collaborator.status_code == 404
    assert (await version_of(app, trip))[0] == 7


async def test_editor_leaving_and_viewer_if_match(client: httpx.AsyncClient, app: FastAPI) -> None:
    group = await party(client)
    trip = group.trip_id
    users = group.users
    editor = await client.delete(f"/api/trips/{trip}/collaborators/{users['edit'].id}", headers=group.headers("edit"))
    assert editor.status_code == 204, editor.text
    stale = await client.delete(
        f"/api/trips/{trip}/collaborators/{users['view'].id}", headers=group.headers("view", **{"If-Match": '"4"'})
    )
    assert stale.status_code == 412
    assert str(users["view"].id) in await collaborator_rows(app, trip)
    fresh = await client.delete(
        f"/api/trips/{trip}/collaborators/{users['view'].id}", headers=group.headers("view", **{"If-Match": '"5"'})
    )
    assert fresh.status_code == 204
    assert (await version_of(app, trip))[0] == 6
    assert await collaborator_rows(app, trip) == {str(users["admin"].id): "admin"}
