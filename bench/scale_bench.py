"""Scale-out benchmark: projection throughput with 1, 2 and 4 worker processes; reads with 1 and 2 uvicorn workers.

    .venv/bin/python -m bench.scale_bench [--workers 1,2,4] [--backlog 10000] [--rate 100] [--duration 20]
                                          [--api-workers 1,2] [--seconds 10] [--connections 16]

Needs a PostgreSQL it may create a scratch database in (`--database-url`, else `TEST_DATABASE_URL` /
`DATABASE_URL`, else the embedded server under `.tripsage/bench`) and a Redis (`--redis-url`, else
`TEST_REDIS_URL` / `REDIS_URL`, else embedded). Every process is the real one: `tripsage worker` and
`uvicorn tripsage.api.main:app --workers N`, each in its own process, as deploy/compose.yaml runs them.

1. Drain, per worker count: with no worker running, `--backlog` trips (2 itineraries, 6 activities
   each) are written while an older open transaction holds the claim horizon; the workers start and
   register; ending that transaction releases the backlog at once, and drain time runs from then
   until the feed is empty. CPU seconds of the worker
   processes and of the database's PostgreSQL backends during the drain say where the time went.
2. Lag, per worker count: `--rate` mixed commands/s (open loop, 8 clients, each a request
   transaction as its user, then a nudge) for `--duration` s; lag from COMMIT to fully applied
   (bench.projection_lag's watcher).
3. Reads, per uvicorn worker count: wrk (or the httpx fallback) at `--connections` against
   `GET /api/trips/{id}` and `GET /api/trips?limit=20` of a user with 20 trips, rate limits off.
Prints markdown tables; every figure of a table is from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness import backend_cpu, run_httpx, run_wrk, wrk_available
from bench.projection_lag import (
    ROOT,
    SHARE_TARGET,
    Client,
    Watcher,
    bench_servers,
    client_loop,
    machine,
    pct,
    seed_trips,
    seed_users,
    settle,
    stop_servers,
    worker_env,
)
from core.auth import mint_token
from core.db import create_engine
from core.migrate import migrate
from core.nudge import Nudger
from core.scratch import create_database, drop_database

_TICK = os.sysconf("SC_CLK_TCK")
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by the processes `pids` and their children that have ended."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / _TICK
    return total


def start_workers(env: dict[str, str], count: int) -> list[subprocess.Popen[bytes]]:
    """`count` real `tripsage worker` processes."""
    return [
        subprocess.Popen([str(BIN / "tripsage"), "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)  # noqa: S603
        for _ in range(count)
    ]


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process and wait for it."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(60)


async def wait_heartbeats(engine: AsyncEngine, count: int, timeout: float = 60.0) -> None:
    """Until `count` workers have written their heartbeat row (their projection loops run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            if await conn.scalar(text("SELECT count(*) FROM tripsage.worker_heartbeats")) >= count:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("the workers did not start")


async def drain(engine: AsyncEngine, env: dict[str, str], dbname: str, workers: int, backlog: int) -> dict[str, float]:
    """Time for `workers` running processes to drain a backlog released at once, and where the CPU went.

    A transaction opened before the backlog is written holds the claim horizon below it (the feed
    is claimed only below the oldest running transaction), so the workers start, register and wait
    without claiming; ending that transaction releases the whole backlog at one instant.
    """
    owner = (await seed_users(engine, 1, f"Bulk{workers} "))[0]
    async with engine.connect() as blocker:
        await blocker.execute(text("SELECT pg_current_xact_id()"))  # an xid older than the backlog's
        await seed_trips(engine, [owner], backlog)
        procs = start_workers(env, workers)
        try:
            await wait_heartbeats(engine, workers)
            worker_cpu0, db_cpu0 = process_cpu([p.pid for p in procs]), backend_cpu(dbname)
            await blocker.rollback()
            started = time.perf_counter()
            nudger = Nudger(env["REDIS_URL"])
            await nudger.nudge()
            await nudger.close()
            await settle(engine, timeout=900)
            seconds = time.perf_counter() - started
            worker_cpu = process_cpu([p.pid for p in procs]) - worker_cpu0
            db_cpu = backend_cpu(dbname) - db_cpu0
        finally:
            stop_all(procs)
    return {"rate": backlog / seconds, "seconds": seconds, "worker_cpu": worker_cpu, "db_cpu": db_cpu}


async def lag(
    engine: AsyncEngine, env: dict[str, str], url: str, workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Lag percentiles at a fixed command rate with `workers` processes."""
    owners = await seed_users(engine, 8, f"Lag{workers} ")
    clients = {o: Client(o) for o in owners}
    for row in await seed_trips(engine, owners, 10):
        c = clients[row.owner_id]
        c.trips.append(row.id)
        c.itineraries[row.id] = list(row.its)
        c.activities[row.id] = list(row.acts)
    procs = start_workers(env, workers)
    try:
        await settle(engine)
        watcher = Watcher(url)
        watch = asyncio.create_task(watcher.run())
        nudger = Nudger(env["REDIS_URL"])
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        until = started + args.duration
        sent = await asyncio.gather(
            *(
                client_loop(engine, nudger, c, watcher, args.rate / len(clients), until, i)
                for i, c in enumerate(clients.values())
            )
        )
        elapsed = time.perf_counter() - started
        watcher.stop = True
        await asyncio.wait_for(watch, 120)
        await nudger.close()
    finally:
        stop_all(procs)
    lags = list(watcher.lags.values())
    return {"achieved": sum(sent) / elapsed, "p50": pct(lags, 0.5), "p99": pct(lags, 0.99), "max": pct(lags, 1.0)}


async def reads(
    engine: AsyncEngine, env: dict[str, str], api_workers: int, args: argparse.Namespace
) -> list[tuple[str, Any]]:
    """Read throughput of `uvicorn tripsage.api.main:app --workers api_workers` for one user's trips."""
    user = (await seed_users(engine, 1, f"Reader{api_workers} "))[0]
    trips = await seed_trips(engine, [user], 20)
    procs = start_workers(env, 1)
    await settle(engine)
    stop_all(procs)
    token = mint_token(secret=env["SUPABASE_JWT_SECRET"], email=f"reader{api_workers}@example.com", sub=user)
    port = free_port()
    api = subprocess.Popen(  # noqa: S603  # the image's command (Dockerfile CMD)
        [
            str(BIN / "uvicorn"),
            "tripsage.api.main:app",
            "--port",
            str(port),
            "--workers",
            str(api_workers),
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env | {"RATE_LIMIT_QUERIES_PER_MINUTE": "0", "RATE_LIMIT_COMMANDS_PER_MINUTE": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base)
        rows = []
        for name, path in (("one trip", f"/api/trips/{trips[0].id}"), ("list of 20", "/api/trips?limit=20")):
            if wrk_available():
                result = await asyncio.to_thread(
                    run_wrk, base + path, token, connections=args.connections, seconds=args.seconds
                )
            else:
                result = await run_httpx(base + path, token, connections=args.connections, seconds=args.seconds)
            rows.append((name, result))
        return rows
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(60)


async def wait_ready(base: str) -> None:
    """Until the API answers /readyz with 200 (at most 60 s)."""
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(base + "/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the API did not become ready")


async def run(args: argparse.Namespace) -> list[str]:
    """Set up a scratch database, run the three parts, return the report's lines."""
    admin, redis_url, handles = bench_servers(args)
    url = await create_database(admin, "tripsage_scale")
    dbname = str(make_url(url).database)
    lines: list[str] = []
    try:
        await asyncio.to_thread(migrate, url)
        engine = create_engine(url, pool_size=12)
        env = worker_env(url, redis_url)
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO profiles (id, display_name) VALUES (:id, 'Share target')"), {"id": SHARE_TARGET}
            )
            await conn.execute(text("INSERT INTO user_preferences (user_id) VALUES (:id)"), {"id": SHARE_TARGET})
        lines += [
            "| worker processes | drain (trip refreshes/s) | vs 1 | worker CPU s | PostgreSQL CPU s | lag p50 / p99 / max ms at rate | commands/s achieved |",
            "|---:|---:|---:|---:|---:|---|---:|",
        ]
        base_rate = float("nan")
        for workers in args.workers:
            d = await drain(engine, env, dbname, workers, args.backlog)
            lg = await lag(engine, env, url, workers, args)
            base_rate = d["rate"] if workers == args.workers[0] else base_rate
            lines.append(
                f"| {workers} | {d['rate']:,.0f} ({d['seconds']:.1f} s) | {d['rate'] / base_rate:.2f}× | {d['worker_cpu']:.1f} |"
                f" {d['db_cpu']:.1f} | {lg['p50']:.0f} / {lg['p99']:.0f} / {lg['max']:.0f} | {lg['achieved']:.0f} |"
            )
        lines += [
            "",
            "| uvicorn workers | endpoint | req/s | p50 ms | p99 ms | non-2xx | vs 1 worker |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        first: dict[str, float] = {}
        for api_workers in args.api_workers:
            for name, result in await reads(engine, env, api_workers, args):
                first.setdefault(name, result.rps)
                lines.append(
                    f"| {api_workers} | {name} | {result.rps:,.0f} | {result.p50_ms:.1f} | {result.p99_ms:.1f} |"
                    f" {result.errors} | {result.rps / first[name]:.2f}× |"
                )
        await engine.dispose()
    finally:
        await drop_database(admin, url)
        stop_servers(handles)
    return lines


def counts(value: str) -> list[int]:
    """`1,2,4` → [1, 2, 4]."""
    return [int(v) for v in value.split(",") if v.strip()]


def main() -> None:
    """Parse the options, run, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--workers", type=counts, default=[1, 2, 4], help="worker process counts")
    parser.add_argument("--backlog", type=int, default=10_000, help="trips written in bulk for each drain")
    parser.add_argument("--rate", type=float, default=100.0, help="commands per second for the lag part")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of command load")
    parser.add_argument("--api-workers", type=counts, default=[1, 2], help="uvicorn worker counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of read load per endpoint")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    host = machine()
    started = time.perf_counter()
    lines = asyncio.run(run(args))
    print(f"\nScale-out benchmark — {host}; {time.perf_counter() - started:.0f} s")
    print(
        f"Drain: {args.backlog} trips × 9 feed rows per worker count; lag: {args.rate:.0f} cmd/s for {args.duration:.0f} s, 8 clients;"
    )
    print(
        f"reads: {'wrk' if wrk_available() else 'httpx'}, {args.connections} connections, {args.seconds:.0f} s per endpoint\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
