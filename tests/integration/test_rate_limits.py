"""Per-user rate limits (issue 10): 429 + Retry-After, one budget for every process, failing open."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from core.limits import KEY_PREFIX, RateLimiter
from core.settings import Settings
from tests.support import User, free_port, make_settings, new_user, serving

Send = Callable[[httpx.AsyncClient, User], Awaitable[httpx.Response]]


def limited(settings: Settings, **overrides: Any) -> Settings:
    """The session's settings with other limits."""
    assert settings.database_url and settings.redis_url
    return make_settings(settings.database_url, settings.redis_url, **overrides)


async def rename(http: httpx.AsyncClient, user: User) -> httpx.Response:
    """A cheap command."""
    return await http.patch("/api/users/me", json={"display_name": f"n{time.monotonic_ns()}"}, headers=user.headers)


def assert_limited(response: httpx.Response, *, retry_after: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(retry_after)
    assert response.json()["status"] == 429


@pytest.fixture
async def three_commands(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app allowing 3 commands and 2 expensive queries per minute."""
    overrides = {"rate_limit_commands_per_minute": 3, "rate_limit_queries_per_minute": 2}
    async with serving(limited(settings, **overrides)) as (_, http):
        yield http


async def test_commands_over_budget_get_429_with_retry_after(three_commands: httpx.AsyncClient) -> None:
    user, other = new_user("eager"), new_user("calm")
    assert [(await rename(three_commands, user)).status_code for _ in range(3)] == [200, 200, 200]
    # 3 per minute: one more every 20 s; the 4th must wait for it (Retry-After in whole seconds).
    assert_limited(await rename(three_commands, user), retry_after=20)
    refused = await three_commands.post("/api/memories", json={"content": "never stored"}, headers=user.headers)
    assert_limited(refused, retry_after=20)
    assert "3 commands per minute" in refused.json()["detail"]
    # Nothing was written by the refused command, queries without `q` are not limited, others unaffected.
    listed = await three_commands.get("/api/memories", headers=user.headers)
    assert listed.status_code == 200 and listed.json()["items"] == []
    assert (await three_commands.get("/api/trips", headers=user.headers)).status_code == 200
    assert (await rename(three_commands, other)).status_code == 200


@pytest.mark.parametrize(
    "send",
    [
        lambda http, user: http.get("/api/trips", params={"q": "lisbon"}, headers=user.headers),
        lambda http, user: http.get("/api/memories", params={"q": "walk"}, headers=user.headers),
        lambda http, user: http.get("/api/chat/sessions", headers=user.headers),
        lambda http, user: http.get(f"/api/chat/sessions/{uuid.uuid4()}", headers=user.headers),
    ],
    ids=["trip search", "memory search", "chat sessions", "chat session"],
)
async def test_expensive_queries_have_their_own_budget(three_commands: httpx.AsyncClient, send: Send) -> None:
    user = new_user("reader")
    first, second = await send(three_commands, user), await send(three_commands, user)
    assert {first.status_code, second.status_code} <= {200, 404}
    assert_limited(await send(three_commands, user), retry_after=30)
    # The cheap reads and the command budget are untouched.
    assert (await three_commands.get("/api/trips", headers=user.headers)).status_code == 200
    assert (await three_commands.get("/api/memories", headers=user.headers)).status_code == 200
    assert (await rename(three_commands, user)).status_code == 200


async def test_two_processes_share_one_budget(settings: Settings) -> None:
    config = limited(settings, rate_limit_commands_per_minute=4)
    user = new_user("roaming")
    async with serving(config) as (_, first), serving(config) as (_, second):
        statuses = [(await rename(http, user)).status_code for http in (first, second, first, second)]
        assert statuses == [200, 200, 200, 200]
        assert_limited(await rename(first, user), retry_after=15)
        assert_limited(await rename(second, user), retry_after=15)


async def test_zero_turns_a_limit_off(settings: Settings) -> None:
    user = new_user("unlimited")
    async with serving(limited(settings, rate_limit_commands_per_minute=0, rate_limit_queries_per_minute=0)) as (
        _,
        http,
    ):
        for _ in range(5):
            assert (await rename(http, user)).status_code == 200
            assert (await http.get("/api/chat/sessions", headers=user.headers)).status_code == 200


async def test_fails_open_when_redis_is_unreachable(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    assert settings.database_url
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    config = make_settings(settings.database_url, closed, rate_limit_commands_per_minute=1)
    user = new_user("open")
    with caplog.at_level(logging.WARNING, logger="tripsage.limits"):
        async with serving(config) as (_, http):
            for _ in range(3):
                assert (await rename(http, user)).status_code == 200
                assert (await http.get("/api/chat/sessions", headers=user.headers)).status_code == 200
    warnings = [r for r in caplog.records if r.name == "tripsage.limits"]
    assert len(warnings) == 1  # rate-limited: one warning, not one per request
    assert warnings[0].levelno == logging.WARNING
    assert "ConnectionError" in warnings[0].getMessage()


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A loopback server that accepts connections and never answers (a hung Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_fails_open_when_redis_hangs(settings: Settings, silent_redis: str) -> None:
    assert settings.database_url
    config = make_settings(
        settings.database_url, silent_redis, rate_limit_commands_per_minute=1, rate_limit_redis_timeout_ms=50
    )
    user = new_user("patient")
    async with serving(config) as (app, http):
        started = time.perf_counter()
        assert (await rename(http, user)).status_code == 200
        assert time.perf_counter() - started < 2  # the limiter's 50 ms, then the nudge's own timeout
        # Redis is skipped for a while after a failure: the next request does not wait again.
        assert await app.state.ctx.limiter.retry_after("commands", user.id, 1) is None


async def test_limiter_counts_on_redis_with_an_expiring_key(settings: Settings) -> None:
    assert settings.redis_url
    limiter = RateLimiter(settings.redis_url, timeout_s=1)
    user_id = uuid.uuid4()
    redis = Redis.from_url(settings.redis_url)
    try:
        assert await limiter.retry_after("commands", user_id, 2) is None
        assert await limiter.retry_after("commands", user_id, 2) is None
        assert await limiter.retry_after("commands", user_id, 2) == 30
        assert await limiter.retry_after("queries", user_id, 2) is None  # buckets are separate
        key = f"{KEY_PREFIX}:commands:{user_id}"
        ttl_ms = await redis.pttl(key)
        assert 59_000 < ttl_ms <= 60_000  # the key lives until the bucket is full again
        await redis.delete(key)
        assert await limiter.retry_after("commands", user_id, 2) is None
    finally:
        await redis.aclose()
        await limiter.close()


async def script_calls(redis: Redis) -> int:
    """Script calls Redis has served so far (every client)."""
    stats = await redis.info("commandstats")
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in ("cmdstat_evalsha", "cmdstat_eval"))


async def test_concurrent_checks_share_script_calls_and_keep_every_budget(settings: Settings) -> None:
    assert settings.redis_url
    limiter = RateLimiter(settings.redis_url, timeout_s=1)
    redis = Redis.from_url(settings.redis_url)
    busy, others = uuid.uuid4(), [uuid.uuid4() for _ in range(12)]
    try:
        assert await limiter.retry_after("commands", uuid.uuid4(), 5) is None  # the script is loaded
        before = await script_calls(redis)
        answers = await asyncio.gather(
            *(limiter.retry_after("commands", busy, 5) for _ in range(12)),
            *(limiter.retry_after("commands", user_id, 5) for user_id in others),
        )
        calls = await script_calls(redis) - before
        # 5 per minute: the first 5 pass, the other 7 wait one 12 s interval; other users are untouched.
        assert answers[:12] == [None] * 5 + [12] * 7
        assert answers[12:] == [None] * 12
        assert 1 <= calls <= 3, calls  # 24 checks: the first alone, the rest together (one call each before)
        assert int(await redis.get(f"{KEY_PREFIX}:commands:{others[0]}")) > 0
    finally:
        await redis.aclose()
        await limiter.close()


async def test_concurrent_checks_fail_open_together_when_redis_hangs(
    silent_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter(silent_redis, timeout_s=0.05)
    try:
        with caplog.at_level(logging.WARNING, logger="tripsage.limits"):
            started = time.perf_counter()
            answers = await asyncio.gather(*(limiter.retry_after("commands", uuid.uuid4(), 1) for _ in range(20)))
            elapsed = time.perf_counter() - started
        assert answers == [None] * 20
        assert elapsed < 1  # one timeout for the batch on its way, not one per check
        assert len([r for r in caplog.records if r.name == "tripsage.limits"]) == 1
    finally:
        await limiter.close()


async def test_a_cancelled_check_leaves_the_others_answered(settings: Settings) -> None:
    assert settings.redis_url
    limiter = RateLimiter(settings.redis_url, timeout_s=1)
    try:
        first = asyncio.ensure_future(limiter.retry_after("commands", uuid.uuid4(), 5))
        doomed = asyncio.ensure_future(limiter.retry_after("commands", uuid.uuid4(), 5))
        last = asyncio.ensure_future(limiter.retry_after("commands", uuid.uuid4(), 5))
        await asyncio.sleep(0)  # all three queued
        doomed.cancel()
        assert await first is None and await last is None
        assert doomed.cancelled()
    finally:
        await limiter.close()


async def test_openapi_documents_429_where_limits_apply(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    commands = [
        (method, path)
        for path, operations in paths.items()
        for method in operations
        if path.startswith("/api/") and method in {"post", "patch", "put", "delete"}
    ]
    assert len(commands) >= 15
    limited_queries = [
        ("get", "/api/trips"),
        ("get", "/api/memories"),
        ("get", "/api/chat/sessions"),
        ("get", "/api/chat/sessions/{session_id}"),
    ]
    for method, path in commands + limited_queries:
        response = paths[path][method]["responses"]["429"]
        assert "Retry-After" in response["headers"], (method, path)
    assert "429" not in paths["/api/trips/{trip_id}"]["get"]["responses"]
    assert "429" not in paths["/api/users/me"]["get"]["responses"]
