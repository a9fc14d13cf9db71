"""Query endpoints: bad input is a 422 problem, never a 500; absent trips are 404."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support import new_user, service_headers


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1000",
        "limit=abc",
        "cursor=garbage!!",
        "cursor=WyJ4Il0",  # a valid base64 JSON list of the wrong arity
        "cursor=WyJub3QgYSB0aW1lIiwgIngiXQ",  # ["not a time", "x"]
        "cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgIjEyMyJd",  # naive time, bad uuid
        "cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgIjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMSJd",  # naive time
        "status=bogus",
        "role=admin",
        "q=a%00b",
        "q=" + "x" * 201,
    ],
)
async def test_bad_list_input_is_422(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/api/trips?{query}", headers=new_user().headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422
    assert body["errors"]


async def test_malformed_trip_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/trips/not-a-uuid", headers=new_user().headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["path", "trip_id"]


async def test_absent_trip_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/trips/{uuid.uuid4()}", headers=new_user().headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_new_user_has_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/trips", headers=new_user().headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("path", ["/api/trips", f"/api/trips/{uuid.uuid4()}", "/api/users/me"])
async def test_auth_required(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers=service_headers())).status_code == 403


async def test_profile_shape(client: httpx.AsyncClient) -> None:
    user = new_user("prof", full_name="Ada Lovelace")
    response = await client.get("/api/users/me", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["id", "email", "display_name", "preferences", "created_at", "updated_at"]
    assert body["id"] == str(user.id)
    assert body["email"] == user.email
    assert body["display_name"] == "Ada Lovelace"
    assert body["preferences"] == {
        "currency": None,
        "home_airport": None,
        "travel_style": None,
        "dietary_restrictions": [],
        "accessibility_needs": [],
    }
    for key in ("created_at", "updated_at"):
        assert len(body[key]) == 27 and body[key].endswith("Z") and body[key][10] == "T"


async def test_profile_matches_the_command_response(client: httpx.AsyncClient) -> None:
    user = new_user("patch")
    await client.get("/api/users/me", headers=user.headers)
    patch = {"display_name": "Grace", "preferences": {"currency": "EUR", "dietary_restrictions": ["vegan"]}}
    written = await client.patch("/api/users/me", json=patch, headers=user.headers)
    assert written.status_code == 200, written.text
    read = await client.get("/api/users/me", headers=user.headers)
    assert read.json() == written.json()
    assert read.json()["preferences"]["currency"] == "EUR"
