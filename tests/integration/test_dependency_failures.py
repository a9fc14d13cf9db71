"""Dependency failures answer 503 + Retry-After (never 500), log one WARNING, and keep the connection.

Each failure is real: a statement and a lock timeout on the session's PostgreSQL, a pool with one
connection held by another request, a database URL whose port nothing listens on, and a write
that row-level security refuses. The client transport re-raises anything that escapes the app,
so a response arriving at all proves the exception was answered by a handler (Starlette's
`Exception` handler answers and re-raises, which is what closed keep-alive connections).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from core.deps import ContextDep, CurrentUser, SessionDep
from core.errors import RLS_REFUSED, UNAVAILABLE
from core.settings import Settings
from tests.support import free_port, make_settings, new_user, serve
from tripsage.app import create_app

router = APIRouter(prefix="/test-deps")


@router.get("/statement-timeout")
async def statement_timeout(_: CurrentUser, session: SessionDep) -> None:
    """A statement that outlives its timeout (SQLSTATE 57014)."""
    await session.execute(text("SET LOCAL statement_timeout = '50ms'"))
    await session.execute(text("SELECT pg_sleep(2)"))


@router.get("/lock-timeout")
async def lock_timeout(_: CurrentUser, session: SessionDep) -> None:
    """A lock another transaction holds, with a short lock timeout (SQLSTATE 55P03)."""
    await session.execute(text("SET LOCAL lock_timeout = '50ms'"))
    await session.execute(text("LOCK TABLE memories IN ACCESS EXCLUSIVE MODE"))


@router.get("/pool-exhausted")
async def pool_exhausted(ctx: ContextDep) -> None:
    """Hold the write engine's only connections and ask for one more (SQLAlchemy's pool TimeoutError)."""
    engine = ctx.db.engine
    held = [await engine.connect() for _ in range(engine.pool.size() + engine.pool._max_overflow)]  # type: ignore[attr-defined]
    try:
        engine.pool._timeout = 0.05  # type: ignore[attr-defined]  # the pool's wait, shortened for the test
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        engine.pool._timeout = 30  # type: ignore[attr-defined]
        for conn in held:
            await conn.close()


@router.post("/foreign-trip", status_code=201)
async def foreign_trip(_: CurrentUser, session: SessionDep) -> None:
    """A write RLS refuses: a trip owned by someone else than the caller (SQLSTATE 42501)."""
    await session.execute(
        text(
            "INSERT INTO trips (owner_id, title, destination, start_date, end_date)"
            " VALUES (:owner, 't', 'd', DATE '2026-01-01', DATE '2026-01-02')"
        ),
        {"owner": uuid.uuid4()},
    )


@pytest.fixture(scope="module")
async def deps_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    app.include_router(router)
    async with LifespanManager(app):
        yield app


@pytest.fixture(scope="module")
async def http(deps_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions (the default): an exception escaping the app fails the test
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=deps_app), base_url="http://test") as client:
        yield client


def unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.json()["detail"] == UNAVAILABLE


async def test_statement_timeout_is_503(http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    user = new_user("timeout")
    with caplog.at_level(logging.WARNING, logger="tripsage.errors"):
        unavailable(await http.get("/test-deps/statement-timeout", headers=user.headers))
    warnings = [r for r in caplog.records if r.name == "tripsage.errors"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "SQLSTATE 57014" in warnings[0].getMessage() and warnings[0].exc_info is None
    # the same client (connection) goes on being served
    assert (await http.get("/api/users/me", headers=user.headers)).status_code == 200


async def test_lock_timeout_is_503(http: httpx.AsyncClient, database_url: str) -> None:
    user = new_user("lock")
    assert (await http.get("/api/users/me", headers=user.headers)).status_code == 200  # provisioned first
    holder = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE memories IN ACCESS EXCLUSIVE MODE")
            response = await asyncio.wait_for(http.get("/test-deps/lock-timeout", headers=user.headers), timeout=10)
    finally:
        await holder.close()
    unavailable(response)


async def test_exhausted_pool_is_503(http: httpx.AsyncClient) -> None:
    user = new_user("pool")
    assert (await http.get("/api/users/me", headers=user.headers)).status_code == 200
    unavailable(await http.get("/test-deps/pool-exhausted", headers=user.headers))


async def test_unreachable_database_is_503_and_the_app_recovers(settings: Settings) -> None:
    dead = make_settings(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", str(settings.redis_url))
    app = create_app(dead)
    user = new_user("down")
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        for path in ("/api/users/me", "/api/trips", "/api/keys"):
            unavailable(await client.get(path, headers=user.headers))
        created = await client.post(
            "/api/memories", json={"content": "x"}, headers=user.headers | {"X-Request-ID": "req-down-1"}
        )
        unavailable(created)
        assert created.headers["x-request-id"] == "req-down-1"


async def test_rls_refusal_of_the_services_own_write_is_503_and_an_error_log(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    user = new_user("rls")
    with caplog.at_level(logging.WARNING, logger="tripsage.errors"):
        response = await http.post("/test-deps/foreign-trip", headers=user.headers | {"X-Request-ID": "req-rls-7"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["detail"] == RLS_REFUSED
    errors = [r for r in caplog.records if r.name == "tripsage.errors"]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR
    message = errors[0].getMessage()
    assert "42501" in message and "table trips" in message and "req-rls-7" in message


def _read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response (headers and a Content-Length body) from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_503_keeps_the_keep_alive_connection(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Through a real uvicorn: two requests on one socket while PostgreSQL is unreachable, both 503."""
    dead = make_settings(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", str(settings.redis_url))
    user = new_user("keepalive")
    request = (f"GET /api/users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {user.token}\r\n\r\n").encode()
    with (
        serve(create_app(dead)) as port,
        caplog.at_level(logging.WARNING),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        heads = []
        for _ in range(2):
            sock.sendall(request)
            heads.append(_read_response(sock))
    assert all(head.startswith(b"HTTP/1.1 503") for head in heads), heads
    assert all(b"connection: close" not in head.lower() for head in heads)
    assert "Exception in ASGI application" not in caplog.text
