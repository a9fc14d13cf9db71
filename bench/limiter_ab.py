"""A/B in one process: the rate limiter's batched checks against one script call per check (before).

16 concurrent tasks (the write bench's connections) each make checks for users of their own, on
the machine's Redis, as a command's `limit_commands` does; interleaved rounds of both variants.
Prints the process's CPU µs per check and checks/s (medians and every round). The former variant
is the limiter as it was: the single-key GCRA script, one `EVALSHA` per check. Never a test.

    uv run python -m bench.limiter_ab [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from redis.asyncio import Redis

from bench.harness import print_rounds
from core.limits import KEY_PREFIX, MICROSECONDS, RateLimiter

ROUNDS, TASKS, CHECKS = 6, 16, 400
BUDGET = 1_000_000  # per minute: never refuses

FORMER_GCRA = """
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


class FormerLimiter:
    """The check before batching: one script call per check, each under its own timeout."""

    def __init__(self, redis_url: str, *, timeout_s: float) -> None:
        """Connect lazily, as the limiter does."""
        self._redis = Redis.from_url(
            redis_url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, retry_on_timeout=False
        )
        self._script = self._redis.register_script(FORMER_GCRA)
        self._timeout_s = timeout_s

    async def retry_after(self, bucket: str, user_id: uuid.UUID, per_minute: int) -> int | None:
        """One check (no failure handling: this bench's Redis answers)."""
        interval = MICROSECONDS * 60 // per_minute
        async with asyncio.timeout(self._timeout_s):
            wait = int(
                await self._script(
                    keys=[f"{KEY_PREFIX}:{bucket}:{user_id}"], args=[interval, interval * (per_minute - 1)]
                )
            )
        return max(1, -(-wait // MICROSECONDS)) if wait > 0 else None

    async def close(self) -> None:
        """Close the connections."""
        await self._redis.aclose()


async def one_round(limiter: RateLimiter | FormerLimiter) -> tuple[float, float]:
    """CPU µs per check and checks/s for TASKS concurrent tasks of CHECKS checks each."""

    async def task() -> None:
        user_id = uuid.uuid4()
        for _ in range(CHECKS):
            assert await limiter.retry_after("bench", user_id, BUDGET) is None

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(task() for _ in range(TASKS)))
    cpu, elapsed = time.process_time() - cpu0, time.perf_counter() - t0
    n = TASKS * CHECKS
    return 1e6 * cpu / n, n / elapsed


async def main(redis_url: str) -> None:
    """Interleaved rounds of both variants, then the table."""
    variants: dict[str, RateLimiter | FormerLimiter] = {
        "former (one call per check)": FormerLimiter(redis_url, timeout_s=0.2),
        "now (batched)": RateLimiter(redis_url, timeout_s=0.2),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    try:
        for limiter in variants.values():
            await one_round(limiter)  # warm: connections, script loaded
        for _ in range(ROUNDS):
            for name, limiter in variants.items():
                results[name].append(await one_round(limiter))
    finally:
        for limiter in variants.values():
            await limiter.close()
    print(f"{TASKS} concurrent tasks × {CHECKS} checks, {ROUNDS} interleaved rounds; CPU µs/check, checks/s")
    print_rounds(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    asyncio.run(main(parser.parse_args().redis))
