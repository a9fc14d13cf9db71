"""A live stream on the wire, and what it costs while idle.

Thousands of streams stay open and mostly idle, so what each one holds matters (README: under
20 KB each). Three things keep it small:

- `Subscriber` (frames.py) waits on a bare future, and the hub's one ticker does keep-alives and
  token expiry: no event, no timer per stream.
- `EventStreamResponse` writes from the request's own task and watches for the client leaving with
  one small task, where Starlette's StreamingResponse holds an anyio task group of two.
- `LiveStreams`, the outermost ASGI layer of the app, runs the stream once the route has returned
  it: the frames of the route, of FastAPI's exit stacks and of every middleware (error handling,
  guards) are gone by then. The route has done everything that can fail (authentication,
  validation, 429, replay) and has sent the response head through the middleware, so the guards
  log and measure the stream as it opens (status 200, `X-Request-ID`); the body goes straight to
  the server's `send`. The app ran on a copy of the scope, which goes with the route.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from queries.live.frames import CLOSING, KEEPALIVE, OPENING, Frame, Subscriber
from queries.live.hub import LiveHub

EVENT_STREAM = "text/event-stream"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
RAW_HEADERS = [
    (b"content-type", f"{EVENT_STREAM}; charset=utf-8".encode()),
    *((name.lower().encode(), value.encode()) for name, value in STREAM_HEADERS.items()),
]
PATH = "/api/events"
HANDOFF = "tripsage.live.handoff"
"""The scope key under which `LiveStreams` collects the stream a route returns."""


async def stream(hub: LiveHub, sub: Subscriber, opening: list[Frame]) -> AsyncGenerator[bytes, None]:
    """The bytes of one stream: the replay, then live frames and keep-alive comments, until it is ended."""
    try:
        yield OPENING
        for item in opening:
            yield sub.sent(item)
        while True:
            frames = sub.take()
            for item in frames:
                yield sub.sent(item)
            if frames:
                continue
            if sub.ended:
                break
            if sub.keepalive_due:
                sub.keepalive_due, sub.quiet = False, False
                yield KEEPALIVE
                continue
            await sub.wait()
        if hub.closing:
            yield CLOSING  # the server is stopping: a last line, then EOF (the client reconnects elsewhere)
    finally:
        hub.unsubscribe(sub)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStreamResponse(StreamingResponse):
    """A live stream written from the request's own task, with one small task watching for the client leaving.

    Starlette's StreamingResponse runs the body and a disconnect listener as two tasks of an anyio
    task group; an idle live stream would hold both, their cancel scopes and events. Here the body
    runs in the request's task and a single task waits for `http.disconnect`, then ends the stream.
    """

    def __init__(self, hub: LiveHub, sub: Subscriber, opening: list[Frame]) -> None:
        """Stream `sub`'s events, starting with `opening` (the replay)."""
        self.frames = stream(hub, sub, opening)
        self.sub = sub
        super().__init__(self.frames, media_type=EVENT_STREAM)
        # The same headers for every stream, their tuples built once; a list of its own, since
        # middleware may append to it.
        self.raw_headers = list(RAW_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the head, then hand the body to `LiveStreams` (outside every frame) if it is there, else run it here."""
        handoff: list[EventStreamResponse] | None = scope.get(HANDOFF)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if handoff is not None:
            handoff.append(self)
            return
        await self.run(receive, send)

    async def run(self, receive: Receive, send: Send) -> None:
        """Send every chunk as the stream yields it, then the end (unless the client left)."""
        watcher = asyncio.ensure_future(_until_disconnect(receive))
        watcher.add_done_callback(self._client_left)
        try:
            async for chunk in self.frames:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not watcher.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            await self.frames.aclose()

    def _client_left(self, _: object) -> None:
        self.sub.end()


class LiveStreams:
    """The app's outermost ASGI layer: runs the stream `GET /api/events` returned once every other frame has unwound."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap an ASGI app."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the call on; if it returned a live stream, run it from here."""
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        handoff: list[EventStreamResponse] = []
        # The app gets a copy of the scope: FastAPI grows it with the route, its exit stacks and
        # more, and all of that goes once the route has returned.
        await self.app({**scope, HANDOFF: handoff}, receive, send)
        for response in handoff:
            # The head went out through the middleware; the body's messages need none of it.
            await response.run(receive, send)
