"""A live stream's response without the hand-off middleware, and the stop-signal handler's chaining."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import MutableMapping
from typing import Any

from queries.live.frames import CLOSING, OPENING
from queries.live.hub import LiveHub
from queries.live.shutdown import ClosingHandler
from queries.live.stream import EventStreamResponse


def _hub() -> LiveHub:
    return LiveHub(None, None)  # type: ignore[arg-type]  # never started: no database, no listener


async def test_without_the_middleware_the_response_streams_in_place_and_ends_on_close() -> None:
    hub = _hub()
    sub = hub.subscribe(uuid.uuid4(), None)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message.get("body") == OPENING:
            ClosingHandler(hub, lambda _sig, _frame: None)(signal.SIGTERM, None)  # as on SIGTERM

    await asyncio.wait_for(EventStreamResponse(hub, sub, [])({"type": "http"}, receive, send), 5)
    assert [m.get("body") for m in sent] == [None, OPENING, CLOSING, b""]
    assert sent[-1]["more_body"] is False and hub.count() == 0


async def test_a_client_leaving_ends_the_stream() -> None:
    hub = _hub()
    sub = hub.subscribe(uuid.uuid4(), None)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(EventStreamResponse(hub, sub, [])({"type": "http"}, receive, send), 5)
    assert sent[-1].get("more_body", True) is True  # no end of body to a client that left
    assert hub.count() == 0
