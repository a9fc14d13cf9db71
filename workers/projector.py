"""The worker's projection loop: woken by nudges, sweeping every second, beating a heartbeat.

Nudges (arq jobs) only wake the loop; the loop drains the feed and retries due dead letters. A
drain pass stops after `sweep_interval_s` of work even when the feed is not empty (sustained load),
so the due-retry sweep runs at least once per interval whatever the load; the loop then goes on at
once. A pass that fails (database down, a statement or lock timeout) is retried after a backoff
that doubles from `failure_backoff_s` up to `max_failure_backoff_s` (nudges do not shorten it).
Because the loop clears its wake-up flag *before* it drains, a nudge that arrives during a drain
causes one more pass, so no wake-up is lost inside the process; anything a lost nudge left behind
(Redis down, a deduplicated job) is picked up by the periodic sweep. Closing stops after the batch
in flight (a batch is one transaction: it commits or rolls back), runs a last drain if a nudge was
still pending, and removes the heartbeat row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.apply import DEFAULT_BATCH_SIZE, DEFAULT_FANOUT_LIMIT, DrainResult, drain_pass, retry_due
from projections.dead_letters import DEFAULT_POLICY, RetryPolicy

log = logging.getLogger("tripsage.worker")

BEAT = text(
    """
INSERT INTO tripsage.worker_heartbeats (worker_id, hostname, pid, batches, trips)
VALUES (:worker_id, :hostname, :pid, :batches, :trips)
ON CONFLICT (worker_id) DO UPDATE SET beat_at = now(), batches = EXCLUDED.batches, trips = EXCLUDED.trips
"""
)
WAITING_POLL_S = 0.01
FORGET_STALE = text("DELETE FROM tripsage.worker_heartbeats WHERE beat_at < now() - interval '1 hour'")
FORGET_SELF = text("DELETE FROM tripsage.worker_heartbeats WHERE worker_id = :worker_id")


@dataclass(frozen=True, slots=True)
class ProjectorOptions:  # pylint: disable=too-many-instance-attributes  # one field per tuning knob
    """Tuning of one worker process."""

    batch_size: int = DEFAULT_BATCH_SIZE
    fanout_limit: int = DEFAULT_FANOUT_LIMIT
    policy: RetryPolicy = DEFAULT_POLICY
    sweep_interval_s: float = 1.0
    heartbeat_interval_s: float = 1.0
    close_timeout_s: float = 10.0
    failure_backoff_s: float = 0.1
    max_failure_backoff_s: float = 5.0

    def failure_delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failed passes in a row: base, 2×base, 4×base… capped."""
        return float(min(self.max_failure_backoff_s, self.failure_backoff_s * 2 ** max(failures - 1, 0)))


class Projector:  # pylint: disable=too-many-instance-attributes  # a loop's wake-up, stop and counter state
    """Drains the change feed into the read model for one worker process."""

    def __init__(self, engine: AsyncEngine, options: ProjectorOptions | None = None) -> None:
        """Create the projector (call `start` inside the event loop).

        Args:
            engine: The database as the login role (the worker bypasses RLS).
            options: Tuning; defaults suit production.
        """
        self.engine = engine
        self.options = options or ProjectorOptions()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.batches = 0
        self.trips = 0
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._requested = False
        self._stopping = False
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._retried_at = 0.0
        self.sweeps = 0
        self.failures = 0

    def start(self) -> None:
        """Start the projection loop and the heartbeat."""
        self._tasks = [asyncio.create_task(self._loop()), asyncio.create_task(self._heartbeat())]

    def wake(self) -> None:
        """Ask for a drain as soon as possible (what a nudge does)."""
        self._requested = True
        self._wake.set()

    async def run_once(self) -> DrainResult:
        """Drain the feed, then retry the dead letters that are due.

        Returns:
            What the pass did; `waiting` says committed changes are held back (look again soon).
        """
        opts = self.options
        async with self._lock:
            result = await drain_pass(
                self.engine,
                batch_size=opts.batch_size,
                fanout_limit=opts.fanout_limit,
                policy=opts.policy,
                budget_s=opts.sweep_interval_s,
            )
            now = time.monotonic()
            if now - self._retried_at >= opts.sweep_interval_s:  # dead letters: once per sweep interval
                self._retried_at = now
                self.sweeps += 1
                result.trips += (await retry_due(self.engine, policy=opts.policy)).refreshed
            self.batches += result.batches
            self.trips += result.trips
            return result

    async def _rest(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the projector is closed meanwhile (nudges do not wake it)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()

    async def _loop(self) -> None:
        sweep = self.options.sweep_interval_s
        pause = sweep
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._wake.wait()
            if self._stopping:
                return
            self._wake.clear()
            self._requested = False
            try:
                result = await self.run_once()
            except Exception:  # noqa: BLE001  # a failed pass (database down, a timeout) is retried
                self.failures += 1
                delay = self.options.failure_delay(self.failures)
                log.exception("projection pass failed (%d in a row); retrying in %.1f s", self.failures, delay)
                await self._rest(delay)
                pause = 0.0
                continue
            self.failures = 0
            if result.yielded:  # stopped at its budget with work left: go on at once
                pause = 0.0
            elif result.waiting:
                # Committed changes held back by an older open transaction: look again soon, backing
                # off, rather than at the next sweep (nobody nudges when that transaction ends).
                pause = WAITING_POLL_S if pause <= 0 or pause >= sweep else min(pause * 2, sweep)
            else:
                pause = sweep

    async def beat(self) -> None:
        """Write this worker's heartbeat row."""
        async with self.engine.begin() as conn:
            await conn.execute(
                BEAT,
                {
                    "worker_id": self.worker_id,
                    "hostname": socket.gethostname(),
                    "pid": os.getpid(),
                    "batches": self.batches,
                    "trips": self.trips,
                },
            )

    async def _heartbeat(self) -> None:
        with contextlib.suppress(Exception):
            async with self.engine.begin() as conn:
                await conn.execute(FORGET_STALE)
        while not self._stopping:
            try:
                await self.beat()
            except Exception:  # noqa: BLE001  # readiness reports the missing heartbeat; keep trying
                log.warning("heartbeat failed", exc_info=True)
            await asyncio.sleep(self.options.heartbeat_interval_s)

    async def aclose(self) -> None:
        """Stop after the batch in flight, drain once more if a nudge is pending, drop the heartbeat."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        loop_task, heartbeat_task = self._tasks or (None, None)
        if heartbeat_task is not None:
            heartbeat_task.cancel()
        if loop_task is not None:
            try:
                async with asyncio.timeout(self.options.close_timeout_s):
                    await asyncio.shield(loop_task)
            except TimeoutError:
                log.warning("projection pass still running at shutdown; cancelling (its batch rolls back)")
                loop_task.cancel()
        if self._requested:
            self._requested = False
            try:
                async with asyncio.timeout(self.options.close_timeout_s):
                    await self.run_once()
            except Exception:  # noqa: BLE001  # the next worker picks it up; nothing is lost
                log.warning("final drain at shutdown failed", exc_info=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with self.engine.begin() as conn:
                await conn.execute(FORGET_SELF, {"worker_id": self.worker_id})
