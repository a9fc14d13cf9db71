"""Live-updates benchmark: delivery latency and cost of `GET /api/events` as subscribers grow.

    uv run python -m bench.live_bench [--subscribers 100,1000] [--rate 200] [--duration 20] [--fanout 5]

One API process (`tripsage serve`) and one worker (`tripsage worker`), each in its own process, on
a scratch database (`--database-url`, else `TEST_DATABASE_URL` / `DATABASE_URL`) and a Redis
(`--redis-url`, else `TEST_REDIS_URL` / `REDIS_URL`). For each subscriber count N: N users, one
stream each (raw asyncio sockets, so the clients cost little), N / fanout trips each shared with
fanout users, so every change reaches `fanout` streams. Then `--rate` PATCH commands/s for
`--duration` s. Measured: delivery latency from the trip's `updated_at` (the command
transaction) to the event read by a client (p50/p99: projection lag included), the hub's own mean
from projection to write (`tripsage_live_delivery_seconds`), events/s delivered, the API's live reads (statements,
from `/metrics`) per second, the API's CPU during the load, and its RSS per idle subscriber.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import orjson

from bench.projection_lag import machine, start_worker, stop_worker, worker_env
from core.auth import mint_token
from core.migrate import migrate
from core.scratch import create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
TRIP = {"title": "t", "destination": "d", "start_date": "2027-01-01", "end_date": "2027-01-03"}


def free_port() -> int:
    """A free loopback port for the API."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


class Stream:
    """One subscriber on a raw socket: parses `data:` lines of `trip` events, records latencies."""

    def __init__(self, port: int, token: str, latencies: list[float]) -> None:
        self.port, self.token, self.latencies = port, token, latencies
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 22)
        request = f"GET /api/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {self.token}\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b": connected"):
                    self.ready.set()
                elif line.startswith(b"data: {") and b'"updated_at"' in line:
                    stamp = orjson.loads(line[6:])["updated_at"]
                    sent = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                    self.latencies.append(time.time() - sent)
        finally:
            writer.close()


async def metric(http: httpx.AsyncClient, name: str) -> float:
    """The sum of a metric's samples on `/metrics`."""
    text = (await http.get("/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def setup(
    http: httpx.AsyncClient, secret: str, count: int, fanout: int
) -> tuple[list[str], list[tuple[str, str]]]:
    """N users (tokens) and N / fanout trips, each shared with fanout - 1 more users: (tokens, (token, trip))."""
    ids = [uuid.uuid4() for _ in range(count)]
    tokens = [mint_token(secret=secret, email=f"u{i}-{u.hex[:6]}@example.com", sub=u) for i, u in enumerate(ids)]
    sem = asyncio.Semaphore(16)

    async def call(method: str, path: str, token: str, body: dict[str, str]) -> httpx.Response:
        async with sem:
            response = await http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
            response.raise_for_status()
            return response

    await asyncio.gather(*(call("PATCH", "/api/users/me", t, {}) for t in tokens))
    owners = list(range(0, count, fanout))
    created = await asyncio.gather(*(call("POST", "/api/trips", tokens[o], TRIP) for o in owners))
    trips = [(tokens[o], r.json()["id"]) for o, r in zip(owners, created, strict=True)]
    shares = [
        call("PUT", f"/api/trips/{trip}/collaborators/{ids[o + k]}", tokens[o], {"permission": "edit"})
        for o, (_, trip) in zip(owners, trips, strict=True)
        for k in range(1, fanout)
        if o + k < count
    ]
    await asyncio.gather(*shares)
    return tokens, trips


async def measure(args: argparse.Namespace, port: int, pid: int, secret: str, count: int) -> list[str]:
    """One row of the table for `count` subscribers."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        tokens, trips = await setup(http, secret, count, args.fanout)
        await asyncio.sleep(2)  # let the projection of the set-up settle
        latencies: list[float] = []
        _, rss_before = proc_stats(pid)
        streams = [Stream(port, t, latencies) for t in tokens]
        for stream in streams:
            stream.task = asyncio.create_task(stream.run())
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in streams)), 120)
        await asyncio.sleep(1)
        _, rss_after = proc_stats(pid)
        latencies.clear()
        reads0, cpu0, start = await metric(http, "tripsage_live_reads_total"), proc_stats(pid)[0], time.monotonic()
        hub0 = (
            await metric(http, "tripsage_live_delivery_seconds_sum"),
            await metric(http, "tripsage_live_delivery_seconds_count"),
        )
        rng, sent, pending = random.Random(7), 0, set()
        while (elapsed := time.monotonic() - start) < args.duration:
            token, trip = rng.choice(trips)
            task = asyncio.create_task(
                http.patch(
                    f"/api/trips/{trip}", json={"title": f"t{sent}"}, headers={"Authorization": f"Bearer {token}"}
                )
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
            await asyncio.sleep(max(0.0, sent / args.rate - elapsed))
        await asyncio.sleep(2)  # the last changes arrive
        cpu = proc_stats(pid)[0] - cpu0
        reads = await metric(http, "tripsage_live_reads_total") - reads0
        hub_sum = await metric(http, "tripsage_live_delivery_seconds_sum") - hub0[0]
        hub_count = await metric(http, "tripsage_live_delivery_seconds_count") - hub0[1]
        for stream in streams:
            assert stream.task is not None
            stream.task.cancel()
        await asyncio.gather(*(s.task for s in streams if s.task), return_exceptions=True)
    ordered = sorted(latencies) or [float("nan")]
    p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    seconds = args.duration + 2
    return [
        str(count),
        f"{sent / args.duration:.0f}",
        f"{p50 * 1000:.0f}",
        f"{p99 * 1000:.0f}",
        f"{hub_sum / max(hub_count, 1) * 1000:.1f}",
        f"{len(latencies) / seconds:.0f}",
        f"{reads / seconds:.1f}",
        f"{cpu / seconds * 100:.0f} %",
        f"{(rss_after - rss_before) / count / 1024:.1f}",
    ]


async def run(args: argparse.Namespace) -> list[list[str]]:
    """Create the scratch database, run the API and the worker, measure each subscriber count."""
    admin = args.database_url or os.environ.get("TEST_DATABASE_URL") or os.environ["DATABASE_URL"]
    redis = args.redis_url or os.environ.get("TEST_REDIS_URL") or os.environ["REDIS_URL"]
    url = await create_database(admin.replace("postgresql://", "postgresql+asyncpg://", 1), "tripsage_live_bench")
    rows = []
    try:
        await asyncio.to_thread(migrate, url)
        env = worker_env(url, redis) | {"RATE_LIMIT_COMMANDS_PER_MINUTE": "0", "RATE_LIMIT_QUERIES_PER_MINUTE": "0"}
        port = free_port()
        api = subprocess.Popen(  # noqa: S603  # our own console script
            [str(Path(sys.executable).parent / "tripsage"), "serve", "--port", str(port)], cwd=ROOT, env=env
        )
        worker = start_worker(env)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                for _ in range(600):  # up to a minute: imports alone take seconds on a loaded box
                    try:
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
            rows.extend([await measure(args, port, api.pid, env["SUPABASE_JWT_SECRET"], n) for n in args.subscribers])
        finally:
            api.terminate()
            api.wait(30)
            stop_worker(worker)
    finally:
        await drop_database(admin, url)
    return rows


def main() -> None:
    """Parse the options, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--subscribers", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000])
    parser.add_argument("--rate", type=float, default=200.0, help="PATCH commands per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per subscriber count")
    parser.add_argument("--fanout", type=int, default=5, help="subscribers each change reaches")
    args = parser.parse_args()
    host = machine()
    rows = asyncio.run(run(args))
    print(f"\nLive-updates benchmark — {host}\n")
    print(f"One API process, one worker; each change reaches {args.fanout} subscribers; {args.duration:.0f} s each\n")
    print("| subscribers | cmd/s | p50 ms | p99 ms | hub mean ms | events/s | live reads/s | API CPU | KiB/idle sub |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
