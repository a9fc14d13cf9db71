"""What adding one activity costs as a trip grows: the caps' count by scan (0014) against the tally (0015).

Two scratch databases on the same server, one migrated to 0014 (the caps counted by scanning the
trip's activities) and one to head (the counts kept in `tripsage.activity_tally`). In each, one
trip per size with its activities spread over the heap as a trip filled over weeks would have
them (each of the trip's rows between rows of other trips), four full-ish itineraries and an empty
fifth that receives the measured activities. Per size and schema, rounds of sequential calls of
`tripsage.add_activity` as the trip's owner (the call `POST …/activities` makes, committed); each
round visits every size in both schemas, alternating, so what grows over the run (the change feed,
the heap) weighs on all alike; the activities a round added are deleted after it, so every round
starts at the same size. Prints the median time per call (wall, and the backend's CPU; the rounds'
range) and the ratio. Never a test.

    uv run python -m bench.activity_scale [--url postgresql://postgres@127.0.0.1:5432/postgres] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import asyncpg
import orjson

from bench.harness import process_cpu
from core.migrate import migrate
from core.scratch import create_database, driver_dsn, drop_database
from core.settings import normalize_database_url

OWNER = uuid.UUID("00000000-0000-4000-8000-0000000005ca")
CLAIMS = orjson.dumps({"sub": str(OWNER), "role": "authenticated", "aud": "authenticated"}).decode()
SIZES = (0, 50, 500, 1000, 1900)
FILLER = 8
"""Rows of other trips written between two of the measured trip's: its rows land on different pages."""
CALLS = 200
ADD = (
    "SELECT a.id FROM tripsage.add_activity($1, $2, $3, NULL, 100000, 1000000, 'measured', 'meal', NULL, NULL,"
    " NULL, 12.50, NULL, 'planned', NULL, 0) AS a"
)


async def make_trip(conn: asyncpg.Connection, size: int, filler: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """A trip of `size` activities in four itineraries, interleaved with the filler trip's; its empty fifth itinerary."""
    trip = await conn.fetchval(
        "INSERT INTO trips (owner_id, title, destination, start_date, end_date)"
        " VALUES ($1, 'size ' || $2::int, 'Porto', DATE '2027-06-01', DATE '2027-06-05') RETURNING id",
        OWNER,
        size,
    )
    itineraries = [
        await conn.fetchval(
            "INSERT INTO itineraries (trip_id, title, position) VALUES ($1, 'day', $2) RETURNING id", trip, i
        )
        for i in range(5)
    ]
    filler_itinerary = await conn.fetchval("SELECT id FROM itineraries WHERE trip_id = $1", filler)
    # One INSERT per row of the trip, each after FILLER rows of the filler trip, as users adding
    # activities at the same time would leave them.
    await conn.execute(
        """
        INSERT INTO activities (itinerary_id, trip_id, title, currency)
        SELECT CASE WHEN g % ($4::int + 1) = 0 THEN ($1::uuid[])[1 + (g / ($4::int + 1)) % 4] ELSE $5::uuid END,
               CASE WHEN g % ($4::int + 1) = 0 THEN $2::uuid ELSE $6::uuid END, 'x', 'USD'
        FROM generate_series(0, $3::int * ($4::int + 1) - 1) g ORDER BY g
        """,
        itineraries[:4],
        trip,
        size,
        FILLER,
        filler_itinerary,
        filler,
    )
    return trip, itineraries[4]


async def prepare(url: str) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The owner, a filler trip, and one measured trip per size (in `SIZES`' order): trip, receiving itinerary."""
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        await conn.execute(
            "INSERT INTO profiles (id, email, display_name) VALUES ($1, 'scale@example.com', 'Scale')", OWNER
        )
        filler = await conn.fetchval(
            "INSERT INTO trips (owner_id, title, destination, start_date, end_date)"
            " VALUES ($1, 'filler', 'Porto', DATE '2027-06-01', DATE '2027-06-05') RETURNING id",
            OWNER,
        )
        await conn.execute("INSERT INTO itineraries (trip_id, title) VALUES ($1, 'filler')", filler)
        trips = [await make_trip(conn, size, filler) for size in SIZES]
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return trips


async def one_round(conn: asyncpg.Connection, trip: uuid.UUID, itinerary: uuid.UUID) -> tuple[float, float]:
    """Wall and PostgreSQL CPU milliseconds per call over CALLS sequential calls; the added activities are deleted after."""
    backend = conn.get_server_pid()
    cpu, started = process_cpu(backend), time.perf_counter()
    for _ in range(CALLS):
        if await conn.fetchval(ADD, CLAIMS, trip, itinerary) is None:
            raise RuntimeError("add_activity refused the owner")
    elapsed, used = time.perf_counter() - started, process_cpu(backend) - cpu
    await conn.execute("DELETE FROM activities WHERE itinerary_id = $1", itinerary)
    return elapsed / CALLS * 1000, used / CALLS * 1000


async def measure(admin: str, rounds: int) -> None:
    """Create both databases, alternate the rounds, print the table, drop the databases."""
    urls = {
        "0014": await create_database(admin, "tripsage_scale"),
        "head": await create_database(admin, "tripsage_scale"),
    }
    try:
        for revision, url in urls.items():
            await asyncio.to_thread(migrate, normalize_database_url(url), revision)
        trips = {name: await prepare(url) for name, url in urls.items()}
        conns = {name: await asyncpg.connect(driver_dsn(url)) for name, url in urls.items()}
        times: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for _ in range(rounds):  # every size in every round: the feed and the heap grow alike for all
            for index, size in enumerate(SIZES):
                for name, conn in conns.items():
                    trip, itinerary = trips[name][index]
                    times.setdefault((name, size), []).append(await one_round(conn, trip, itinerary))
        for conn in conns.values():
            await conn.close()
    finally:
        for url in urls.values():
            await drop_database(admin, url)
    print(f"`uv run python -m bench.activity_scale --rounds {rounds}`: {CALLS} sequential committed calls a round;")
    print("medians over the rounds (range); CPU = the PostgreSQL backend's, read from /proc (a local server)\n")
    print(
        "| activities in the trip | 0014 (count by scan) ms/call: wall, CPU | head (tally): wall, CPU | 0014 ÷ head: wall, CPU |"
    )
    print("|---:|---:|---:|---:|")
    for size in SIZES:
        old, new = times[("0014", size)], times[("head", size)]
        cells = []
        for rows in (old, new):
            wall, cpu = [r[0] for r in rows], [r[1] for r in rows]
            cells.append(
                f"{statistics.median(wall):.3f} ({min(wall):.3f}–{max(wall):.3f}), {statistics.median(cpu):.3f}"
            )
        wall_ratio = statistics.median(r[0] for r in old) / statistics.median(r[0] for r in new)
        cpu_ratio = statistics.median(r[1] for r in old) / statistics.median(r[1] for r in new)
        print(f"| {size:,} | {cells[0]} | {cells[1]} | {wall_ratio:.2f}×, {cpu_ratio:.2f}× |")


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--url", default="postgresql://postgres@127.0.0.1:5432/postgres", help="a role that may create databases"
    )
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(measure(args.url, args.rounds))


if __name__ == "__main__":
    main()
