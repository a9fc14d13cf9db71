"""Live-update fault kit: the API and the worker as real processes, and clients that reconnect.

`api_process` starts the API one of the four ways it is run (`tripsage serve`, `tripsage up`,
`python -m tripsage.api.main`, `uvicorn tripsage.api.main:app`) on a loopback port; `Follower`
keeps a stream open across the API going away, reconnecting with `Last-Event-ID` as a browser does.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.settings import Settings
from tests.integration.live_kit import Event, Reader, subscribe
from tests.integration.test_worker_faults import worker_env
from tests.support import User

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WAYS = ("serve", "up", "python -m", "uvicorn")
"""The ways of running the API (README "Run it"), as `api_process` names them."""


def api_command(way: str, port: int) -> list[str]:
    """The command line of one way of running the API on `port`."""
    commands = {
        "serve": [str(BIN / "tripsage"), "serve", "--port", str(port)],
        "up": [str(BIN / "tripsage"), "up", "--port", str(port)],
        "python -m": [sys.executable, "-m", "tripsage.api.main"],
        "uvicorn": [str(BIN / "uvicorn"), "tripsage.api.main:app", "--port", str(port), "--no-access-log"],
    }
    return commands[way]


@contextlib.contextmanager
def api_process(settings: Settings, port: int, way: str = "serve") -> Iterator[subprocess.Popen[bytes]]:
    """Run the API as a subprocess on 127.0.0.1:`port` until the block ends (killed if still running).

    Yields:
        The process, once `/healthz` answers.
    """
    env = worker_env(settings) | {"PORT": str(port), "HOST": "127.0.0.1"}
    proc = subprocess.Popen(  # noqa: S603  # our own entry points, fixed arguments
        api_command(way, port), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise AssertionError(proc.communicate()[1].decode())
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)


def worker_process(settings: Settings) -> subprocess.Popen[bytes]:
    """`arq workers.main.WorkerSettings` as a subprocess (the worker as it runs in production)."""
    return subprocess.Popen(  # noqa: S603  # our own worker settings
        [str(BIN / "arq"), "workers.main.WorkerSettings"],
        cwd=ROOT,
        env=worker_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass
class Follower:
    """A client that keeps one stream open: on EOF or a refused connection it reconnects with `Last-Event-ID`."""

    url: str
    user: User
    events: list[Event] = field(default_factory=list)
    connections: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Follow until cancelled."""
        while True:
            last = self.events[-1].id if self.events else None
            try:
                async with subscribe(self.url, self.user, last_event_id=last) as reader:
                    self.connections += 1
                    await self._copy(reader)
            except (httpx.HTTPError, OSError, TimeoutError):
                pass
            await asyncio.sleep(0.1)

    async def _copy(self, reader: Reader) -> None:
        seen = 0
        while not (reader.ended.is_set() and seen == len(reader.events)):
            reader.changed.clear()
            self.events.extend(reader.events[seen:])
            seen = len(reader.events)
            self.changed.set()
            if not reader.ended.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1):
                        await reader.changed.wait()
        assert reader.status in (0, 200), reader.status

    def of(self, trip_id: str) -> list[Event]:
        """The events about one trip, in arrival order."""
        return [e for e in self.events if isinstance(e.data, dict) and e.data.get("id") == trip_id]


@contextlib.asynccontextmanager
async def following(url: str, users: list[User]) -> AsyncIterator[list[Follower]]:
    """One `Follower` per user, connected before the block starts, stopped when it ends."""
    followers = [Follower(url, user) for user in users]
    tasks = [asyncio.create_task(f.run()) for f in followers]
    try:
        async with asyncio.timeout(30):
            while not all(f.connections for f in followers):
                await asyncio.sleep(0.05)
        yield followers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
