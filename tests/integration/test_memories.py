"""Memories: create/delete, newest-first and full-text listings, hostile search strings, isolation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from core.deps import AppContext
from tests.support import User, count_statements, new_user


def ctx_of(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


async def remember(client: httpx.AsyncClient, user: User, content: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/memories", json={"content": content, **extra}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def walk(client: httpx.AsyncClient, user: User, limit: int, **params: Any) -> tuple[list[str], int]:
    ids: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = params | {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/api/memories", params=query, headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages


async def test_create_list_delete(client: httpx.AsyncClient) -> None:
    user = new_user()
    plain = await remember(client, user, "Window seat on long flights")
    assert set(plain) == {"id", "content", "memory_type", "metadata", "created_at"}
    assert plain["memory_type"] == "note"
    assert plain["metadata"] == {}
    assert plain["created_at"].endswith("Z")
    meta = {"source": "chat", "tags": ["food", "japan"], "score": 0.5, "nested": {"ok": True, "n": None}}
    rich = await remember(client, user, "Allergic to peanuts", memory_type="preference", metadata=meta)
    assert rich["memory_type"] == "preference"
    assert rich["metadata"] == meta

    listed = (await client.get("/api/memories", headers=user.headers)).json()
    assert listed == {"items": [rich, plain], "next_cursor": None}
    assert (await client.delete(f"/api/memories/{plain['id']}", headers=user.headers)).status_code == 204
    assert (await client.delete(f"/api/memories/{plain['id']}", headers=user.headers)).status_code == 404
    assert (await client.get("/api/memories", headers=user.headers)).json()["items"] == [rich]


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"content": ""},
        {"content": "x" * 32769},
        {"content": "a\u0000b"},
        {"content": "ok", "memory_type": ""},
        {"content": "ok", "memory_type": "x" * 51},
        {"content": "ok", "metadata": []},
        {"content": "ok", "metadata": "text"},
        {"content": "ok", "metadata": {"k\u0000": 1}},
        {"content": "ok", "metadata": {"k": ["a\u0000"]}},
        {"content": "ok", "metadata": _nested(33)},
        {"content": "ok", "id": str(uuid.uuid4())},
        {"content": "ok", "created_at": "2026-01-01T00:00:00Z"},
        {"content": "ok", "user_id": str(uuid.uuid4())},
    ],
)
async def test_invalid_body_is_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/api/memories", json=body, headers=new_user().headers)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        '{"content": "ok", "metadata": {"x": NaN}}',
        '{"content": "ok", "metadata": {"x": [1, -Infinity]}}',
        '{"content": "ok", "metadata": ' + '{"a": ' * 5000 + "{}" + "}" * 5000 + "}",
        '{"content": "ok", "metadata": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}",
    ],
)
async def test_unstorable_json_is_refused(client: httpx.AsyncClient, body: str) -> None:
    response = await client.post(
        "/api/memories", content=body, headers=new_user().headers | {"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_limits_are_accepted(client: httpx.AsyncClient) -> None:
    user = new_user()
    big = await remember(client, user, "x" * 32768, memory_type="t" * 50, metadata=_nested(32))
    assert len(big["content"]) == 32768


async def test_full_text_ranks_best_match_first(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    # The best match is the OLDEST one, so the expected order is never what newest-first would give.
    strong = await remember(client, user, "Kyoto temples: Kinkaku temple, Ginkaku temple, Kyoto temple passes")
    weak = await remember(client, user, "We passed a temple on the way to the station in Kyoto")
    await remember(client, user, "Osaka street food")
    newest = (await client.get("/api/memories", headers=user.headers)).json()["items"]
    assert [item["id"] for item in newest][1:] == [weak["id"], strong["id"]]
    response = await client.get("/api/memories", params={"q": "kyoto temple"}, headers=user.headers)
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [strong["id"], weak["id"]]
    either = await client.get("/api/memories", params={"q": "osaka or kinkaku"}, headers=user.headers)
    assert len(either.json()["items"]) == 2
    phrase = await client.get("/api/memories", params={"q": '"street food"'}, headers=user.headers)
    assert len(phrase.json()["items"]) == 1
    excluded = await client.get("/api/memories", params={"q": "kyoto -station"}, headers=user.headers)
    assert [item["id"] for item in excluded.json()["items"]] == [strong["id"]]
    with count_statements(ctx_of(app).db.engine) as counter:
        assert (await client.get("/api/memories", params={"q": "kyoto"}, headers=user.headers)).status_code == 200
    assert len(counter.data_statements()) == 1, counter.statements


@pytest.mark.parametrize(
    "q",
    [
        "'; DROP TABLE memories; --",
        "%",
        "_",
        "\\",
        "100%_\\",
        "a & b | !c <-> d:*",
        "((((",
        '"unterminated',
        "東京",
        "Москва",
        "🍣🍜",
        "   ",
        "-",
        "or",
        "x" * 1000,
    ],
)
async def test_hostile_and_non_latin_search_never_fails(client: httpx.AsyncClient, q: str) -> None:
    user = new_user()
    await remember(client, user, "memory with 100% _underscores_ and \\ backslashes; DROP TABLE nothing")
    response = await client.get("/api/memories", params={"q": q}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None


async def test_empty_tsquery_is_an_empty_page(client: httpx.AsyncClient) -> None:
    user = new_user()
    await remember(client, user, "anything at all")
    for q in ("%", "!!!", "", "🍣"):
        response = await client.get("/api/memories", params={"q": q}, headers=user.headers)
        assert response.json() == {"items": [], "next_cursor": None}, q


async def test_non_latin_search_matches(client: httpx.AsyncClient) -> None:
    user = new_user()
    tokyo = await remember(client, user, "東京 タワー に行った")
    moscow = await remember(client, user, "Поездка в Москва зимой")
    await remember(client, user, "nothing relevant")
    japanese = (await client.get("/api/memories", params={"q": "東京"}, headers=user.headers)).json()
    assert [item["id"] for item in japanese["items"]] == [tokyo["id"]]
    cyrillic = (await client.get("/api/memories", params={"q": "МОСКВА"}, headers=user.headers)).json()
    assert [item["id"] for item in cyrillic["items"]] == [moscow["id"]]


async def test_pagination_walks(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    created = [(await remember(client, user, f"walk number {i} " + "walk " * (i % 3)))["id"] for i in range(7)]
    ids, pages = await walk(client, user, 3)
    assert ids == list(reversed(created))
    assert pages == 3
    # Ties in rank (same text) and different ranks: every match exactly once, in rank order. "walk"
    # occurs 1 + i % 3 times in memory i: three times (i = 5, 2), twice (4, 1), once (6, 3, 0);
    # equal ranks newest first.
    searched, pages = await walk(client, user, 2, q="walk")
    assert searched == [created[i] for i in (5, 2, 4, 1, 6, 3, 0)]
    assert pages == 4
    full = (await client.get("/api/memories", params={"q": "walk", "limit": 100}, headers=user.headers)).json()
    assert [item["id"] for item in full["items"]] == searched
    with count_statements(ctx_of(app).db.engine) as counter:
        first = await client.get("/api/memories", params={"q": "walk", "limit": 2}, headers=user.headers)
        cursor = first.json()["next_cursor"]
        second = await client.get(
            "/api/memories", params={"q": "walk", "limit": 2, "cursor": cursor}, headers=user.headers
        )
        assert second.status_code == 200
        newest = await client.get("/api/memories", params={"limit": 2}, headers=user.headers)
        assert newest.status_code == 200
        after = await client.get(
            "/api/memories", params={"limit": 2, "cursor": newest.json()["next_cursor"]}, headers=user.headers
        )
        assert after.status_code == 200
    assert len(counter.data_statements()) == 4, counter.statements


async def test_cursors_are_checked(client: httpx.AsyncClient) -> None:
    user = new_user()
    for i in range(3):
        await remember(client, user, f"cursor test {i}")
    search = (await client.get("/api/memories", params={"q": "cursor", "limit": 1}, headers=user.headers)).json()
    newest = (await client.get("/api/memories", params={"limit": 1}, headers=user.headers)).json()
    bad = [
        {"q": "test", "cursor": search["next_cursor"]},  # another search's cursor
        {"cursor": search["next_cursor"]},  # a search cursor without q
        {"q": "cursor", "cursor": newest["next_cursor"]},  # a newest-first cursor with q
        {"cursor": "garbage!!"},
        {"q": "cursor", "cursor": "WyJ4IiwgIjIwMjYtMDEtMDFUMDA6MDA6MDArMDA6MDAiLCAieCIsICJ5Il0"},
        {"limit": 0},
        {"limit": 101},
        {"q": "a\u0000b"},
        {"q": "x" * 1001},
    ]
    for params in bad:
        response = await client.get("/api/memories", params=params, headers=user.headers)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_other_users_memories_are_invisible(client: httpx.AsyncClient) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    secret = await remember(client, alice, "alice's private zanzibar plan")
    await remember(client, bob, "bob's own note")
    for params in ({}, {"q": "zanzibar"}):
        items = (await client.get("/api/memories", params=params, headers=bob.headers)).json()["items"]
        assert secret["id"] not in [item["id"] for item in items]
    assert (await client.delete(f"/api/memories/{secret['id']}", headers=bob.headers)).status_code == 404
    items = (await client.get("/api/memories", params={"q": "zanzibar"}, headers=alice.headers)).json()["items"]
    assert [item["id"] for item in items] == [secret["id"]]


async def test_malformed_ids_auth_and_openapi(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    assert (await client.delete("/api/memories/42", headers=user.headers)).status_code == 422
    assert (await client.get("/api/memories")).status_code == 401
    assert (await client.post("/api/memories", json={"content": "x"})).status_code == 401
    paths = app.openapi()["paths"]
    assert {"201", "401", "422"} <= set(paths["/api/memories"]["post"]["responses"])
    assert {"200", "401", "422"} <= set(paths["/api/memories"]["get"]["responses"])
    assert {"204", "401", "404", "422"} <= set(paths["/api/memories/{memory_id}"]["delete"]["responses"])
