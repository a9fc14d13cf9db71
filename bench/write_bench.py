"""Write-path benchmark: the commands against the original plan's ORM path (with and without auth) and one Core statement.

Three commands, `POST /api/trips`, `POST /api/trips/{id}/itineraries/{id}/activities` and
`PATCH /api/trips/{id}`, each against the anchors of `bench/write_baselines.py`, all in one app
and one run: (o) the ORM path with the same auth and RLS, (o0) the ORM path without either, (k0) one
Core `INSERT/UPDATE … RETURNING` without either. Every request has a unique body (a wrk Lua script
numbers them; PATCHes and activities spread over `--targets` trips so concurrent requests do not
queue on one trip's lock). Measures, per variant: statements and PostgreSQL round trips per request
and Redis round trips per request (counting proxies, in-process; a background nudge counts too),
and over HTTP
(uvicorn, one worker, wrk at 16 connections) req/s, p50 and p99. Prints markdown. Never a test.

    uv run python -m bench.write_bench [--seconds 8] [--url postgresql://postgres@127.0.0.1:5432/tripsage_bench_write]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from bench import write_baselines
from bench.harness import (
    BENCH_VARIABLES,
    CpuSplit,
    LoadResult,
    RoundTripProxy,
    StatementCounter,
    asgi_request,
    counting_proxy,
    run_wrk,
    set_variables,
    uvicorn_command,
)
from bench.read_bench import _wait_ready, bench_settings, cpu_idle
from bench.report import pool_sentence
from bench.seed import MEASURED_EMAIL, MEASURED_USER, asyncpg_dsn, ensure_database
from core.auth import mint_token
from core.settings import Settings, normalize_database_url
from tripsage.app import create_app

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/tripsage_bench_write"
BODIES = {
    "create": '{"title":"bench %s-%d","destination":"Lisbon","start_date":"2026-06-01","end_date":"2026-06-05"}',
    "activity": '{"title":"act %s-%d","price":"12.50","item_type":"meal"}',
    "patch": '{"title":"patched %s-%d"}',
}
METHODS = {"create": "POST", "activity": "POST", "patch": "PATCH"}
TITLES = {
    "create": "POST /api/trips",
    "activity": "POST /api/trips/{id}/itineraries/{id}/activities",
    "patch": "PATCH /api/trips/{id}",
}
VARIANTS = {
    "d": "**this service (auth + RLS + feed)**",
    "o": "(o) ORM add/get + commit + refresh + pydantic, auth + RLS",
    "o0": "(o0) the same ORM path, no auth, no RLS",
    "k0": "(k0) one Core `INSERT/UPDATE … RETURNING`, no auth, no RLS",
}
PREFIX = {"d": "/api", "o": "/bench/w/orm", "o0": "/bench/w/orm0", "k0": "/bench/w/core0"}


@dataclass
class Row:
    """What was measured for one variant of one command."""

    http: LoadResult | None = None
    cpu: CpuSplit | None = None
    statements: float = math.nan
    round_trips: float = math.nan
    redis: float = math.nan


@dataclass
class Run:
    """The run's results and the targets it wrote to."""

    targets: list[tuple[uuid.UUID, uuid.UUID]]
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    pool: tuple[int, int] = (0, 0)
    """`DB_POOL_SIZE`, `DB_POOL_OVERFLOW` as the bench app resolved them (every variant shares its engines)."""

    def row(self, command: str, variant: str) -> Row:
        """The row of one variant (created on first use)."""
        return self.rows.setdefault((command, variant), Row())


def paths(command: str, variant: str, targets: list[tuple[uuid.UUID, uuid.UUID]]) -> list[str]:
    """The request paths one variant cycles through for a command."""
    base = PREFIX[variant]
    if command == "create":
        return [f"{base}/trips"]
    if command == "patch":
        return [f"{base}/trips/{trip}" for trip, _ in targets]
    return [f"{base}/trips/{trip}/itineraries/{itinerary}/activities" for trip, itinerary in targets]


def lua_script(method: str, paths_: list[str], body: str, run_id: str) -> str:
    """A wrk script: every request numbered, its body unique, its path the next of `paths_`."""
    listed = ",".join(f'"{p}"' for p in paths_)
    return f"""
local paths = {{{listed}}}
local n = 0
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, paths[(n % #paths) + 1], nil, string.format('{body}', "{run_id}", n))
end
"""


async def make_targets(url: str, count: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The measured user's profile, and `count` fresh trips with one itinerary each (as the login role)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(
            "INSERT INTO profiles (id, email, display_name) VALUES ($1, $2, 'Measured') ON CONFLICT DO NOTHING",
            MEASURED_USER,
            MEASURED_EMAIL,
        )
        await conn.execute("INSERT INTO user_preferences (user_id) VALUES ($1) ON CONFLICT DO NOTHING", MEASURED_USER)
        rows = await conn.fetch(
            """
            WITH t AS (
              INSERT INTO trips (owner_id, title, destination, start_date, end_date)
              SELECT $1, 'target ' || g, 'Porto', DATE '2026-06-01', DATE '2026-06-05' FROM generate_series(1, $2) g
              RETURNING id
            )
            INSERT INTO itineraries (trip_id, title, position) SELECT id, 'day', 0 FROM t RETURNING trip_id, id
            """,
            MEASURED_USER,
            count,
        )
    finally:
        await conn.close()
    return [(row["trip_id"], row["id"]) for row in rows]


def build_app(settings: Settings) -> FastAPI:
    """The production app plus the bench-only write anchors (matched first)."""
    app = create_app(settings)
    ours = len(app.router.routes)
    app.include_router(write_baselines.router)
    app.router.routes[:] = app.router.routes[ours:] + app.router.routes[:ours]
    write_baselines.Anchor.user_id = MEASURED_USER
    return app


def write_settings(url: str, secret: str) -> Settings:
    """The bench app's settings: the command budget so high it never refuses (the Redis check still runs)."""
    return bench_settings(url, secret).model_copy(update={"rate_limit_commands_per_minute": 1_000_000})


async def count_per_request(url: str, secret: str, token: str, run: Run, n: int = 5) -> None:
    """Statements, PostgreSQL and Redis round trips per request (counting proxies), in-process, for every variant."""
    proxy, through = await counting_proxy(url)
    settings = write_settings(through, secret)
    assert settings.redis_url is not None
    redis_target = make_url(settings.redis_url)
    redis_proxy = RoundTripProxy(redis_target.host or "127.0.0.1", redis_target.port or 6379)
    await redis_proxy.start()
    redis_url = redis_target.set(host="127.0.0.1", port=redis_proxy.port).render_as_string(False)
    app = build_app(settings.model_copy(update={"redis_url": redis_url}))
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with app.router.lifespan_context(app):
            counter = StatementCounter(app.state.ctx.db.engine)
            for command, body in BODIES.items():
                for variant in VARIANTS:
                    urls = paths(command, variant, run.targets)
                    for i in range(n + 1):
                        if i == 1:  # the first request warmed the pool, the statement cache, provisioning
                            await asyncio.sleep(0.3)  # a nudge sent in the background settles
                            counter.take(), proxy.take(), redis_proxy.take()
                        payload = (body % (f"count-{uuid.uuid4().hex[:6]}", i)).encode()
                        status, answer = await asgi_request(
                            app, METHODS[command], urls[i % len(urls)], headers, payload
                        )
                        if status >= 300:
                            raise RuntimeError(f"{command} ({variant}) answered {status}: {answer[:300]!r}")
                    await asyncio.sleep(0.3)
                    row = run.row(command, variant)
                    row.statements, row.round_trips = counter.take() / n, proxy.take() / n
                    row.redis = redis_proxy.take() / n
    finally:
        await redis_proxy.close()
        await proxy.close()


def http_app() -> FastAPI:
    """The uvicorn factory of the HTTP run (configured by the parent process through the environment)."""
    return build_app(write_settings(os.environ["BENCH_URL"], os.environ["BENCH_SECRET"]))


def run_http(url: str, secret: str, token: str, run: Run, seconds: float, connections: int) -> None:
    """Uvicorn (one worker) + wrk with a Lua script per variant."""
    port = 19000 + os.getpid() % 1000
    env = os.environ | {"BENCH_URL": url, "BENCH_SECRET": secret}
    command = uvicorn_command("bench.write_bench:http_app", port)
    server = subprocess.Popen(command, env=env)  # noqa: S603  # pylint: disable=consider-using-with  # stopped in `finally`
    base = f"http://127.0.0.1:{port}"
    run_id = uuid.uuid4().hex[:8]
    dbname = str(make_url(normalize_database_url(url)).database)
    try:
        _wait_ready(base)
        with tempfile.TemporaryDirectory() as tmp:
            for command_name, body in BODIES.items():
                for variant in VARIANTS:
                    script = os.path.join(tmp, f"{command_name}-{variant}.lua")
                    with open(script, "w", encoding="utf-8") as out:
                        out.write(
                            lua_script(METHODS[command_name], paths(command_name, variant, run.targets), body, run_id)
                        )
                    run_wrk(base + "/healthz", token, connections=connections, seconds=1, script=script)  # warm
                    time.sleep(0.5)
                    before = CpuSplit.sample(server.pid, dbname)
                    result = run_wrk(base + "/healthz", token, connections=connections, seconds=seconds, script=script)
                    row = run.row(command_name, variant)
                    row.http, row.cpu = (
                        result,
                        CpuSplit.between(before, CpuSplit.sample(server.pid, dbname), result.requests),
                    )
                    time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _ratio(ours: float, other: float) -> str:
    return "–" if math.isnan(ours) or math.isnan(other) or other == 0 else f"{ours / other:.2f}×"


def render(run: Run, *, command: str, idle: tuple[float, float], seconds: float, connections: int) -> str:
    """The run as markdown: one table per command, ratios of this service's req/s over each row's."""
    busy = "QUIET" if min(idle) > 0.85 else "BUSY (other work on the CPU)"
    out = [
        "## Write benchmark",
        "",
        f"`{command}`  ",
        f"{os.cpu_count()} CPUs; CPU idle before/after: {idle[0]:.0%} / {idle[1]:.0%} → box {busy}; run took "
        f"{seconds:.0f} s. Uvicorn, one worker; wrk -t1 -c{connections}, unique bodies. The commands' rate limit"
        " check (one Redis script call) runs with a budget that never refuses. CPU ms/req: the uvicorn process,"
        " the benchmark database's PostgreSQL backends, and the whole box (every core: wrk, Redis, the kernel too)."
        + pool_sentence(run.pool),
    ]
    for name in BODIES:
        out += [
            "",
            f"### `{TITLES[name]}`",
            "",
            "| variant | statements/req | PG round trips/req | Redis round trips/req | req/s | p50 ms | p99 ms | errors"
            " | CPU ms/req: API / PG / box | ours ÷ it (req/s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        ours = run.row(name, "d").http
        for variant, label in VARIANTS.items():
            row = run.row(name, variant)
            h = row.http
            cells = [
                label,
                f"{row.statements:g}",
                f"{row.round_trips:g}",
                f"{row.redis:g}",
                f"{h.rps:,.0f}" if h else "–",
                f"{h.p50_ms:.1f}" if h else "–",
                f"{h.p99_ms:.1f}" if h else "–",
                str(h.errors) if h else "–",
                f"{row.cpu.api_ms:.2f} / {row.cpu.db_ms:.2f} / {row.cpu.box_ms:.2f}" if row.cpu else "–",
                "—" if variant == "d" else _ratio(ours.rps if ours else math.nan, h.rps if h else math.nan),
            ]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


async def prepare(url: str, targets: int) -> tuple[str, str, Run]:
    """Create and migrate the database, make the targets, mint the measured user's token."""
    await ensure_database(url)
    run = Run(await make_targets(url, targets))
    secret = base64.urlsafe_b64encode(os.urandom(36)).decode()
    settings = write_settings(url, secret)
    run.pool = (settings.db_pool_size, settings.db_pool_overflow)
    token = mint_token(secret=secret, email=MEASURED_EMAIL, sub=MEASURED_USER, ttl=6 * 3600)
    return secret, token, run


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("BENCH_WRITE_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk duration per variant")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--targets", type=int, default=400, help="trips the PATCHes and activities spread over")
    parser.add_argument("--no-http", action="store_true", help="only count statements and round trips")
    args = parser.parse_args()
    started = time.monotonic()
    idle = cpu_idle()
    secret, token, run = asyncio.run(prepare(args.url, args.targets))
    asyncio.run(count_per_request(args.url, secret, token, run))
    if not args.no_http:
        run_http(args.url, secret, token, run, args.seconds, args.connections)
    idle_after = cpu_idle()
    command = set_variables(BENCH_VARIABLES) + "uv run python -m bench.write_bench " + " ".join(sys.argv[1:])
    print(render(run, command=command, idle=(idle, idle_after), seconds=time.monotonic() - started,
                 connections=args.connections))  # fmt: skip


if __name__ == "__main__":
    main()
