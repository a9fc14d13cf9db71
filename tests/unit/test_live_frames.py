"""A live stream's frames and queue: encoding, per-trip coalescing, the reset on overflow, the trip filter."""

from __future__ import annotations

import uuid

from queries.live.frames import Subscriber, frame, removed_frame, reset_frame

A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def test_frames_are_server_sent_events() -> None:
    assert frame("trip", 7, A, b'{"a":1}').data == b'id: 7\nevent: trip\ndata: {"a":1}\n\n'
    assert frame("trip", 8, A, b"{\n}").data == b"id: 8\nevent: trip\ndata: {\ndata: }\n\n"
    assert removed_frame(9, A).data == b'id: 9\nevent: trip_removed\ndata: {"id":"%s"}\n\n' % str(A).encode()
    assert reset_frame(10).data == b"id: 10\nevent: reset\ndata: {}\n\n"


def test_a_newer_frame_of_a_trip_replaces_the_unsent_one_and_order_is_by_position() -> None:
    sub = Subscriber(uuid.uuid4(), None, limit=10, last_sent=5)
    sub.offer(frame("trip", 4, A, b"old"))  # at or below what was sent already: ignored
    sub.offer(frame("trip", 6, A, b"a1"))
    sub.offer(frame("trip", 7, B, b"b1"))
    sub.offer(removed_frame(8, A))
    assert sub.woken
    taken = sub.take()
    assert [(f.position, f.event) for f in taken] == [(7, "trip"), (8, "trip_removed")]
    for item in taken:
        sub.sent(item)
    assert sub.last_sent == 8 and sub.take() == []


def test_overflow_drops_the_queue_for_a_reset() -> None:
    sub = Subscriber(uuid.uuid4(), None, limit=2)
    sub.offer(frame("trip", 1, A, b"a"))
    sub.offer(frame("trip", 2, B, b"b"))
    sub.offer(frame("trip", 3, C, b"c"))
    sub.offer(frame("trip", 4, A, b"a2"))  # still resetting: dropped too
    assert [(f.event, f.position) for f in sub.take()] == [("reset", 4)]
    sub.offer(frame("trip", 5, B, b"b2"))
    assert [f.position for f in sub.take()] == [5]


def test_a_narrowed_stream_takes_its_trip_only() -> None:
    sub = Subscriber(uuid.uuid4(), A, limit=10)
    sub.offer(frame("trip", 1, B, b"b"))
    sub.offer(frame("trip", 2, A, b"a"))
    assert [f.trip_id for f in sub.take()] == [A]
