"""Chat sessions: trips you can see, messages in order, counts and newest message, isolation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from core.deps import AppContext
from tests.support import User, count_statements, new_user, service_headers


def ctx_of(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


async def warm(client: httpx.AsyncClient, user: User) -> None:
    assert (await client.get("/api/chat/sessions", headers=user.headers)).status_code == 200


async def make_trip(app: FastAPI, owner: User, *, share_with: User | None = None) -> str:
    """A trip written straight into the write model (as the login role), optionally shared for viewing."""
    async with ctx_of(app).db.engine.begin() as conn:
        trip_id = (
            await conn.execute(
                text(
                    "INSERT INTO trips (owner_id, title, destination, start_date, end_date)"
                    " VALUES (:owner, 'Chat trip', 'Lisbon', '2027-05-01', '2027-05-05') RETURNING id"
                ),
                {"owner": owner.id},
            )
        ).scalar_one()
        if share_with is not None:
            await conn.execute(
                text("INSERT INTO trip_collaborators (trip_id, user_id, permission) VALUES (:t, :u, 'view')"),
                {"t": trip_id, "u": share_with.id},
            )
    return str(trip_id)


async def open_session(client: httpx.AsyncClient, user: User, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/chat/sessions", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def say(client: httpx.AsyncClient, user: User, session_id: str, role: str, content: str) -> dict[str, Any]:
    response = await client.post(
        f"/api/chat/sessions/{session_id}/messages", json={"role": role, "content": content}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    return message


async def test_session_lifecycle(client: httpx.AsyncClient) -> None:
    user = new_user()
    created = await open_session(client, user, title="Packing")
    assert set(created) == {"id", "title", "trip_id", "created_at", "updated_at", "message_count", "last_message"}
    assert created["title"] == "Packing"
    assert created["trip_id"] is None
    assert created["message_count"] == 0
    assert created["last_message"] is None
    untitled = await open_session(client, user)
    assert untitled["title"] is None

    first = await say(client, user, created["id"], "system", "You are a travel assistant.")
    second = await say(client, user, created["id"], "user", "What should I pack for Lisbon?")
    third = await say(client, user, created["id"], "assistant", "Light layers and comfortable shoes.")
    assert set(third) == {"id", "role", "content", "created_at"}

    detail = (await client.get(f"/api/chat/sessions/{created['id']}", headers=user.headers)).json()
    assert detail["id"] == created["id"]
    assert detail["title"] == "Packing"
    assert detail["messages"] == [first, second, third]
    assert detail["next_cursor"] is None
    assert detail["updated_at"] >= created["updated_at"]

    listed = (await client.get("/api/chat/sessions", headers=user.headers)).json()
    assert [item["id"] for item in listed["items"]] == [created["id"], untitled["id"]]
    top = listed["items"][0]
    assert top["message_count"] == 3
    assert top["last_message"] == {key: third[key] for key in ("role", "content", "created_at")}
    assert listed["items"][1]["message_count"] == 0
    assert listed["items"][1]["last_message"] is None

    # A message moves its session to the top.
    await say(client, user, untitled["id"], "user", "hello")
    listed = (await client.get("/api/chat/sessions", headers=user.headers)).json()
    assert [item["id"] for item in listed["items"]] == [untitled["id"], created["id"]]

    assert (await client.delete(f"/api/chat/sessions/{created['id']}", headers=user.headers)).status_code == 204
    assert (await client.get(f"/api/chat/sessions/{created['id']}", headers=user.headers)).status_code == 404
    assert (await client.delete(f"/api/chat/sessions/{created['id']}", headers=user.headers)).status_code == 404
    response = await client.post(
        f"/api/chat/sessions/{created['id']}/messages", json={"role": "user", "content": "x"}, headers=user.headers
    )
    assert response.status_code == 404
    listed = (await client.get("/api/chat/sessions", headers=user.headers)).json()
    assert [item["id"] for item in listed["items"]] == [untitled["id"]]
    empty = (await client.get(f"/api/chat/sessions/{untitled['id']}", headers=user.headers)).json()
    assert len(empty["messages"]) == 1


async def test_trip_must_be_visible(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner, friend, stranger = new_user("owner"), new_user("friend"), new_user("stranger")
    for user in (owner, friend, stranger):
        await warm(client, user)
    trip_id = await make_trip(app, owner, share_with=friend)

    mine = await open_session(client, owner, trip_id=trip_id)
    assert mine["trip_id"] == trip_id
    shared = await open_session(client, friend, trip_id=trip_id, title="friend's")
    assert shared["trip_id"] == trip_id

    responses = [
        await client.post("/api/chat/sessions", json={"trip_id": trip_id}, headers=stranger.headers),
        await client.post("/api/chat/sessions", json={"trip_id": str(uuid.uuid4())}, headers=stranger.headers),
    ]
    bodies = [response.json() for response in responses]
    for response, body in zip(responses, bodies, strict=True):
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert body["errors"][0]["loc"] == ["body", "trip_id"]
    assert bodies[0] == bodies[1]  # invisible and absent are indistinguishable

    # Access revoked: the friend's session keeps working and drops the link to the trip.
    async with ctx_of(app).db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM trip_collaborators WHERE user_id = :u"), {"u": friend.id})
    await say(client, friend, shared["id"], "user", "still here")
    detail = (await client.get(f"/api/chat/sessions/{shared['id']}", headers=friend.headers)).json()
    assert detail["trip_id"] is None
    assert [m["content"] for m in detail["messages"]] == ["still here"]
    # The owner's link is untouched.
    await say(client, owner, mine["id"], "user", "mine")
    assert (await client.get(f"/api/chat/sessions/{mine['id']}", headers=owner.headers)).json()["trip_id"] == trip_id


async def test_other_users_sessions_are_invisible(client: httpx.AsyncClient) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    session = await open_session(client, alice, title="private")
    await say(client, alice, session["id"], "user", "secret plans")
    await open_session(client, bob, title="bob's")
    listed = (await client.get("/api/chat/sessions", headers=bob.headers)).json()
    assert session["id"] not in [item["id"] for item in listed["items"]]
    path = f"/api/chat/sessions/{session['id']}"
    assert (await client.get(path, headers=bob.headers)).status_code == 404
    response = await client.post(f"{path}/messages", json={"role": "user", "content": "hi"}, headers=bob.headers)
    assert response.status_code == 404
    assert (await client.delete(path, headers=bob.headers)).status_code == 404
    detail = (await client.get(path, headers=alice.headers)).json()
    assert [m["content"] for m in detail["messages"]] == ["secret plans"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat/sessions", {"title": "x" * 201}),
        ("/api/chat/sessions", {"title": "a\u0000"}),
        ("/api/chat/sessions", {"trip_id": "not-a-uuid"}),
        ("/api/chat/sessions", {"id": str(uuid.uuid4())}),
        ("/api/chat/sessions", {"updated_at": "2026-01-01T00:00:00Z"}),
        ("MESSAGES", {"role": "robot", "content": "x"}),
        ("MESSAGES", {"role": "user", "content": ""}),
        ("MESSAGES", {"role": "user", "content": "x" * 32769}),
        ("MESSAGES", {"role": "user", "content": "a\u0000"}),
        ("MESSAGES", {"role": "user"}),
        ("MESSAGES", {"role": "user", "content": "x", "seq": 1}),
    ],
)
async def test_invalid_bodies_are_422(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    user = new_user()
    if path == "MESSAGES":
        path = f"/api/chat/sessions/{(await open_session(client, user))['id']}/messages"
    response = await client.post(path, json=body, headers=user.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_longest_message_is_accepted(client: httpx.AsyncClient) -> None:
    user = new_user()
    session = await open_session(client, user, title="t" * 200)
    message = await say(client, user, session["id"], "assistant", "é" * 32768)
    assert len(message["content"]) == 32768


async def test_malformed_ids_auth_and_openapi(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    for method, path in (
        ("GET", "/api/chat/sessions/nope"),
        ("DELETE", "/api/chat/sessions/nope"),
        ("POST", "/api/chat/sessions/nope/messages"),
    ):
        response = await client.request(method, path, json={"role": "user", "content": "x"}, headers=user.headers)
        assert response.status_code == 422, (method, path)
    for query in ("limit=0", "limit=101", "cursor=garbage!!", "cursor=WyJ4IiwgInkiXQ"):
        assert (await client.get(f"/api/chat/sessions?{query}", headers=user.headers)).status_code == 422
    assert (await client.get("/api/chat/sessions")).status_code == 401
    assert (await client.get("/api/chat/sessions", headers=service_headers())).status_code == 403
    paths = app.openapi()["paths"]
    assert {"201", "401", "403", "422"} <= set(paths["/api/chat/sessions"]["post"]["responses"])
    assert {"200", "401", "422"} <= set(paths["/api/chat/sessions"]["get"]["responses"])
    one = paths["/api/chat/sessions/{session_id}"]
    assert {"200", "401", "404", "422"} <= set(one["get"]["responses"])
    assert {"204", "401", "404", "422"} <= set(one["delete"]["responses"])
    assert {"201", "401", "404", "422"} <= set(paths["/api/chat/sessions/{session_id}/messages"]["post"]["responses"])


async def test_pagination_and_one_statement_per_read(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    sessions = []
    for i in range(5):
        session = await open_session(client, user, title=f"s{i}")
        for j in range(i):
            await say(client, user, session["id"], "user", f"message {j} of {i}")
        sessions.append(session["id"])
    seen: list[str] = []
    counts: list[int] = []
    cursor: str | None = None
    engine = ctx_of(app).db.engine
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        with count_statements(engine) as counter:
            response = await client.get("/api/chat/sessions", params=params, headers=user.headers)
        assert response.status_code == 200
        assert len(counter.data_statements()) == 1, counter.statements
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        counts += [item["message_count"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(sessions))  # most recent activity first
    assert counts == [4, 3, 2, 1, 0]
    with count_statements(engine) as counter:
        detail = await client.get(f"/api/chat/sessions/{sessions[4]}", headers=user.headers)
    assert len(detail.json()["messages"]) == 4
    assert len(counter.data_statements()) == 1, counter.statements


async def test_messages_come_in_pages_of_the_usual_cursor(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    session = await open_session(client, user, title="long")
    sent = [(await say(client, user, session["id"], "user", f"m{n}"))["id"] for n in range(53)]
    path = f"/api/chat/sessions/{session['id']}"
    first = (await client.get(path, headers=user.headers)).json()
    assert [m["id"] for m in first["messages"]] == sent[:50]  # default page: 50, oldest first
    assert first["next_cursor"] is not None
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    engine = ctx_of(app).db.engine
    while True:
        params: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        with count_statements(engine) as counter:
            response = await client.get(path, params=params, headers=user.headers)
        assert response.status_code == 200, response.text
        assert len(counter.data_statements()) == 1, counter.statements
        body = response.json()
        assert body["id"] == session["id"] and body["title"] == "long"
        seen += [message["id"] for message in body["messages"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sent  # every message once, in order: no duplicates, no gaps
    assert pages == 8  # 7 full pages and the last one of 4
    exact = (await client.get(path, params={"limit": 53}, headers=user.headers)).json()
    assert len(exact["messages"]) == 53 and exact["next_cursor"] is None
    # A message added after a page was read comes after the cursor of that page.
    newer = await say(client, user, session["id"], "assistant", "late")
    rest = (await client.get(path, params={"cursor": first["next_cursor"]}, headers=user.headers)).json()
    assert [m["id"] for m in rest["messages"]] == [*sent[50:], newer["id"]]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "cursor=garbage!!",
        "cursor=WyJ4IiwgInkiXQ",  # ["x", "y"]: two parts
        "cursor=WyJ4Il0",  # ["x"]: not a number
        "cursor=Wy0xXQ",  # [-1]
        "cursor=W3RydWVd",  # [true]
        "cursor=WzEuNV0",  # [1.5]
    ],
)
async def test_bad_message_paging_is_422(client: httpx.AsyncClient, query: str) -> None:
    user = new_user()
    session = await open_session(client, user)
    response = await client.get(f"/api/chat/sessions/{session['id']}?{query}", headers=user.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
