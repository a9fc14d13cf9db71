"""What one command function writes, and what its callers wait for when many run at once.

On the write bench's database (created and migrated if missing), as the measured user over 50 of
its fresh trips: (1) sequential calls of `tripsage.add_activity` (the call `POST …/activities`
makes) and `tripsage.create_trip` (`POST /api/trips`), after a checkpoint and a warm-up, with the
WAL they wrote read back through `pg_walinspect` (PostgreSQL 15+, created in that database): bytes
and records per call by resource manager and record type (B-tree leaf inserts are index entries);
(2) the same calls from N concurrent connections for a few seconds: calls/s, the backends' CPU per
call, and what the active backends were doing (`pg_stat_activity` sampled every 10 ms: `CPU` or
their wait event). Prints markdown. Never a test.

    uv run python -m bench.command_wal [--url postgresql://postgres@127.0.0.1:5432/tripsage_bench_write]
        [--calls 500] [--connections 16] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import orjson

from bench.harness import process_cpu
from bench.seed import MEASURED_EMAIL, MEASURED_USER, asyncpg_dsn, ensure_database
from bench.write_bench import DEFAULT_URL, make_targets

CLAIMS = orjson.dumps(
    {"sub": str(MEASURED_USER), "role": "authenticated", "aud": "authenticated", "email": MEASURED_EMAIL}
).decode()
ADD = (
    "SELECT a.id FROM tripsage.add_activity($1, $2, $3, NULL, 1000000, 1000000, $4, 'meal', NULL, NULL, NULL,"
    " 12.50, NULL, 'planned', NULL, 0) AS a"
)
CREATE = (
    "SELECT t.id FROM tripsage.create_trip($1, $2, NULL, 'Lisbon', DATE '2026-06-01', DATE '2026-06-05', NULL,"
    " 'USD', 1, 'planning', 'leisure', '{}') AS t"
)
Call = Callable[[asyncpg.Connection, int], Awaitable[object]]


def calls(targets: list[tuple[uuid.UUID, uuid.UUID]]) -> dict[str, Call]:
    """The measured calls by name; the i-th call of `add_activity` goes to target i modulo their number."""

    async def add(conn: asyncpg.Connection, i: int) -> object:
        trip, itinerary = targets[i % len(targets)]
        return await conn.fetchval(ADD, CLAIMS, trip, itinerary, f"wal {i}")

    async def create(conn: asyncpg.Connection, i: int) -> object:
        return await conn.fetchval(CREATE, CLAIMS, f"wal {i}")

    return {"add_activity": add, "create_trip": create}


async def wal_per_call(dsn: str, call: Call, count: int) -> tuple[float, list[asyncpg.Record]]:
    """WAL bytes per call, and the record types (per call) of `count` sequential calls."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        await conn.execute("CHECKPOINT")
        for i in range(200):  # the pages touched first after the checkpoint: their full-page images
            await call(conn, i)
        start = await conn.fetchval("SELECT pg_current_wal_lsn()")
        for i in range(count):
            await call(conn, i)
        end = await conn.fetchval("SELECT pg_current_wal_lsn()")
        size = float(await conn.fetchval("SELECT $2::pg_lsn - $1::pg_lsn", start, end))
        records = await conn.fetch(
            'SELECT "resource_manager/record_type" AS kind, count, combined_size, fpi_size'
            " FROM pg_get_wal_stats($1, $2, true) WHERE count > 0 ORDER BY combined_size DESC LIMIT 8",
            start,
            end,
        )
        return size / count, records
    finally:
        await conn.close()


async def concurrent(dsn: str, call: Call, connections: int, seconds: float) -> tuple[float, float, dict[str, int]]:
    """Calls/s, backend CPU ms per call, and samples of what the active backends were doing."""
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    sampler = await asyncpg.connect(dsn)
    pids = [await conn.fetchval("SELECT pg_backend_pid()") for conn in conns]
    states: collections.Counter[str] = collections.Counter()
    done = 0
    stop = time.perf_counter() + seconds

    async def client(k: int, conn: asyncpg.Connection) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < stop:
            await call(conn, i)
            i += connections
            done += 1

    async def sample() -> None:
        while time.perf_counter() < stop:
            rows = await sampler.fetch(
                "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS state, count(*) AS n"
                " FROM pg_stat_activity WHERE pid = ANY($1::int[]) AND state = 'active' GROUP BY 1",
                pids,
            )
            states.update({row["state"]: row["n"] for row in rows})
            await asyncio.sleep(0.01)

    try:
        cpu_before, started = sum(process_cpu(pid) for pid in pids), time.perf_counter()
        await asyncio.gather(sample(), *(client(k, conn) for k, conn in enumerate(conns)))
        elapsed, cpu = time.perf_counter() - started, sum(process_cpu(pid) for pid in pids) - cpu_before
    finally:
        for conn in [*conns, sampler]:
            await conn.close()
    return done / elapsed, cpu / max(done, 1) * 1000, dict(states)


async def measure(url: str, count: int, connections: int, seconds: float) -> None:
    """Run both measures for each call and print them."""
    await ensure_database(url)
    dsn = asyncpg_dsn(url)
    targets = await make_targets(url, 50)
    print("## What a command function writes and waits for\n")
    print(f"`uv run python -m bench.command_wal --calls {count} --connections {connections} --seconds {seconds:g}`\n")
    for name, call in calls(targets).items():
        size, records = await wal_per_call(dsn, call, count)
        print(f"### `tripsage.{name}`\n\nWAL per call: {size:,.0f} bytes\n")
        print("| record type | records/call | bytes/call | of them full-page images |\n|---|---:|---:|---:|")
        for row in records:
            print(
                f"| {row['kind']} | {row['count'] / count:.2f} | {row['combined_size'] / count:,.0f} | {row['fpi_size'] / count:,.0f} |"
            )
        rate, cpu_ms, states = await concurrent(dsn, call, connections, seconds)
        total = sum(states.values()) or 1
        shares = ", ".join(f"{state} {n / total:.0%}" for state, n in sorted(states.items(), key=lambda s: -s[1])[:5])
        print(
            f"\n{connections} connections: {rate:,.0f} calls/s, backends' CPU {cpu_ms:.3f} ms/call; active backends: {shares}\n"
        )


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("BENCH_WRITE_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    asyncio.run(measure(args.url, args.calls, args.connections, args.seconds))


if __name__ == "__main__":
    main()
