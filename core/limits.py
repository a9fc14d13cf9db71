"""Per-user rate limits, shared by every API process through Redis, failing open.

One GCRA (generic cell rate algorithm) check per request: a Lua script that reads and updates the
caller's "theoretical arrival time" in one round trip, on Redis's clock (so every process agrees on
time). A budget of N per minute lets a fresh caller send N requests at once, then one more every
60/N seconds: a token bucket holding N tokens, refilled at N per minute. Over budget, the answer is
the number of seconds until the next request would pass.

Redis is a guard here, not a dependency: when it is unreachable, slow (past a short timeout) or
answers with an error, the request proceeds, a WARNING is logged (at most once per
`WARNING_INTERVAL_S`), and Redis is skipped for `BACKOFF_S` so an outage adds no latency to every
request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid

from redis.asyncio import Redis

log = logging.getLogger("tripsage.limits")

KEY_PREFIX = "tripsage:ratelimit"
BACKOFF_S = 1.0
WARNING_INTERVAL_S = 30.0
MICROSECONDS = 1_000_000

GCRA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return math.ceil(wait) end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', string.format('%.0f', math.ceil((next_tat - now) / 1000)))
return 0
"""
"""GCRA in one round trip. KEYS[1]: the caller's bucket. ARGV: emission interval and burst tolerance
(µs). Returns 0 when the request passes (and records it), else the µs until one would pass. The key
expires when the bucket is full again, so idle users cost no memory."""


class RateLimiter:
    """Checks and records requests against per-user budgets kept in Redis."""

    def __init__(self, redis_url: str, *, timeout_s: float) -> None:
        """Create the limiter; the connection opens on first use.

        Args:
            redis_url: The shared Redis (`redis://`, `rediss://` or `unix://`).
            timeout_s: How long one check may take before the request proceeds unchecked.
        """
        self._redis = Redis.from_url(
            redis_url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, retry_on_timeout=False
        )
        self._script = self._redis.register_script(GCRA)
        self._timeout_s = timeout_s
        self._skip_until = 0.0
        self._next_warning = 0.0
        self._suppressed = 0

    async def retry_after(self, bucket: str, user_id: uuid.UUID, per_minute: int) -> int | None:
        """Count one request of `user_id` against `per_minute` in `bucket`.

        Args:
            bucket: Which budget (`commands`, `queries`).
            user_id: The verified caller.
            per_minute: The budget; 0 turns the limit off.

        Returns:
            None when the request may proceed (also when Redis cannot tell), else the whole
            seconds (≥ 1) the caller should wait.
        """
        if per_minute <= 0 or time.monotonic() < self._skip_until:
            return None
        interval = MICROSECONDS * 60 // per_minute
        try:
            async with asyncio.timeout(self._timeout_s):
                wait = await self._script(
                    keys=[f"{KEY_PREFIX}:{bucket}:{user_id}"], args=[interval, interval * (per_minute - 1)]
                )
        except Exception as exc:  # noqa: BLE001  # redis raises many error types; a limit must never fail a request
            self._failed(exc)
            return None
        wait_us = int(wait)
        return max(1, math.ceil(wait_us / MICROSECONDS)) if wait_us > 0 else None

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._skip_until = now + BACKOFF_S
        if now < self._next_warning:
            self._suppressed += 1
            return
        log.warning(
            "rate limits not enforced for %.0f s: Redis unavailable (%s); %d similar warnings suppressed",
            BACKOFF_S,
            type(exc).__name__,
            self._suppressed,
        )
        self._next_warning = now + WARNING_INTERVAL_S
        self._suppressed = 0

    async def close(self) -> None:
        """Close the Redis connections."""
        try:
            await self._redis.aclose()
        except Exception:  # noqa: BLE001  # closing a broken connection may fail; nothing to do
            log.debug("closing redis failed", exc_info=True)
