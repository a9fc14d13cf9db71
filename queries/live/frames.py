"""Server-sent-event frames and a subscriber's bounded queue, which coalesces per trip.

A frame is encoded once per change and shared by every subscriber it is routed to. A subscriber's
queue holds at most one frame per trip (a newer frame of the same trip replaces the unsent older
one, since the latest document is the state the client needs) and at most `limit` trips; past that
the queue is dropped and the client gets `event: reset` (refetch the list), so a stalled client
costs bounded memory and never delays anyone else.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field

from queries.live.metrics import COALESCED, DELIVERY, DROPPED, EVENTS_SENT

KEEPALIVE = b": keepalive\n\n"
OPENING = b"retry: 2000\n: connected\n\n"
CLOSING = b": closing\n\n"


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded event: its position (`id:`), the trip it is about, and when it was projected."""

    position: int
    event: str
    trip_id: uuid.UUID | None
    data: bytes
    projected_at: float = 0.0


def frame(event: str, position: int, trip_id: uuid.UUID | None, payload: bytes, projected_at: float = 0.0) -> Frame:
    """Encode an event (`id:`, `event:`, one `data:` line per line of the payload).

    Args:
        event: `trip`, `trip_removed` or `reset`.
        position: The event's id (a live position).
        trip_id: The trip, if any (the coalescing key).
        payload: The data (a TripView's stored JSON bytes, or a small JSON object).
        projected_at: Unix time the projection wrote the change (0: unknown), for the latency metric.

    Returns:
        The frame.
    """
    data = b"".join(b"data: " + line + b"\n" for line in payload.split(b"\n"))
    encoded = b"id: %d\nevent: %s\n%s\n" % (position, event.encode(), data)
    return Frame(position, event, trip_id, encoded, projected_at)


def removed_frame(position: int, trip_id: uuid.UUID, projected_at: float = 0.0) -> Frame:
    """`event: trip_removed` with `{"id": ...}`."""
    return frame("trip_removed", position, trip_id, b'{"id":"%s"}' % str(trip_id).encode(), projected_at)


def reset_frame(position: int) -> Frame:
    """`event: reset`: the client must refetch (resume from `position` afterwards)."""
    return frame("reset", position, None, b"{}")


@dataclass(eq=False, slots=True)
class Subscriber:  # pylint: disable=too-many-instance-attributes  # one small object per open stream
    """One open stream: whose it is, which trip it is narrowed to, its pending frames and its wake-up.

    An idle stream costs this object and one pending future, nothing more (no event, no timer): the
    hub's ticker (`LiveHub`) marks keep-alives and token expiry, `offer` and `end` wake the stream.
    """

    user_id: uuid.UUID
    trip_id: uuid.UUID | None
    limit: int
    last_sent: int = 0
    expires_at: float = math.inf  # the token's expiry: the hub's ticker ends the stream then
    pending: dict[uuid.UUID | None, Frame] = field(default_factory=dict)
    reset_at: int | None = None
    woken: bool = False
    waiter: asyncio.Future[None] | None = None
    quiet: bool = True  # nothing written since the hub's last tick
    keepalive_due: bool = False
    ended: bool = False

    def wake(self) -> None:
        """Wake the stream (it takes what is pending, or writes a keep-alive, or ends)."""
        self.woken = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def end(self) -> None:
        """Ask the stream to end (shutdown, token expiry, the client went away)."""
        self.ended = True
        self.wake()

    async def wait(self) -> None:
        """Until the next `wake` (at once if one came since the last wait)."""
        if not self.woken:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        self.woken = False

    def offer(self, item: Frame) -> None:
        """Queue a frame routed to this subscriber (coalescing per trip; a reset on overflow)."""
        if (self.trip_id is not None and item.trip_id != self.trip_id) or item.position <= self.last_sent:
            return
        if item.trip_id in self.pending:
            del self.pending[item.trip_id]
            COALESCED.inc()
        elif len(self.pending) >= self.limit or self.reset_at is not None:
            DROPPED.inc(len(self.pending) + 1)
            self.pending.clear()
            self.reset_at = item.position
            self.wake()
            return
        self.pending[item.trip_id] = item
        self.wake()

    def take(self) -> list[Frame]:
        """The frames to send now, oldest first (a reset alone after an overflow)."""
        if self.reset_at is not None:
            position, self.reset_at = self.reset_at, None
            self.pending.clear()
            return [reset_frame(position)]
        frames = sorted((f for f in self.pending.values() if f.position > self.last_sent), key=lambda f: f.position)
        self.pending.clear()
        return frames

    def sent(self, item: Frame) -> bytes:
        """Record a frame as sent (position, metrics) and return its bytes."""
        self.last_sent = max(self.last_sent, item.position)
        self.quiet = False
        EVENTS_SENT.labels(item.event).inc()
        if item.projected_at:
            DELIVERY.observe(max(0.0, time.time() - item.projected_at))
        return item.data
