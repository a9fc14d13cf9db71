"""Measurement tools of the read benchmark: direct ASGI calls, a round-trip counting proxy, load generators."""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message

from core.settings import normalize_database_url


@dataclass
class Timing:
    """Latencies of one measured run, and the CPU it cost (this process; the database's backends)."""

    latencies: list[float]
    seconds: float
    requests: int
    app_cpu: float = float("nan")
    db_cpu: float = float("nan")

    @property
    def cpu_ms(self) -> tuple[float, float]:
        """CPU milliseconds per request: (app, PostgreSQL)."""
        n = max(1, self.requests)
        return self.app_cpu / n * 1000, self.db_cpu / n * 1000

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        """A latency percentile in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def asgi_get(app: ASGIApp, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One GET straight into the ASGI app (no HTTP client in the way)."""
    return await asgi_request(app, "GET", path, headers)


async def asgi_request(
    app: ASGIApp, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    """One request straight into the ASGI app (no HTTP client in the way)."""
    raw_path, _, query = path.partition("?")
    sent = {k.lower(): v for k, v in headers.items()}
    if body:
        sent |= {"content-type": "application/json", "content-length": str(len(body))}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in sent.items()],
        "server": ("bench", 80),
        "client": ("127.0.0.1", 1),
        "state": {},
    }
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def backend_cpu(dbname: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to `dbname` (Linux /proc; nan elsewhere)."""
    total = 0.0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return float("nan")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if cmdline.startswith(b"postgres: ") and f" {dbname} ".encode() in cmdline:
            used = process_cpu(int(pid))
            total += 0.0 if math.isnan(used) else used  # a backend that just exited
    return total


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by process `pid`, all its threads (Linux /proc; nan elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, ValueError, IndexError):
        return float("nan")


def cpu_times() -> list[int]:
    """The machine's CPU time counters over every core, in clock ticks (`/proc/stat`'s first line:
    user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice)."""
    with open("/proc/stat", encoding="ascii") as stat:
        return [int(v) for v in stat.readline().split()[1:]]


def box_cpu() -> float:
    """CPU seconds the whole machine has been busy (not idle, not waiting on I/O), over every core."""
    try:
        values = cpu_times()
    except (OSError, ValueError):
        return float("nan")
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


@dataclass
class CpuSplit:
    """Where the CPU went during a load run, in milliseconds per request."""

    api_ms: float
    db_ms: float
    box_ms: float

    @classmethod
    def sample(cls, server_pid: int, dbname: str) -> tuple[float, float, float]:
        """The three counters now; pass two samples and a request count to `between`."""
        return process_cpu(server_pid), backend_cpu(dbname), box_cpu()

    @classmethod
    def between(cls, before: tuple[float, float, float], after: tuple[float, float, float], requests: int) -> CpuSplit:
        """The split of the CPU used between two samples over `requests` requests."""
        n = max(1, requests)
        api, db, box = (1000 * (b - a) / n for a, b in zip(before, after, strict=True))
        return cls(api, db, box)


async def time_inprocess(
    app: ASGIApp, path: str, headers: dict[str, str], *, n: int, max_seconds: float, dbname: str = ""
) -> Timing:
    """Sequential in-process requests: up to `n`, or until `max_seconds` have passed."""
    latencies: list[float] = []
    cpu0, db0 = time.process_time(), backend_cpu(dbname) if dbname else float("nan")
    started = time.perf_counter()
    while len(latencies) < n and time.perf_counter() - started < max_seconds:
        t0 = time.perf_counter()
        status, _ = await asgi_get(app, path, headers)
        latencies.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
    elapsed = time.perf_counter() - started
    db1 = backend_cpu(dbname) if dbname else float("nan")
    return Timing(latencies, elapsed, len(latencies), time.process_time() - cpu0, db1 - db0)


class StatementCounter:
    """Counts every statement an engine's connections send, attached for the engine's life.

    Two sources, each statement seen by exactly one: SQLAlchemy's `before_cursor_execute` (the
    statements SQLAlchemy runs, as prepared statements the driver does not log) and asyncpg's query
    logger on each new pooled connection (what is sent on the driver directly: the read functions of
    `queries.plumbing.call_as`, `read_transaction`'s BEGIN/COMMIT, SQLAlchemy's own BEGIN/COMMIT).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        """Attach to an engine (before it opens its first connection)."""
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)
        event.listen(engine.sync_engine, "connect", self._connected)

    def _seen(self, *_args: Any) -> None:
        self.count += 1

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(self._seen)

    def take(self) -> int:
        """The count since the last call."""
        value, self.count = self.count, 0
        return value


@dataclass
class RoundTripProxy:
    """A TCP proxy in front of PostgreSQL that counts round trips.

    A round trip is a client message sent after the server has answered (or the first message of a
    connection): asyncpg waits for each answer before it sends the next request.
    """

    target_host: str
    target_port: int
    target_socket: str | None = None
    round_trips: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop open pipes."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.target_socket is not None:
            server_r, server_w = await asyncio.open_unix_connection(self.target_socket)
        else:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        state = {"answered": True}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_client: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if from_client:
                        if state["answered"]:
                            self.round_trips += 1
                        state["answered"] = False
                    else:
                        state["answered"] = True
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        for task in (
            asyncio.create_task(pipe(client_r, server_w, from_client=True)),
            asyncio.create_task(pipe(server_r, client_w, from_client=False)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def take(self) -> int:
        """The count since the last call."""
        value, self.round_trips = self.round_trips, 0
        return value


async def counting_proxy(url: str) -> tuple[RoundTripProxy, str]:
    """A started `RoundTripProxy` in front of the PostgreSQL `url` names, and the URL through it.

    The target may be a TCP address or a Unix socket (`postgresql://user@/db?host=/var/run/postgresql`);
    the proxy itself listens on loopback TCP.
    """
    target = make_url(normalize_database_url(url))
    socket_dir = target.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        proxy = RoundTripProxy("", 0, target_socket=f"{socket_dir}/.s.PGSQL.{target.port or 5432}")
        target = target.difference_update_query(["host"])
    else:
        proxy = RoundTripProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    return proxy, target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class LoadResult:
    """One load run over HTTP."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str


BENCH_VARIABLES = ("READ_CACHE_MB", "DB_POOL_SIZE", "DB_POOL_OVERFLOW")
"""Settings a bench run is commonly repeated with: echoed in front of the printed command when set."""


def set_variables(names: tuple[str, ...]) -> str:
    """`NAME=value ` for each of `names` set in the environment (the printed command reproduces the run)."""
    return "".join(f"{name}={os.environ[name]} " for name in names if name in os.environ)


def uvicorn_command(factory: str, port: int) -> list[str]:
    """The command of a bench server: uvicorn, one worker, `factory` (`module:function`), quiet logs."""
    return [
        sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def wrk_available() -> bool:
    """True when `wrk` is installed (`apt-get install -y wrk`)."""
    return shutil.which("wrk") is not None


def run_wrk(url: str, token: str, *, connections: int, seconds: float, script: str | None = None) -> LoadResult:
    """Load `url` with wrk (1 thread, `connections` keep-alive connections) and parse its report.

    `script`: a wrk Lua script (path) that builds each request (method, path, body).
    """
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "30s",
        "-H", f"Authorization: Bearer {token}", *(["-s", script] if script else []), url,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)) else 0
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    return LoadResult(rps, p50, p99, requests, errors, "wrk")


async def run_httpx(url: str, token: str, *, connections: int, seconds: float) -> LoadResult:
    """The fallback load generator: `connections` asyncio workers with keep-alive httpx clients."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - t0)
                errors += response.status_code >= 400

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies) or [float("nan")]
    return LoadResult(
        len(latencies) / elapsed,
        statistics.median(ordered) * 1000,
        ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
        len(latencies),
        errors,
        "httpx",
    )


def print_rounds(results: dict[str, list[tuple[float, float]]]) -> None:
    """Print an A/B's rounds per variant: app CPU µs per request and req/s, medians and every round."""
    for name, rounds in results.items():
        cpu, rps = [r[0] for r in rounds], [r[1] for r in rounds]
        print(
            f"{name}: app CPU µs/req median {statistics.median(cpu):.0f} {[round(x) for x in cpu]};"
            f" req/s median {statistics.median(rps):.0f} {[round(x) for x in rps]}"
        )
