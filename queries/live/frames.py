"""Server-sent-event frames and a subscriber's bounded queue, which coalesces per trip.

A frame is encoded once per change and shared by every subscriber it is routed to. A subscriber's
queue holds at most one frame per trip (a newer frame of the same trip replaces the unsent older
one, since the latest document is the state the client needs) and at most `limit` trips; past that
the queue is dropped and the client gets `event: reset` (refetch the list), so a stalled client
costs bounded memory and never delays anyone else.
"""

from __future__ import annotations

import asyncio
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
class Subscriber:
    """One open stream: whose it is, which trip it is narrowed to, and its pending frames."""

    user_id: uuid.UUID
    trip_id: uuid.UUID | None
    limit: int
    last_sent: int = 0
    pending: dict[uuid.UUID | None, Frame] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    reset_at: int | None = None

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
            self.wake.set()
            return
        self.pending[item.trip_id] = item
        self.wake.set()

    def take(self) -> list[Frame]:
        """The frames to send now, oldest first (a reset alone after an overflow)."""
        self.wake.clear()
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
        EVENTS_SENT.labels(item.event).inc()
        if item.projected_at:
            DELIVERY.observe(max(0.0, time.time() - item.projected_at))
        return item.data
