"""Per-user rate limits, shared by every API process through Redis, failing open.

One GCRA (generic cell rate algorithm) check per request: a Lua script that reads and updates the
caller's "theoretical arrival time" on Redis's clock (so every process agrees on time); the checks
of concurrent requests share one script call (`RateLimiter`). A budget of N per minute lets a fresh
caller send N requests at once, then one more every 60/N seconds: a token bucket holding N tokens,
refilled at N per minute. Over budget, the answer is the number of seconds until the next request
would pass.

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
from dataclasses import dataclass

from redis.asyncio import Redis

log = logging.getLogger("tripsage.limits")

KEY_PREFIX = "tripsage:ratelimit"
BACKOFF_S = 1.0
WARNING_INTERVAL_S = 30.0
MICROSECONDS = 1_000_000

GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local waits = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key))
  if not tat or tat < now then tat = now end
  local wait = tat - tolerance - now
  if wait > 0 then
    waits[i] = math.ceil(wait)
  else
    local next_tat = tat + interval
    redis.call('SET', key, string.format('%.0f', next_tat), 'PX', string.format('%.0f', math.ceil((next_tat - now) / 1000)))
    waits[i] = 0
  end
end
return waits
"""
"""GCRA for a batch of checks in one round trip, in order (a key named twice sees its first check).
KEYS: the callers' buckets. ARGV: per key, its emission interval and burst tolerance (µs). Returns,
per key, 0 when the request passes (and records it), else the µs until one would pass. A key
expires when its bucket is full again, so idle users cost no memory."""


@dataclass
class _Check:
    key: str
    interval: int
    tolerance: int
    answer: asyncio.Future[int | None]


def _answer(batch: list[_Check], waits: list[int | None]) -> None:
    for check, wait in zip(batch, waits, strict=True):
        if not check.answer.done():  # its request may have been cancelled meanwhile
            check.answer.set_result(wait)


class RateLimiter:  # pylint: disable=too-many-instance-attributes  # a connection, failure and batch state
    """Checks and records requests against per-user budgets kept in Redis.

    Checks are batched: while one script call is on its way, the checks that arrive wait for it to
    return and then go together in the next call. Under load a burst of requests costs one round
    trip (and one pass through the Redis client) instead of one each; a lone request goes at once.
    """

    def __init__(self, redis_url: str, *, timeout_s: float) -> None:
        """Create the limiter; the connection opens on first use.

        Args:
            redis_url: The shared Redis (`redis://`, `rediss://` or `unix://`).
            timeout_s: How long one script call may take before its requests proceed unchecked.
        """
        self._redis = Redis.from_url(
            redis_url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, retry_on_timeout=False
        )
        self._script = self._redis.register_script(GCRA)
        self._timeout_s = timeout_s
        self._skip_until = 0.0
        self._next_warning = 0.0
        self._suppressed = 0
        self._queue: list[_Check] = []
        self._sender: asyncio.Task[None] | None = None

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
        loop = asyncio.get_running_loop()
        check = _Check(f"{KEY_PREFIX}:{bucket}:{user_id}", interval, interval * (per_minute - 1), loop.create_future())
        self._queue.append(check)
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send())
        wait_us = await check.answer
        return max(1, math.ceil(wait_us / MICROSECONDS)) if wait_us else None

    async def _send(self) -> None:
        """Send the queued checks, one script call per batch, until none are left.

        Every check gets an answer, whatever happens to this task: cancelled, its checks proceed
        unchecked (None), as they do when Redis fails.
        """
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                waits: list[int | None] = [None] * len(batch)
                try:
                    if time.monotonic() >= self._skip_until:  # not while an earlier batch's failure holds
                        waits = await self._call(batch)
                finally:
                    _answer(batch, waits)
        finally:
            batch, self._queue = self._queue, []
            _answer(batch, [None] * len(batch))

    async def _call(self, batch: list[_Check]) -> list[int | None]:
        args = [value for check in batch for value in (check.interval, check.tolerance)]
        try:
            async with asyncio.timeout(self._timeout_s):
                waits = await self._script(keys=[check.key for check in batch], args=args)
        except Exception as exc:  # noqa: BLE001  # redis raises many error types; a limit must never fail a request
            self._failed(exc)
            return [None] * len(batch)
        return [int(wait) or None for wait in waits]

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
        """Let a batch on its way finish (bounded by the timeout), then close the Redis connections."""
        if self._sender is not None:
            await asyncio.wait([self._sender], timeout=2 * self._timeout_s)
        try:
            await self._redis.aclose()
        except Exception:  # noqa: BLE001  # closing a broken connection may fail; nothing to do
            log.debug("closing redis failed", exc_info=True)
