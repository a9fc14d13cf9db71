"""Session fixtures: one real PostgreSQL database (migrated) and one real Redis per test session."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from core.migrate import migrate
from core.scratch import create_database, drop_database
from core.settings import Settings
from tests.support import TestServers, find_servers, make_settings
from tripsage.app import create_app


@pytest.fixture(scope="session")
def servers() -> Iterator[TestServers]:
    """The PostgreSQL and Redis servers of this test session."""
    found = find_servers()
    yield found
    for handle in found.handles:
        stop = getattr(handle, "cleanup", None) or getattr(handle, "shutdown", None)
        if callable(stop):
            stop()


@pytest.fixture(scope="session")
async def database_url(servers: TestServers) -> AsyncIterator[str]:
    """A fresh migrated database for the session, dropped at the end."""
    url = await create_database(servers.admin_url)
    await asyncio.to_thread(migrate, url)
    yield url
    await drop_database(servers.admin_url, url)


@pytest.fixture(scope="session")
def settings(database_url: str, servers: TestServers) -> Settings:
    """Settings pointing at the session's database and Redis."""
    return make_settings(database_url, servers.redis_url)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The API app with its lifespan running."""
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the app in-process (ASGI)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The environment an in-process `tripsage` CLI call reads (CliRunner); yields the database URL."""
    monkeypatch.setenv("DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("SUPABASE_JWT_SECRET", str(settings.supabase_jwt_secret))
    monkeypatch.setenv("TRIPSAGE_ENCRYPTION_KEYS", str(settings.tripsage_encryption_keys))
    monkeypatch.setenv("LOG_FORMAT", "text")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield str(settings.database_url)
    root.handlers[:] = handlers  # the CLI installed a handler on CliRunner's (now closed) stderr
    root.setLevel(level)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A data dir with a short path (unix socket paths are limited to ~107 characters)."""
    with tempfile.TemporaryDirectory(prefix="ts-", dir="/tmp") as path:
        yield Path(path)
