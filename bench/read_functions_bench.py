"""What the database boundary (migration 0007) costs a trip read: its read function against 0006's.

0007's `tripsage.trip_view_get` switches to `tripsage_api`, sets the claims in both forms and derives
the user from them; 0006's took the user id as a parameter and set two settings. Both are called the
way `queries.plumbing.call_as` calls them (one statement on the driver), in interleaved rounds on
the same scratch database and the same documents, next to the bare statement without RLS.

    uv run python -m bench.read_functions_bench [--n 2000] [--rounds 5]

Uses `DATABASE_URL`'s server (a scratch database is created and dropped), else embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import orjson

from core.migrate import ROOT, migrate
from core.scratch import create_database, driver_dsn, drop_database
from core.settings import Settings

OLD_NAME = "bench_trip_view_get_0006"
NEW_CALL = "SELECT etag, doc FROM tripsage.trip_view_get($1, $2, $3)"
OLD_CALL = f"SELECT etag, doc FROM tripsage.{OLD_NAME}($1, $2, $3, $4)"
BARE = (
    "SELECT etag, CASE WHEN etag = ANY($1::text[]) THEN NULL ELSE doc END FROM trip_views"
    " WHERE trip_id = $2 AND $3::uuid = ANY(member_ids)"
)
SEED = """
INSERT INTO trip_views (trip_id, owner_id, member_ids, status, search_text, updated_at, version, etag, doc)
SELECT gen_random_uuid(), $1, ARRAY[$1]::uuid[], 'planning', 'x', now(), 1, '"1-x"', convert_to(repeat('x', 17000), 'UTF8')
FROM generate_series(1, 200)
"""


def _old_function_sql() -> str:
    spec = importlib.util.spec_from_file_location("_rev0006", ROOT / "migrations/versions/0006_read_functions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sql = str(module.READ_FUNCTIONS)
    get = sql[: sql.index("-- A page of the trips")]
    return get.replace("tripsage.trip_view_get(", f"tripsage.{OLD_NAME}(").replace("'authenticated'", "'tripsage_api'")


async def _time(call: Callable[[], Awaitable[object]], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - started) / n * 1e6


async def run(url: str, n: int, rounds: int) -> None:
    """Create a scratch database, seed it, time the three forms in interleaved rounds, print a table."""
    scratch = await create_database(url, "tripsage_bench")
    try:
        await asyncio.to_thread(migrate, scratch)
        conn = await asyncpg.connect(driver_dsn(scratch))
        try:
            user = uuid.uuid4()
            await conn.execute(SEED, user)
            await conn.execute(_old_function_sql())
            trip = await conn.fetchval("SELECT trip_id FROM trip_views LIMIT 1")
            claims = orjson.dumps({"sub": str(user), "role": "authenticated", "aud": "authenticated"}).decode()
            forms: dict[str, Callable[[], Awaitable[list[asyncpg.Record]]]] = {
                "0007 read function (tripsage_api, both claim forms)": lambda: conn.fetch(NEW_CALL, claims, trip, []),
                "0006 read function (user id parameter)": lambda: conn.fetch(OLD_CALL, claims, user, trip, []),
                "bare statement, no RLS (reference)": lambda: conn.fetch(BARE, [], trip, user),
            }
            assert all([len(await f()) == 1 for f in forms.values()])
            times: dict[str, list[float]] = {name: [] for name in forms}
            for _ in range(rounds):
                for name, form in forms.items():
                    times[name].append(await _time(form, n))
        finally:
            await conn.close()
    finally:
        await drop_database(url, scratch)
    old = statistics.median(times["0006 read function (user id parameter)"])
    print(f"| form (n={n} sequential calls × {rounds} interleaved rounds) | median µs per call | ÷ 0006 |")  # noqa: T201
    print("|---|---:|---:|")  # noqa: T201
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} ({min(values):.0f}–{max(values):.0f}) | {median / old:.2f}× |")  # noqa: T201


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url = Settings().database_url
    handle = None
    if url is None:
        from core.embedded import start_postgres  # pylint: disable=import-outside-toplevel

        url, handle = start_postgres(Path(ROOT) / ".tripsage" / "bench")
    try:
        asyncio.run(run(url, args.n, args.rounds))
    finally:
        if handle is not None:
            handle.cleanup()


if __name__ == "__main__":
    main()
