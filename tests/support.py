"""Test infrastructure shared by every tier: real databases, real Redis, users, statement counting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from core.auth import mint_token
from core.db import create_engine
from core.embedded import start_postgres, start_redis
from core.settings import Settings
from projections.apply import drain
from tripsage.app import create_app

TEST_JWT_SECRET = "test-secret-" + "x" * 40
TEST_ENCRYPTION_KEY = "q3b9cK2cW8m4m8hX4QZ0yPZC1m7m0t7E8cQ5cX2m3lQ="
ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DIR = ROOT / ".tripsage" / "test"


@dataclass
class TestServers:
    """Where the test session's PostgreSQL and Redis are, and what to stop afterwards."""

    admin_url: str
    redis_url: str
    handles: list[Any] = field(default_factory=list)


def find_servers() -> TestServers:
    """The machine's services when configured (TEST_* or the app's variables), else embedded ones."""
    db = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    redis = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    handles: list[Any] = []
    if db:
        db = Settings(
            database_url=db,
            redis_url="redis://x",
            supabase_jwt_secret=TEST_JWT_SECRET,
            tripsage_encryption_keys=TEST_ENCRYPTION_KEY,
        ).database_url
    else:
        EMBEDDED_DIR.mkdir(parents=True, exist_ok=True)
        db, handle = start_postgres(EMBEDDED_DIR)
        handles.append(handle)
    if not redis:
        EMBEDDED_DIR.mkdir(parents=True, exist_ok=True)
        redis, handle = start_redis(EMBEDDED_DIR)
        handles.append(handle)
    assert db is not None
    return TestServers(admin_url=db, redis_url=redis, handles=handles)


def make_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    """Settings for a test app: real URLs, the test secret and encryption key."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "supabase_jwt_secret": TEST_JWT_SECRET,
        "tripsage_encryption_keys": TEST_ENCRYPTION_KEY,
        "log_format": "text",
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A further app (its lifespan running) and an in-process client of it, e.g. with other limits."""
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield app, http


@dataclass(frozen=True)
class User:
    """A test user: id, email and a valid bearer token."""

    id: uuid.UUID
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header for this user."""
        return {"Authorization": f"Bearer {self.token}"}


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[int]:
    """Run an ASGI app in a real uvicorn on a free loopback port (a thread with its own event loop).

    Yields:
        The port, once the server accepts connections.
    """
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def new_user(name: str = "user", *, full_name: str | None = None) -> User:
    """A fresh user with a valid token (the profile is provisioned on its first request)."""
    user_id = uuid.uuid4()
    email = f"{name}-{user_id.hex[:8]}@example.com"
    return User(user_id, email, mint_token(secret=TEST_JWT_SECRET, email=email, sub=user_id, full_name=full_name))


def service_headers() -> dict[str, str]:
    """Authorization header of a service_role token."""
    return {"Authorization": f"Bearer {mint_token(secret=TEST_JWT_SECRET, email='', service_role=True)}"}


class StatementCounter:
    """Counts statements sent through an engine (SQLAlchemy's `before_cursor_execute`)."""

    def __init__(self) -> None:
        """Start empty."""
        self.statements: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        """Record one statement."""
        self.statements.append(statement)

    @property
    def count(self) -> int:
        """How many statements ran."""
        return len(self.statements)

    def data_statements(self) -> list[str]:
        """Statements other than the request plumbing (role/claims set-up)."""
        return [s for s in self.statements if "set_config('role'" not in s]


class DriverStatementCounter:
    """Counts statements sent on the driver directly (asyncpg's query logger), e.g. `call_as`'s one call."""

    def __init__(self) -> None:
        """Start empty."""
        self.statements: list[str] = []
        self.args: list[tuple[Any, ...]] = []

    def __call__(self, record: Any) -> None:
        """Record one statement (an asyncpg `LoggedQuery`) and its parameters."""
        self.statements.append(record.query)
        self.args.append(tuple(record.args))

    @property
    def count(self) -> int:
        """How many statements ran."""
        return len(self.statements)


@asynccontextmanager
async def count_driver_statements(engine: AsyncEngine) -> AsyncIterator[DriverStatementCounter]:
    """Count the statements sent on the asyncpg connections `engine` hands out inside the block.

    asyncpg logs what goes through `Connection.execute`/`fetch*` (driver calls, and SQLAlchemy's
    BEGIN/COMMIT), not SQLAlchemy's prepared-statement executions: `count_statements` sees those.
    It calls its loggers with `call_soon`, so the block's end yields once to let them run.
    """
    counter = DriverStatementCounter()
    touched: list[Any] = []

    def checkout(dbapi_connection: Any, *_args: Any) -> None:
        driver = dbapi_connection.driver_connection
        driver.add_query_logger(counter)
        touched.append(driver)

    event.listen(engine.sync_engine, "checkout", checkout)
    try:
        yield counter
    finally:
        await asyncio.sleep(0)
        event.remove(engine.sync_engine, "checkout", checkout)
        for driver in touched:
            driver.remove_query_logger(counter)


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[StatementCounter]:
    """Count the statements `engine` runs inside the block."""
    counter = StatementCounter()
    event.listen(engine.sync_engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", counter)


async def project_forever(url: str, interval_s: float = 0.02) -> None:
    """The projection worker's loop in-process (cancel the task to stop it); errors are retried."""
    engine = create_engine(url, pool_size=2)
    try:
        while True:
            with contextlib.suppress(Exception):  # a test may stop the database under it
                await drain(engine, settle_timeout_s=0)
            await asyncio.sleep(interval_s)
    finally:
        await engine.dispose()
