"""Where a list page's CPU goes: the transport to PostgreSQL, and the read function around the statement.

Two parts, both on the read bench's database (seeded by `bench.read_bench`), interleaved rounds so
that a change of the shared box's speed hits every variant alike; medians printed.

1. `GET /api/trips?limit=50` in-process (the production app) with `DATABASE_URL` over loopback TCP
   and over PostgreSQL's Unix socket, each with the process's documents kept (the default) and
   with `READ_CACHE_MB=0`: app CPU and PostgreSQL backend CPU per request.
2. Raw asyncpg, over both transports: PostgreSQL backend CPU and client CPU per call of the page's
   pieces: the 50 documents by id; the page's SELECT as the login role (no function, no RLS);
   `tripsage.trip_view_page` as the measured user naming no document (what the endpoint sends
   when it holds none) and naming every one (when it holds them all: 0014); 0007's call returning
   only `length(doc)` (the function's work without sending the documents).

    uv run python -m bench.list_cost [--socket-dir /var/run/postgresql] [--rounds 5]

Never a test.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg
import uvloop

from bench.harness import asgi_get, backend_cpu, process_cpu
from bench.read_bench import bench_settings, build_app
from bench.seed import MEASURED_EMAIL, MEASURED_USER
from core.auth import mint_token

DBNAME = "tripsage_bench"
PAGE = "/api/trips?limit=50"
NO_CURSOR = "coalesce(NULL::timestamptz, 'infinity'::timestamptz), coalesce(NULL::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)"
PIECES = {
    "50 documents by id (login role)": ("SELECT doc FROM trip_views WHERE trip_id = ANY($1::uuid[])", "ids"),
    "the page's SELECT (login role, no RLS)": (
        "SELECT m.updated_at, m.trip_id, v.doc FROM trip_view_members m JOIN trip_views v ON v.trip_id = m.trip_id"
        " WHERE m.user_id = $1 ORDER BY m.updated_at DESC, m.trip_id DESC LIMIT 51",
        "user",
    ),
    "`trip_view_page`, no document held": (
        f"SELECT updated_at, trip_id, etag, doc FROM tripsage.trip_view_page($1, 51, NULL, NULL, NULL, {NO_CURSOR}, $2)",
        "claims, none held",
    ),
    "`trip_view_page`, every document held": (
        f"SELECT updated_at, trip_id, etag, doc FROM tripsage.trip_view_page($1, 51, NULL, NULL, NULL, {NO_CURSOR}, $2)",
        "claims, all held",
    ),
    "`trip_view_page`, `length(doc)` only": (
        f"SELECT updated_at, trip_id, length(doc) FROM tripsage.trip_view_page($1, 51, NULL, NULL, NULL, {NO_CURSOR})",
        "claims",
    ),
}
"""Label: (statement, which arguments it takes)."""


def urls(socket_dir: str) -> dict[str, str]:
    """The same database over loopback TCP and over the Unix socket."""
    return {
        "TCP 127.0.0.1": f"postgresql://postgres@127.0.0.1:5432/{DBNAME}",
        "Unix socket": f"postgresql://postgres@/{DBNAME}?host={socket_dir}",
    }


async def _measure(call: Callable[[], Awaitable[object]], n: int, pg_cpu: Callable[[], float]) -> tuple[float, float]:
    """Client CPU and PostgreSQL CPU, µs per call, over `n` calls after a short warm-up."""
    for _ in range(10):
        await call()
    cpu0, db0 = time.process_time(), pg_cpu()
    for _ in range(n):
        await call()
    return 1e6 * (time.process_time() - cpu0) / n, 1e6 * (pg_cpu() - db0) / n


def _print(title: str, results: dict[str, list[tuple[float, float]]], client: str) -> None:
    print(f"\n{title}\n\n| variant | {client} CPU µs/req | PostgreSQL CPU µs/req |\n|---|---:|---:|")
    for name, rounds in results.items():
        app = statistics.median(r[0] for r in rounds)
        db = statistics.median(r[1] for r in rounds)
        print(f"| {name} | {app:,.0f} | {db:,.0f} |")


async def endpoint(socket_dir: str, rounds: int) -> None:
    """Part 1: the list endpoint in-process over both transports."""
    secret = base64.urlsafe_b64encode(os.urandom(36)).decode()
    token = mint_token(secret=secret, email=MEASURED_EMAIL, sub=MEASURED_USER, ttl=3600)
    headers = {"Authorization": f"Bearer {token}"}
    apps = {}
    for name, url in urls(socket_dir).items():
        settings = bench_settings(url, secret)
        apps[f"{name}, documents kept"] = build_app(settings)
        apps[f"{name}, `READ_CACHE_MB=0`"] = build_app(settings.model_copy(update={"read_cache_mb": 0}))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in apps}
    lifespans = [app.router.lifespan_context(app) for app in apps.values()]
    for lifespan in lifespans:
        await lifespan.__aenter__()
    try:
        for _ in range(rounds):
            for name, app in apps.items():

                async def get(app: object = app) -> None:
                    status, _ = await asgi_get(app, PAGE, headers)  # type: ignore[arg-type]
                    assert status == 200, status

                results[name].append(await _measure(get, 200, lambda: backend_cpu(DBNAME)))
    finally:
        for lifespan in lifespans:
            await lifespan.__aexit__(None, None, None)
    _print(f"`GET {PAGE}` in-process, {rounds} interleaved rounds × 200 requests", results, "app")


async def pieces(socket_dir: str, rounds: int) -> None:
    """Part 2: the page's pieces on raw asyncpg connections over both transports."""
    connections = {
        "TCP 127.0.0.1": await asyncpg.connect(urls(socket_dir)["TCP 127.0.0.1"]),
        "Unix socket": await asyncpg.connect(host=socket_dir, user="postgres", database=DBNAME),
    }
    claims = json.dumps({"sub": str(MEASURED_USER), "role": "authenticated"})
    ids = [
        row[0]
        for row in await connections["TCP 127.0.0.1"].fetch(
            "SELECT trip_id FROM trip_view_members WHERE user_id = $1 ORDER BY updated_at DESC LIMIT 50", MEASURED_USER
        )
    ]
    held = [
        f"{row[0]}{row[1]}"
        for row in await connections["TCP 127.0.0.1"].fetch(
            "SELECT v.trip_id, v.etag FROM trip_view_members m JOIN trip_views v USING (trip_id)"
            " WHERE m.user_id = $1 ORDER BY m.updated_at DESC, m.trip_id DESC LIMIT 51",
            MEASURED_USER,
        )
    ]
    arguments: dict[str, tuple[object, ...]] = {
        "ids": (ids,),
        "user": (MEASURED_USER,),
        "claims": (claims,),
        "claims, none held": (claims, []),
        "claims, all held": (claims, held),
    }
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        for _ in range(rounds):
            for transport, conn in connections.items():
                backend = functools.partial(process_cpu, conn.get_server_pid())
                for label, (sql, argument) in PIECES.items():

                    async def call(
                        conn: asyncpg.Connection = conn,
                        sql: str = sql,
                        values: tuple[object, ...] = arguments[argument],
                    ) -> None:
                        await conn.fetch(sql, *values)

                    results.setdefault(f"{transport}: {label}", []).append(await _measure(call, 200, backend))
    finally:
        for conn in connections.values():
            await conn.close()
    _print(f"The page's pieces on raw asyncpg, {rounds} interleaved rounds × 200 calls", results, "client")


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket-dir", default="/var/run/postgresql")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    uvloop.run(endpoint(args.socket_dir, args.rounds))  # uvicorn's loop
    uvloop.run(pieces(args.socket_dir, args.rounds))


if __name__ == "__main__":
    main()
