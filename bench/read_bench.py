"""Read-path benchmark: (a) lazy ORM, (b) selectinload+pydantic, (c) JSON aggregation, (d) the endpoint, (e) floor.

Seeds (or reuses) `tripsage_bench`, checks that (a)-(d) return the same JSON content, then measures
the 50-trip list and a single trip in-process (direct ASGI calls, sequential) and over HTTP
(uvicorn, one worker, wrk at 16 connections; an asyncio httpx load generator if wrk is missing:
`apt-get install -y wrk`). Statements per request are counted on the server
(`before_cursor_execute`), round trips by a counting TCP proxy in front of PostgreSQL. Prints
markdown. Never a test; bounded to a few minutes (`--quick` for a smoke run).

    uv run python -m bench.read_bench [--quick] [--url postgresql://postgres@127.0.0.1:5432/tripsage_bench]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Receive, Scope, Send

from bench import baselines, baselines_noauth
from bench.harness import (
    BENCH_VARIABLES,
    CpuSplit,
    StatementCounter,
    asgi_get,
    counting_proxy,
    cpu_times,
    run_httpx,
    run_wrk,
    set_variables,
    time_inprocess,
    uvicorn_command,
    wrk_available,
)
from bench.plumbing_bench import measure_plumbing
from bench.report import VARIANTS, Report, Row, render
from bench.seed import DEFAULT_URL, MEASURED_EMAIL, MEASURED_USER, SeedPlan, seed
from core.auth import mint_token
from core.settings import Settings
from tripsage.app import create_app

COMPARED = ("a", "b", "c", "d", "a0", "b0", "c0")
LIST_LIMIT = 50


def paths(kind: str, trip_id: str) -> dict[str, str]:
    """Each variant's URL path for the list (`list`) or one trip (`one`)."""
    if kind == "list":
        return {v: f"/bench/{v}/trips?limit={LIST_LIMIT}" for v in VARIANTS} | {"d": f"/api/trips?limit={LIST_LIMIT}"}
    return {v: f"/bench/{v}/trips/{trip_id}" for v in VARIANTS} | {"d": f"/api/trips/{trip_id}"}


def bench_settings(url: str, secret: str) -> Settings:
    """Settings of the bench app (Redis is configured but never contacted by read paths)."""
    return Settings(
        database_url=url,
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"),
        supabase_jwt_secret=secret,
        tripsage_encryption_keys=base64.urlsafe_b64encode(b"k" * 32).decode(),
        log_level="WARNING",
        log_format="text",
    )


class RequestCounter:
    """Counts HTTP requests (a pure ASGI wrapper: no per-request cost worth measuring)."""

    count = 0
    in_flight = 0

    def __init__(self, app: ASGIApp) -> None:
        """Wrap an app."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count, then pass through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        RequestCounter.count += 1
        RequestCounter.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            RequestCounter.in_flight -= 1


def build_app(settings: Settings, *, count: bool = False) -> FastAPI:
    """The production app plus the bench-only baseline routes (and a statement counter when asked)."""
    app = create_app(settings)
    ours = len(app.router.routes)
    app.include_router(baselines.router)
    app.include_router(baselines_noauth.router)
    baselines_noauth.NoAuth.user_id = MEASURED_USER
    # Bench routes first: they must not pay for matching past the production routes that (d) passes.
    # (FastAPI adds one entry per included router, not one per route: move what was added.)
    app.router.routes[:] = app.router.routes[ours:] + app.router.routes[:ours]
    if count:
        original = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
            async with original(a) as state:
                a.state.counter = StatementCounter(a.state.ctx.db.read_engine)
                yield state

        app.router.lifespan_context = lifespan

        app.add_middleware(RequestCounter)

        @app.get("/bench/stats", include_in_schema=False)
        async def stats(reset: bool = True) -> dict[str, int]:
            # this request itself is not counted
            counts = {"requests": RequestCounter.count - 1, "in_flight": RequestCounter.in_flight - 1}
            if reset:
                RequestCounter.count = 0
                counts["statements"] = app.state.counter.take()
            return counts

    return app


def http_app() -> FastAPI:
    """The uvicorn factory of the HTTP run (configured by the parent process through the environment)."""
    baselines.Floor.list_body = floor_body(int(os.environ["BENCH_FLOOR_LIST"]))  # e, e0 and f0
    baselines.Floor.one_body = floor_body(int(os.environ["BENCH_FLOOR_ONE"]))
    return build_app(bench_settings(os.environ["BENCH_URL"], os.environ["BENCH_SECRET"]), count=True)


def floor_body(size: int) -> bytes:
    """A constant JSON body of exactly `size` bytes."""
    return b'{"x":"' + b"a" * max(0, size - 8) + b'"}'


async def check_same_content(app: FastAPI, headers: dict[str, str], trip_id: str, report: Report) -> None:
    """(a)-(d) must return the same JSON content (parsed), for the list and for one trip."""
    for kind in ("list", "one"):
        urls = paths(kind, trip_id)
        parsed: dict[str, Any] = {}
        for variant in COMPARED:
            status, body = await asgi_get(app, urls[variant], headers)
            if status != 200:
                raise RuntimeError(f"{urls[variant]} answered {status}: {body[:300]!r}")
            parsed[variant] = orjson.loads(body)
            report.row(kind, variant).size = len(body)
        for variant in COMPARED:
            if parsed[variant] != parsed["d"]:
                raise RuntimeError(
                    f"({variant}) and (d) differ for {kind}: {first_difference(parsed[variant], parsed['d'])}"
                )
    report.notes.append(
        "(a), (b), (c), (a0), (b0), (c0) and (d) returned the same JSON content (parsed and compared) for both paths."
    )


def first_difference(left: Any, right: Any, where: str = "$") -> str:
    """Where two JSON values first differ (for the error message)."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            if left.get(key) != right.get(key):
                return first_difference(left.get(key), right.get(key), f"{where}.{key}")
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for i, (x, y) in enumerate(zip(left, right, strict=True)):
            if x != y:
                return first_difference(x, y, f"{where}[{i}]")
    return f"{where}: {str(left)[:120]} != {str(right)[:120]}"


async def count_per_request(url: str, secret: str, headers: dict[str, str], trip_id: str, report: Report) -> None:
    """Statements (server-side counter) and round trips (counting proxy) per request, for every variant."""
    proxy, through = await counting_proxy(url)
    app = build_app(bench_settings(through, secret), count=True)
    try:
        async with app.router.lifespan_context(app):
            for kind in ("list", "one"):
                for variant, path in paths(kind, trip_id).items():
                    await asgi_get(app, path, headers)  # warm: pool, prepared statements, provisioning
                    await asyncio.sleep(0)  # asyncpg calls its query loggers with call_soon
                    app.state.counter.take()
                    proxy.take()
                    n = 3
                    for _ in range(n):
                        await asgi_get(app, path, headers)
                    await asyncio.sleep(0)  # asyncpg calls its query loggers with call_soon
                    row = report.row(kind, variant)
                    row.statements, row.round_trips = app.state.counter.take() / n, proxy.take() / n
    finally:
        await proxy.close()


async def run_inprocess(
    app: FastAPI, headers: dict[str, str], trip_id: str, report: Report, quick: bool, dbname: str
) -> None:
    """Sequential in-process requests per variant (bounded in count and time), with their CPU cost."""
    n, limit_s = (200, 2.0) if quick else (3000, 6.0)
    for kind in ("list", "one"):
        for variant, path in paths(kind, trip_id).items():
            await time_inprocess(app, path, headers, n=3, max_seconds=5)
            report.row(kind, variant).inproc = await time_inprocess(
                app, path, headers, n=n, max_seconds=limit_s, dbname=dbname
            )


def run_http(url: str, secret: str, token: str, trip_id: str, report: Report, quick: bool, connections: int) -> None:
    """Uvicorn (one worker) + wrk (or the httpx fallback) per variant."""
    port = 18000 + os.getpid() % 1000
    env = os.environ | {
        "BENCH_URL": url,
        "BENCH_SECRET": secret,
        "BENCH_FLOOR_LIST": str(report.row("list", "d").size),
        "BENCH_FLOOR_ONE": str(report.row("one", "d").size),
    }
    command = uvicorn_command("bench.read_bench:http_app", port)
    server = subprocess.Popen(command, env=env)  # noqa: S603  # pylint: disable=consider-using-with  # stopped in `finally`
    base = f"http://127.0.0.1:{port}"
    dbname = make_url(url).database or ""
    seconds = 2.0 if quick else 8.0
    if not wrk_available():
        report.notes.append(
            "wrk not found (`apt-get install -y wrk`): HTTP load came from the asyncio httpx generator."
        )
    try:
        _wait_ready(base)
        auth = {"Authorization": f"Bearer {token}"}
        for kind in ("list", "one"):
            for variant, path in paths(kind, trip_id).items():
                _wait_idle(base)
                httpx.get(base + path, headers=auth, timeout=60).raise_for_status()
                httpx.get(base + "/bench/stats", timeout=10)
                window = http_window(report.row(kind, variant), seconds, connections)
                before = CpuSplit.sample(server.pid, dbname)
                if wrk_available():
                    result = run_wrk(base + path, token, connections=connections, seconds=window)
                else:
                    result = asyncio.run(run_httpx(base + path, token, connections=connections, seconds=window))
                _wait_idle(base)  # requests wrk left in flight finish (and are counted) before the next run
                after = CpuSplit.sample(server.pid, dbname)
                served = httpx.get(base + "/bench/stats", timeout=10).json()
                row = report.row(kind, variant)
                row.http, row.http_cpu = result, CpuSplit.between(before, after, served["requests"])
                if result.errors:
                    report.notes.append(f"{kind} ({variant}): {result.errors} error responses under load")
                if served["requests"]:
                    row.http_statements = round(served["statements"] / served["requests"], 2)
    finally:
        server.terminate()
        server.wait(timeout=30)


def http_window(row: Row, seconds: float, connections: int, cap: float = 30.0) -> float:
    """Long enough for every connection to finish about three requests (slow baselines), within a cap."""
    rps = row.inproc.rps if row.inproc else 0.0
    needed = 3 * connections / rps if rps > 0 else cap
    return min(cap, max(seconds, needed))


def _wait_idle(base: str, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while httpx.get(base + "/bench/stats", params={"reset": "false"}, timeout=10).json()["in_flight"] > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the bench server did not drain its requests")
        time.sleep(0.2)


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the bench server did not start")


def cpu_idle(seconds: float = 1.0) -> float:
    """Share of CPU time idle over a short sample (to tell a busy box in the output)."""

    def sample() -> tuple[int, int]:
        values = cpu_times()
        return values[3] + values[4], sum(values)

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


async def prepare(args: argparse.Namespace, report: Report) -> tuple[str, str, str]:
    """Seed, mint the measured user's token, check content, count statements and round trips, time in-process."""
    plan = SeedPlan(users=20 if args.quick else args.users)
    info = await seed(args.url, plan, reseed=args.reseed)
    if not info.reused:
        report.notes.append(
            f"seed: COPY load {info.seconds_load:.1f}s, read model build {info.seconds_read_model:.1f}s"
        )
    secret = base64.urlsafe_b64encode(os.urandom(36)).decode()
    token = mint_token(secret=secret, email=MEASURED_EMAIL, sub=MEASURED_USER, ttl=6 * 3600)
    headers = {"Authorization": f"Bearer {token}"}
    trip_id = str(info.single_trip)
    settings = bench_settings(args.url, secret)
    report.read_cache_mb = settings.read_cache_mb
    report.pool = (settings.db_pool_size, settings.db_pool_overflow)
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        await check_same_content(app, headers, trip_id, report)
        baselines.Floor.list_body = floor_body(report.row("list", "d").size)
        baselines.Floor.one_body = floor_body(report.row("one", "d").size)
        await run_inprocess(app, headers, trip_id, report, args.quick, make_url(args.url).database or "")
    await count_per_request(args.url, secret, headers, trip_id, report)
    report.plumbing = await measure_plumbing(args.url, token, secret, trip_id, quick=args.quick)
    return secret, token, trip_id


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help=f"benchmark database (default {DEFAULT_URL}; with --quick its `_quick` sibling)",
    )
    parser.add_argument("--users", type=int, default=SeedPlan.users)
    parser.add_argument("--quick", action="store_true", help="small dataset, short runs (smoke test)")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--no-http", action="store_true", help="skip the uvicorn + wrk part")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    args.url = args.url or (DEFAULT_URL + "_quick" if args.quick else DEFAULT_URL)
    started = time.monotonic()
    idle = cpu_idle()
    report = Report()
    secret, token, trip_id = asyncio.run(prepare(args, report))
    if not args.no_http:
        run_http(args.url, secret, token, trip_id, report, args.quick, args.connections)
    idle_after = cpu_idle()
    command = set_variables(BENCH_VARIABLES) + "uv run python -m bench.read_bench " + " ".join(sys.argv[1:])
    print(render(report, args, command=command, idle=(idle, idle_after), seconds=time.monotonic() - started))


if __name__ == "__main__":
    main()
