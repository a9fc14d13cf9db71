"""The process's live-update hub: one read per projection notification, routed in memory.

The worker stamps every change with a position in commit order and notifies
`tripsage_projection` after each batch (`projections.apply.FINISH`). The hub rides the process's
LISTEN connection (`queries.consistency.ProjectionListener`, shared with read-your-writes) and on
each wake-up runs ONE statement, as the login role on the primary, for every document and removal
past the last position it read, with the document's `member_ids` as projected. It then hands each
frame to the subscribers of the users in `member_ids` (a removal: to its one user). The database
work is the same whether one client listens or five thousand. Without a LISTEN connection (it
failed, or a transaction pooler) the hub polls instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import ApiError
from queries.consistency import ProjectionListener
from queries.live.frames import Frame, Subscriber, frame, removed_frame
from queries.live.metrics import READS, SUBSCRIBERS

log = logging.getLogger("tripsage.live")

MAX_STREAMS_PER_USER = 5
QUEUE_TRIPS = 256
KEEPALIVE_S = 15.0
READ_LIMIT = 1000
LISTENING_POLL_S = 5.0
FALLBACK_POLL_S = 0.5
ERROR_BACKOFF_S = 1.0
RETRY_AFTER_S = 5

CHANGES = text(
    """
SELECT c.position, c.trip_id, c.member_ids, c.doc, extract(epoch FROM c.at)::float8 AS at FROM (
  SELECT v.position, v.trip_id, v.member_ids, v.doc, v.projected_at AS at
  FROM trip_views v WHERE v.position > :after
  UNION ALL
  SELECT r.position, r.trip_id, ARRAY[r.user_id], NULL, r.removed_at
  FROM tripsage.live_removals r WHERE r.position > :after
) c
ORDER BY c.position
LIMIT :limit
"""
)
"""Documents (with who may see them) and removals numbered after :after, oldest first (login role)."""

HEAD = text(
    "SELECT greatest((SELECT max(position) FROM trip_views), (SELECT max(position) FROM tripsage.live_removals), 0)"
)
"""The highest position visible now (every lower one is visible too)."""


class LiveHub:  # pylint: disable=too-many-instance-attributes  # limits, reader state, registry
    """Routes projected changes to the streams of this process."""

    def __init__(
        self,
        engine: AsyncEngine,
        listener: ProjectionListener,
        *,
        max_streams_per_user: int = MAX_STREAMS_PER_USER,
        queue_trips: int = QUEUE_TRIPS,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        """Create the hub; it starts reading with the first subscriber.

        Args:
            engine: The primary database, as the login role.
            listener: The process's LISTEN connection on the projection channel.
            max_streams_per_user: Open streams one user may hold in this process (more: 429).
            queue_trips: Trips a subscriber's queue may hold before it is reset.
            keepalive_s: Longest silence on a stream before a comment line.
        """
        self.engine = engine
        self.listener = listener
        self.max_streams_per_user = max_streams_per_user
        self.queue_trips = queue_trips
        self.keepalive_s = keepalive_s
        self.position = 0
        self.closing = False
        self._subscribers: dict[uuid.UUID, set[Subscriber]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def count(self, user_id: uuid.UUID | None = None) -> int:
        """Open streams of one user, or of everyone."""
        if user_id is not None:
            return len(self._subscribers.get(user_id, ()))
        return sum(len(subs) for subs in self._subscribers.values())

    async def start(self) -> None:
        """Learn the current position and start the reader (once; a DB error propagates: 503)."""
        if self._task is not None and not self._task.done():
            return
        async with self._lock:
            if self._task is not None and not self._task.done():
                return
            async with self.engine.connect() as conn:
                self.position = int(await conn.scalar(HEAD) or 0)
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._run(), name="tripsage-live-hub")
            if self._ticker is None or self._ticker.done():
                self._ticker = asyncio.create_task(self._tick(), name="tripsage-live-ticker")

    def subscribe(self, user_id: uuid.UUID, trip_id: uuid.UUID | None, expires_at: float = math.inf) -> Subscriber:
        """Register a stream, starting after the hub's current position, until `expires_at` (Unix time).

        Raises:
            ApiError: 429 (with `Retry-After`) when the user already holds the most streams allowed.
        """
        if self.count(user_id) >= self.max_streams_per_user:
            raise ApiError(
                429,
                f"too many live streams: at most {self.max_streams_per_user} per user",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        sub = Subscriber(user_id, trip_id, self.queue_trips, last_sent=self.position, expires_at=expires_at)
        self._subscribers.setdefault(user_id, set()).add(sub)
        SUBSCRIBERS.inc()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a stream (idempotent)."""
        subs = self._subscribers.get(sub.user_id)
        if subs is not None and sub in subs:
            subs.discard(sub)
            SUBSCRIBERS.dec()
            if not subs:
                del self._subscribers[sub.user_id]

    async def pump(self) -> int:
        """Read everything past the hub's position and route it; one statement per READ_LIMIT rows.

        Returns:
            How many changes were routed.
        """
        routed = 0
        while True:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(CHANGES, {"after": self.position, "limit": READ_LIMIT})).all()
            READS.inc()
            self.route(rows)
            routed += len(rows)
            if len(rows) < READ_LIMIT:
                return routed

    def route(self, rows: Sequence[Any]) -> None:
        """Hand each change to the subscribers of the users it concerns (in position order)."""
        for position, trip_id, member_ids, doc, projected_at in rows:
            self.position = max(self.position, int(position))
            item: Frame = (
                removed_frame(position, trip_id, projected_at)
                if doc is None
                else frame("trip", position, trip_id, bytes(doc), projected_at)
            )
            for user_id in member_ids:
                for sub in self._subscribers.get(user_id, ()):
                    sub.offer(item)

    async def _run(self) -> None:
        while not self.closing:
            listening = await self.listener.ensure()
            generation = self.listener.generation
            try:
                await self.pump()
            except Exception:  # noqa: BLE001  # the database may be away: keep the streams, try again
                log.warning("live updates: reading projected changes failed; retrying", exc_info=True)
                await asyncio.sleep(ERROR_BACKOFF_S)
                continue
            await self.listener.wait(generation, LISTENING_POLL_S if listening else FALLBACK_POLL_S)

    async def _tick(self) -> None:
        """Every half keep-alive: streams quiet for a whole tick get a keep-alive, expired ones end.

        One timer for the process instead of one per stream: an idle stream holds no timer, and a
        stream is silent for at most `keepalive_s` (two ticks). Token expiry is noticed within a tick.
        """
        while not self.closing:
            await asyncio.sleep(self.keepalive_s / 2)
            now = time.time()
            for subs in self._subscribers.values():
                for sub in subs:
                    if sub.expires_at <= now:
                        sub.end()
                    elif sub.quiet:
                        sub.keepalive_due = True
                        sub.wake()
                    sub.quiet = True

    def request_close(self) -> None:
        """Ask every stream to end (safe from a signal handler or another thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._close_streams)
        else:
            self._close_streams()

    def _close_streams(self) -> None:
        self.closing = True
        for subs in self._subscribers.values():
            for sub in subs:
                sub.end()

    async def close(self) -> None:
        """End every stream and stop the reader (app shutdown)."""
        self._close_streams()
        tasks, self._task, self._ticker = (self._task, self._ticker), None, None
        for task in tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
