"""problem+json rendering and the mapping of database refusals (no database needed here)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.exceptions
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

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


def _wrapped_in_runtime_error() -> Exception:
    outer = RuntimeError("wrapped")
    outer.__cause__ = ConnectionResetError("peer reset")
    return outer


def _invalidated() -> Exception:
    return DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True)


FAILURES: dict[str, Callable[[], Exception]] = {
    "refused": lambda: ConnectionRefusedError(111, "Connect call failed"),
    "reset": lambda: ConnectionResetError("reset by peer"),
    "connect-timeout": lambda: TimeoutError(),
    "closed": lambda: asyncpg.exceptions.InterfaceError("connection is closed"),
    "busy": lambda: asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
    "gone": lambda: asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    "starting": lambda: asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    "shutdown": lambda: asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    "too-many": lambda: asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    "canceled": lambda: asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
    "lock": lambda: asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout"),
    "idle": lambda: asyncpg.exceptions.IdleInTransactionSessionTimeoutError("terminating connection due to idle"),
    "pool": lambda: PoolTimeoutError("QueuePool limit of size 20 overflow 0 reached"),
    "invalidated": _invalidated,
    "redis-down": lambda: redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
    "redis-slow": lambda: redis.exceptions.TimeoutError("Timeout reading from socket"),
    "wrapped": _wrapped_in_runtime_error,
    "grouped": lambda: ExceptionGroup("task group", [ValueError("other"), ConnectionRefusedError(111, "refused")]),
    "raw-unique": lambda: asyncpg.exceptions.UniqueViolationError("duplicate key"),
    "raw-rls": lambda: asyncpg.exceptions.InsufficientPrivilegeError(
        'new row violates row-level security policy for table "itineraries"'
    ),
}


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/db/{sqlstate}")
    async def fail_db(sqlstate: str, cause: bool = False) -> None:
        raise db_error(None if sqlstate == "none" else sqlstate, via_cause=cause)

    @app.get("/fail/{name}")
    async def fail(name: str) -> None:
        raise FAILURES[name]()

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
    assert "42501" not in SQLSTATE_STATUS  # RLS refusing the service's own write is never the client's fault
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


UNAVAILABLE_CASES = [name for name in FAILURES if not name.startswith("raw-")]


@pytest.mark.parametrize("name", UNAVAILABLE_CASES)
async def test_dependency_failures_are_503_with_retry_after(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="tripsage.errors"):
        response = await http.get(f"/fail/{name}")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == PROBLEM_JSON
    records = [r for r in caplog.records if r.name == "tripsage.errors"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING and records[0].exc_info is None


@pytest.mark.parametrize("sqlstate", ["08006", "08003", "57P01", "57P03", "53300", "57014", "55P03", "25P03"])
@pytest.mark.parametrize("cause", [False, True])
async def test_unavailable_sqlstates_are_503(http: httpx.AsyncClient, sqlstate: str, cause: bool) -> None:
    response = await http.get(f"/db/{sqlstate}", params={"cause": cause})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "hunter2" not in response.text


async def test_raw_driver_errors_are_classified_like_wrapped_ones(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await http.get("/fail/raw-unique")).status_code == 409
    with caplog.at_level(logging.ERROR, logger="tripsage.errors"):
        refused = await http.get("/fail/raw-rls")
    assert refused.status_code == 503 and "auth.uid()" in refused.json()["detail"]
    assert "table itineraries" in caplog.text and "42501" in caplog.text


async def test_rls_refusal_through_sqlalchemy_is_503(http: httpx.AsyncClient) -> None:
    response = await http.get("/db/42501")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
