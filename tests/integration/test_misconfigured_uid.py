"""A database whose `auth.uid()` cannot see the request's claims: loud (503 + ERROR log), never a quiet 404."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from core.migrate import migrate
from core.scratch import create_database, driver_dsn, drop_database
from tests.support import TestServers as Servers
from tests.support import make_settings, new_user
from tripsage.app import create_app


@pytest.fixture
async def blind_database(servers: Servers) -> AsyncIterator[str]:
    """A migrated database where RLS refuses every profile insert, as it does when auth.uid() is blind.

    (Replacing auth.uid() itself is not possible on a Supabase-like server, where it is not ours;
    changing our own policy gives the same refusal on every server.)
    """
    url = await create_database(servers.admin_url)
    await asyncio.to_thread(migrate, url)
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        await conn.execute("ALTER POLICY profiles_insert ON profiles WITH CHECK (id = (SELECT auth.uid()) AND false)")
    finally:
        await conn.close()
    yield url
    await drop_database(servers.admin_url, url)


async def test_a_refused_provisioning_is_503_and_logged(
    blind_database: str, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(blind_database, servers.redis_url))
    caplog.set_level(logging.ERROR)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        response = await client.get("/api/users/me", headers=new_user("blind").headers)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "Retry-After" in response.headers
    assert "auth.uid()" in response.json()["detail"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("42501" in m and "profiles" in m for m in errors), errors
