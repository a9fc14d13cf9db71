"""problem+json rendering and the mapping of database refusals (no database needed here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from core.auth import AuthError
from core.errors import (
    PROBLEM_JSON,
    SQLSTATE_STATUS,
    ApiError,
    install_error_handlers,
    not_found,
    problem_response,
    validation_errors,
)


class FakeDriverError(Exception):
    """What asyncpg raises: an exception carrying a SQLSTATE."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("driver said no")
        self.sqlstate = sqlstate


def db_error(sqlstate: str | None, *, via_cause: bool = False) -> DBAPIError:
    if via_cause:  # SQLAlchemy's adapted error wraps the driver's one
        orig = Exception("adapted")
        orig.__cause__ = FakeDriverError(sqlstate)
    else:
        orig = FakeDriverError(sqlstate)
    return DBAPIError("INSERT INTO secret_table VALUES ('hunter2')", {"p": "hunter2"}, orig)


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/db/{sqlstate}")
    async def fail_db(sqlstate: str, cause: bool = False) -> None:
        raise db_error(None if sqlstate == "none" else sqlstate, via_cause=cause)

    @app.get("/auth")
    async def fail_auth(missing: bool = False) -> None:
        raise AuthError("nope", missing=missing)

    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def test_problem_response_shape() -> None:
    response = problem_response(404, "trip not found")
    assert response.status_code == 404
    assert response.media_type == PROBLEM_JSON
    assert orjson.loads(response.body) == {
        "type": "https://tripsage.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "trip not found",
    }
    with_errors = problem_response(422, "bad", errors=[{"loc": ["body", "x"], "msg": "m"}], title="Custom Title")
    body = orjson.loads(with_errors.body)
    assert body["title"] == "Custom Title" and body["type"].endswith("/custom-title")
    assert body["errors"] == [{"loc": ["body", "x"], "msg": "m"}]


def test_api_error_and_not_found() -> None:
    err = ApiError(409, "taken", headers={"Retry-After": "1"})
    assert (err.status, err.detail, err.errors, err.headers, err.title) == (
        409,
        "taken",
        None,
        {"Retry-After": "1"},
        "Conflict",
    )
    missing = not_found("trip")
    assert (missing.status, missing.detail) == (404, "trip not found")
    assert not_found().detail == "resource not found"


def test_validation_errors_keep_loc_and_msg_only() -> None:
    raw: list[dict[str, Any]] = [
        {"type": "too_short", "loc": ("body", "tags", 3), "msg": "too short", "input": "SECRET", "ctx": {}},
        {"type": "missing", "loc": ("query", "limit")},
    ]
    assert validation_errors(raw) == [
        {"loc": ["body", "tags", 3], "msg": "too short"},
        {"loc": ["query", "limit"], "msg": "invalid"},
    ]


def test_sqlstate_table_maps_only_to_client_statuses() -> None:
    assert SQLSTATE_STATUS["23505"][0] == 409
    assert SQLSTATE_STATUS["23514"][0] == 422
    assert all(400 <= status < 500 for status, _ in SQLSTATE_STATUS.values())


@pytest.mark.parametrize(("sqlstate", "status"), [("23505", 409), ("23514", 422), ("22P02", 422), ("40001", 409)])
@pytest.mark.parametrize("cause", [False, True])
async def test_database_refusals_are_mapped(http: httpx.AsyncClient, sqlstate: str, status: int, cause: bool) -> None:
    response = await http.get(f"/db/{sqlstate}", params={"cause": cause})
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "hunter2" not in response.text and "secret_table" not in response.text


@pytest.mark.parametrize("sqlstate", ["XX000", "none"])
async def test_unknown_database_errors_are_500(http: httpx.AsyncClient, sqlstate: str) -> None:
    response = await http.get(f"/db/{sqlstate}")
    assert response.status_code == 500
    assert response.json()["detail"] == "internal error"
    assert "hunter2" not in response.text


async def test_auth_errors_carry_the_right_challenge(http: httpx.AsyncClient) -> None:
    invalid = await http.get("/auth")
    assert invalid.status_code == 401 and invalid.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    missing = await http.get("/auth", params={"missing": True})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
