"""Errors and guards over HTTP: every failure is problem+json (RFC 9457), never a stack trace or a 500 for bad input.

A test-only app adds a few routes to the production app (body validation, a path id, database
constraint violations, a crash) to reach each error path through the real middleware and handlers.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from pydantic import Field
from sqlalchemy import text

from core.deps import CurrentUser, SessionDep
from core.errors import ApiError
from core.models import Command, SafeStr
from core.settings import Settings
from tests.support import new_user
from tripsage.app import create_app
from tripsage.middleware import MAX_BODY_BYTES

router = APIRouter(prefix="/test-mw")


class Echo(Command):
    """A body with the usual constraints."""

    name: SafeStr = Field(min_length=1, max_length=10)
    count: int = Field(default=0, ge=0)


@router.post("/echo")
async def echo(body: Echo) -> dict[str, Any]:
    """Echo a valid body."""
    return body.model_dump()


@router.get("/items/{item_id}")
async def item(item_id: uuid.UUID) -> dict[str, str]:
    """A path id."""
    return {"id": str(item_id)}


@router.post("/keys", status_code=201)
async def add_key(user: CurrentUser, session: SessionDep) -> dict[str, bool]:
    """Insert the same unique row on every call (the second is a unique violation)."""
    await session.execute(
        text("INSERT INTO api_keys (user_id, service, name, ciphertext, last4) VALUES (:u, 'svc', 'dup', 'x', '1234')"),
        {"u": user.user_id},
    )
    return {"ok": True}


@router.post("/memories")
async def empty_memory(user: CurrentUser, session: SessionDep) -> dict[str, bool]:
    """Break a CHECK constraint."""
    await session.execute(text("INSERT INTO memories (user_id, content) VALUES (:u, '')"), {"u": user.user_id})
    return {"ok": True}


@router.post("/divide")
async def divide(user: CurrentUser, session: SessionDep) -> dict[str, bool]:
    """An unmapped database error (division by zero) on a statement carrying a secret-looking value."""
    secret = "-".join(("hunter2", "api", "key"))  # built at run time: tracebacks quote source lines
    await session.execute(text("SELECT length(CAST(:secret AS text)) / 0"), {"secret": secret, "u": user.user_id})
    return {"ok": True}


@router.get("/teapot")
async def teapot() -> None:
    """An ApiError with field errors and a header."""
    raise ApiError(418, "short and stout", errors=[{"loc": ["query", "x"], "msg": "bad"}], headers={"X-T": "1"})


@router.get("/crash")
async def crash() -> None:
    """A bug."""
    raise RuntimeError("secret internals: password=hunter2")


@pytest.fixture(scope="module")
async def mw_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    app.include_router(router)
    async with LifespanManager(app):
        yield app


@pytest.fixture(scope="module")
async def http(mw_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mw_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= set(body) <= {"type", "title", "status", "detail", "errors"}
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


JSON = {"content-type": "application/json"}


async def test_valid_body_passes(http: httpx.AsyncClient) -> None:
    response = await http.post("/test-mw/echo", json={"name": "ok", "count": 2})
    assert response.json() == {"name": "ok", "count": 2}
    response = await http.post(
        "/test-mw/echo", content=b'{"name": "x"}', headers={"content-type": "application/merge-patch+json"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("body", [b"{bad", b'{"name": "x",}', b"\xff\xfe", b'{"name": "x"'])
async def test_malformed_json_is_400(http: httpx.AsyncClient, body: bytes) -> None:
    body_json = problem(await http.post("/test-mw/echo", content=body, headers=JSON), 400)
    assert "JSON" in body_json["detail"]


async def test_unknown_route_is_404(http: httpx.AsyncClient) -> None:
    assert problem(await http.get("/nowhere"), 404)["title"] == "Not Found"
    problem(await http.post("/api/nowhere", json={}), 404)


async def test_wrong_method_is_405_with_allow(http: httpx.AsyncClient) -> None:
    response = await http.get("/test-mw/echo")
    problem(response, 405)
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        # A path whose methods are split across the query and command routers: all of them, always.
        ("OPTIONS", "/api/keys", "GET, POST"),
        ("PUT", "/api/keys", "GET, POST"),
        ("HEAD", "/api/keys", "GET, POST"),
        ("OPTIONS", f"/api/trips/{uuid.uuid4()}", "GET, PATCH, DELETE"),
        ("POST", f"/api/trips/{uuid.uuid4()}", "GET, PATCH, DELETE"),
        ("GET", f"/api/trips/{uuid.uuid4()}/collaborators/{uuid.uuid4()}", "PUT, DELETE"),
        ("DELETE", "/api/users/me", "GET, PATCH"),
        ("OPTIONS", "/api/chat/sessions/x", "GET, DELETE"),
        ("POST", "/healthz", "GET"),
    ],
)
async def test_405_allow_lists_every_method_of_the_path(
    http: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    if method != "HEAD":
        problem(response, 405)


async def test_body_over_one_mib_by_content_length_is_413(http: httpx.AsyncClient) -> None:
    big = b'{"name": "' + b"x" * MAX_BODY_BYTES + b'"}'
    problem(await http.post("/test-mw/echo", content=big, headers=JSON), 413)
    # declared large but the route is unknown: still refused before any work
    problem(await http.post("/nowhere", content=big, headers=JSON), 413)


async def test_chunked_body_over_one_mib_is_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}'

    response = await http.post("/test-mw/echo", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    problem(response, 413)


async def test_body_of_exactly_one_mib_is_not_refused_for_size(http: httpx.AsyncClient) -> None:
    padding = MAX_BODY_BYTES - len(b'{"name": "x", "count": 0}')
    body = b'{"name": "x", "count": 0' + b" " * padding + b"}"
    assert len(body) == MAX_BODY_BYTES
    assert (await http.post("/test-mw/echo", content=body, headers=JSON)).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
async def test_non_json_body_is_415(http: httpx.AsyncClient, content_type: str) -> None:
    problem(await http.post("/test-mw/echo", content=b"name=x", headers={"content-type": content_type}), 415)


async def test_body_without_content_type_is_415(http: httpx.AsyncClient) -> None:
    problem(await http.post("/test-mw/echo", content=b'{"name": "x"}'), 415)


async def test_invalid_content_length_is_400(http: httpx.AsyncClient) -> None:
    request = http.build_request("POST", "/test-mw/echo", content=b"{}", headers=JSON)
    request.headers["content-length"] = "lots"
    problem(await http.send(request), 400)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": ""}, ["body", "name"]),
        ({"name": "x" * 11}, ["body", "name"]),
        ({"name": "x", "count": -1}, ["body", "count"]),
        ({"name": "x", "id": "read-only"}, ["body", "id"]),
        ({"name": "a\u0000b"}, ["body", "name"]),
        ({}, ["body", "name"]),
        ([1, 2], ["body"]),
    ],
)
async def test_invalid_fields_are_422_with_errors(http: httpx.AsyncClient, body: Any, loc: list[Any]) -> None:
    result = problem(await http.post("/test-mw/echo", json=body), 422)
    assert result["errors"], result
    assert all(set(err) == {"loc", "msg"} for err in result["errors"])
    assert loc in [err["loc"] for err in result["errors"]]
    assert "a\u0000b" not in str(result)  # input values are not echoed


async def test_missing_body_is_422(http: httpx.AsyncClient) -> None:
    result = problem(await http.post("/test-mw/echo", headers=JSON), 422)
    assert result["errors"][0]["loc"] == ["body"]


@pytest.mark.parametrize("bad_id", ["42", "not-a-uuid", "%00"])
async def test_malformed_path_id_is_422(http: httpx.AsyncClient, bad_id: str) -> None:
    result = problem(await http.get(f"/test-mw/items/{bad_id}"), 422)
    assert result["errors"][0]["loc"] == ["path", "item_id"]


async def test_api_error_renders_its_fields(http: httpx.AsyncClient) -> None:
    response = await http.get("/test-mw/teapot")
    body = problem(response, 418)
    assert body == {
        "type": "https://tripsage.dev/problems/i'm-a-teapot",
        "title": "I'm a Teapot",
        "status": 418,
        "detail": "short and stout",
        "errors": [{"loc": ["query", "x"], "msg": "bad"}],
    }
    assert response.headers["x-t"] == "1"


async def test_unique_violation_is_409_and_check_violation_is_422(http: httpx.AsyncClient) -> None:
    user = new_user("dup")
    assert (await http.post("/test-mw/keys", headers=user.headers)).status_code == 201
    body = problem(await http.post("/test-mw/keys", headers=user.headers), 409)
    assert "api_keys" not in body["detail"] and "dup" not in body["detail"]  # no SQL or values
    problem(await http.post("/test-mw/memories", headers=user.headers), 422)


async def test_a_bug_is_a_plain_500_without_internals(http: httpx.AsyncClient) -> None:
    body = problem(await http.get("/test-mw/crash"), 500)
    assert body["detail"] == "internal error"
    assert "hunter2" not in str(body)


async def test_latency_metric_uses_route_templates(http: httpx.AsyncClient) -> None:
    item_id = uuid.uuid4()
    await http.get(f"/test-mw/items/{item_id}")
    await http.get(f"/no/such/{item_id}")
    metrics = (await http.get("/metrics")).text
    assert 'route="/test-mw/items/{item_id}"' in metrics
    assert 'route="unmatched"' in metrics
    assert str(item_id) not in metrics


async def test_unmapped_database_error_is_500_and_logs_no_values(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="tripsage.errors"):
        body = problem(await http.post("/test-mw/divide", headers=new_user("div").headers), 500)
    assert body["detail"] == "internal error"
    logged = caplog.text  # formatted, tracebacks included
    assert "22012" in logged  # the SQLSTATE is there for the operator
    assert "hunter2-api-key" not in logged and "hunter2-api-key" not in str(body)
