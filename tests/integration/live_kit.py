"""Live-update test kit: a real API in uvicorn plus a real projection worker, and SSE readers over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from queries.live.hub import LiveHub
from tests.support import User

WAIT_S = 10.0


@dataclass
class Event:
    """One server-sent event as a client parses it."""

    id: int
    event: str
    data: Any


@dataclass
class Reader:
    """An open `GET /api/events` stream, parsed in the background."""

    events: list[Event] = field(default_factory=list)
    comments: int = 0
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, trip_id: str) -> list[Event]:
        """The events about one trip, in arrival order."""
        return [e for e in self.events if isinstance(e.data, dict) and e.data.get("id") == trip_id]

    async def until(self, predicate: Any, timeout: float = WAIT_S) -> None:
        """Wait until `predicate(self)` holds (fails the test after `timeout`)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()

    @property
    def last_id(self) -> int:
        """The id of the last event received."""
        return self.events[-1].id


def _dispatch(reader: Reader, fields: dict[str, str]) -> None:
    data = fields.get("data", "")
    reader.events.append(Event(int(fields["id"]), fields.get("event", "message"), orjson.loads(data) if data else None))


async def _consume(response: httpx.Response, reader: Reader) -> None:
    try:
        await _parse(response, reader)
    finally:
        reader.ended.set()


async def _parse(response: httpx.Response, reader: Reader) -> None:
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            reader.comments += 1
        elif not line:
            if "id" in fields:
                _dispatch(reader, fields)
            fields = {}
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = fields[name] + "\n" + value if name == "data" and name in fields else value
        reader.changed.set()


@contextlib.asynccontextmanager
async def subscribe(
    base_url: str, user: User, *, trip_id: str | None = None, last_event_id: int | None = None
) -> AsyncIterator[Reader]:
    """Open a stream for `user` and parse it until the block ends (then disconnect)."""
    reader = Reader()
    headers = dict(user.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    params = {"trip_id": trip_id} if trip_id else {}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(WAIT_S, read=None)) as http,
        http.stream("GET", "/api/events", headers=headers, params=params) as response,
    ):
        reader.status = response.status_code
        reader.headers = dict(response.headers)
        if response.status_code != 200:
            await response.aread()
            yield reader
            return
        task = asyncio.create_task(_consume(response, reader))
        await reader.until(lambda r: r.comments > 0)  # the opening comment: registered with the hub
        try:
            yield reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task


async def converged(http: httpx.AsyncClient, user: User, of: Callable[[str], list[Event]], ids: list[str]) -> bool:
    """Each trip's last event equals `GET /api/trips/{id}` (a 404: `trip_removed` or no event at all).

    Args:
        http: A client of any API process.
        user: Whose view to compare.
        of: The user's events about one trip, in arrival order (`Reader.of`, `Follower.of`).
        ids: The trips to compare.
    """
    for trip_id in ids:
        got = await http.get(f"/api/trips/{trip_id}", headers=user.headers)
        last = of(trip_id)[-1:] or None
        if got.status_code == 200 and (last is None or last[0].event != "trip" or last[0].data != got.json()):
            return False
        if got.status_code == 404 and last is not None and last[0].event != "trip_removed":
            return False
    return True


def only_visible(user: User, events: list[Event]) -> None:
    """Every document received named `user` as its owner or a collaborator; ids only ever grow."""
    for event in events:
        if event.event == "trip":
            members = {event.data["owner"]["id"]} | {c["user_id"] for c in event.data["collaborators"]}
            assert str(user.id) in members, event
    ids = [e.id for e in events]
    assert ids == sorted(ids), ids


def hub(app: FastAPI) -> LiveHub:
    """The app's live hub (runs in uvicorn's thread; read-only use from tests)."""
    live: LiveHub = app.state.live
    return live


def trip_ids(reader: Reader) -> set[str]:
    """Every trip an event of the reader named."""
    return {str(e.data["id"]) for e in reader.events if isinstance(e.data, dict) and "id" in e.data}


def new_id() -> str:
    """A random UUID as text."""
    return str(uuid.uuid4())
