"""Wake-up nudges for the projection worker, sent after a command commits.

A nudge is an arq job with a fixed id, so a burst of commands queues one job. The change feed in
PostgreSQL is the truth: failing to nudge (Redis down) never fails a command; the worker's
periodic sweep picks the change up.

Commands nudge with `nudge_soon`: in a background task, so the enqueue never delays a response,
and coalesced: while one nudge is on its way, further commits only ask for one more after it, so
every commit is still followed by a nudge that started after it, and a burst of commands costs a
few enqueues instead of one each. The enqueue is arq's, in one round trip (`ENQUEUE`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.commands.core import AsyncScript

log = logging.getLogger("tripsage.nudge")
PROJECT_JOB = "project_changes"
NUDGE_JOB_ID = "tripsage:project:nudge"
ENQUEUE_TIMEOUT_S = 0.25
BACKOFF_S = 2.0

ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""
"""What arq's `ArqRedis.enqueue_job` does for a job with a fixed id, as one script: nothing when the
job is queued or its result still kept, else the serialized job (arq's serializer, arq's keys) with
its expiry, and its id in the queue scored now. arq's own enqueue is a WATCH/MULTI transaction of
four round trips and ~0.4 ms of the API's CPU per nudge (`bench/command_ab.py` with the nudge left
in); this is one round trip. KEYS: job, result, queue. ARGV: job, expiry (ms), score, job id."""


def redis_settings(url: str) -> RedisSettings:
    """Arq settings for a `redis://` or `unix://` URL, with short timeouts and no retry storm."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 1
    settings.conn_retries = 0
    return settings


class Nudger:
    """Sends deduplicated nudges; skips Redis for a while after a failure instead of waiting on it."""

    def __init__(self, redis_url: str) -> None:
        """Create the nudger; the connection opens lazily.

        Args:
            redis_url: Where arq's queue lives.
        """
        self._url = redis_url
        self._pool: ArqRedis | None = None
        self._enqueue: AsyncScript | None = None
        self._down_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def nudge_soon(self) -> None:
        """Nudge in the background, never delaying the caller; coalesced with a nudge already on its way."""
        if self._task is not None and not self._task.done():
            self._again = True  # sent once more when the running one is done: it may predate this commit
            return
        self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            await self.nudge()

    async def nudge(self) -> bool:
        """Enqueue one projection nudge; returns False (and logs) when Redis is unavailable."""
        if time.monotonic() < self._down_until:
            return False
        try:
            async with asyncio.timeout(ENQUEUE_TIMEOUT_S):
                if self._pool is None or self._enqueue is None:
                    self._pool = await create_pool(redis_settings(self._url))
                    self._enqueue = self._pool.register_script(ENQUEUE)
                now = timestamp_ms()
                job = serialize_job(PROJECT_JOB, (), {}, None, now, serializer=self._pool.job_serializer)
                keys = [job_key_prefix + NUDGE_JOB_ID, result_key_prefix + NUDGE_JOB_ID, self._pool.default_queue_name]
                await self._enqueue(keys=keys, args=[job, self._pool.expires_extra_ms, now, NUDGE_JOB_ID])
        except Exception as exc:  # noqa: BLE001  # redis raises many error types; a nudge must never fail a command
            log.warning("projection nudge skipped: %s", type(exc).__name__)
            self._down_until = time.monotonic() + BACKOFF_S
            await self._close_pool()
            return False
        return True

    async def close(self) -> None:
        """Let a background nudge finish (it is bounded by its timeout), then close the Redis connection."""
        task, self._task = self._task, None
        if task is not None:
            self._again = False
            await asyncio.wait([task], timeout=2 * ENQUEUE_TIMEOUT_S)
        await self._close_pool()

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.aclose()
            except Exception:  # noqa: BLE001  # closing a broken connection may fail; nothing to do
                log.debug("closing redis failed", exc_info=True)
