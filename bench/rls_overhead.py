"""What the RLS plumbing costs per request: round trips and microseconds, with and without it.

Every variant runs the same small data statement (one TripView row by primary key, the shape of
`GET /api/trips/{id}`) on a scratch database, sequentially, in-process:

- at the driver (asyncpg): the statement alone in autocommit, then BEGIN + the set_config statement
  (role + claims) + the statement + COMMIT: the protocol cost of the plumbing, nothing else;
- through SQLAlchemy: the statement alone (autocommit, login role: no RLS, a reference), BEGIN +
  statement + COMMIT (a transaction, still no RLS), `Database.request_session` (what `SessionDep`
  does: BEGIN, set_config, statement, COMMIT) and `queries.plumbing.read_transaction` (what the
  query endpoints do: `BEGIN; set_config` as one simple-query message, statement, COMMIT).

Round trips are counted by a TCP proxy in front of PostgreSQL (a message sent after the server
answered). Run: `uv run python -m bench.rls_overhead [--url postgresql://postgres@127.0.0.1:5432/postgres] [--n 3000]`.
The URL names the server (and an admin database); a scratch database is created next to it and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.harness import RoundTripProxy
from core.auth import Principal, TokenVerifier, mint_token
from core.db import Database, claims_json
from core.migrate import migrate
from core.scratch import create_database, drop_database
from core.settings import generate_secret, normalize_database_url
from queries.plumbing import read_transaction

DATA = text("SELECT doc FROM trip_views WHERE trip_id = :trip_id")
RAW_DATA = "SELECT doc FROM trip_views WHERE trip_id = $1"
RAW_CLAIMS = "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)"
SEED = """
INSERT INTO trip_views (trip_id, owner_id, member_ids, status, search_text, updated_at, version, etag, doc)
VALUES ($1, $2, ARRAY[$2]::uuid[], 'planning', 'bench', now(), 1, 'e', convert_to(repeat('x', 2048), 'UTF8'))
"""
Step = Callable[[], Awaitable[object]]


def variants(db: Database, raw: asyncpg.Connection, principal: Principal, trip: uuid.UUID) -> dict[str, Step]:
    """Every way of running the data statement, as zero-argument steps."""
    params = {"trip_id": trip}

    async def raw_alone() -> object:
        return await raw.fetchrow(RAW_DATA, trip)

    async def raw_claims() -> object:
        async with raw.transaction():
            await raw.execute(RAW_CLAIMS, principal.db_role, claims_json(principal))
            return await raw.fetchrow(RAW_DATA, trip)

    async def alone() -> object:
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            return (await conn.execute(DATA, params)).first()

    async def transaction_only() -> object:
        async with db.engine.begin() as conn:
            return (await conn.execute(DATA, params)).first()

    async def request_session() -> object:
        async with db.request_session(principal) as session:
            row = (await session.execute(DATA, params)).first()
            await session.commit()
        return row

    async def lean_read() -> object:
        async with read_transaction(db.engine, principal) as conn:
            return (await conn.execute(DATA, params)).first()

    return {
        "asyncpg: data statement alone (autocommit, no RLS)": raw_alone,
        "asyncpg: BEGIN + set_config + data + COMMIT": raw_claims,
        "SQLAlchemy: data statement alone (autocommit, no RLS)": alone,
        "SQLAlchemy: BEGIN + data + COMMIT (no RLS)": transaction_only,
        "`request_session` (SessionDep): BEGIN + set_config + data + COMMIT": request_session,
        "`read_transaction` (queries): `BEGIN; set_config` in one message + data + COMMIT": lean_read,
    }


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _timed(step: Step, n: int) -> list[float]:
    for _ in range(min(50, n)):
        await step()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


async def _round_trips(url: str, principal: Principal, trip: uuid.UUID) -> dict[str, int]:
    parsed = make_url(url)
    if not parsed.host or parsed.host.startswith("/"):
        return {}  # a unix socket: no TCP proxy to count with
    proxy = RoundTripProxy(parsed.host, parsed.port or 5432)
    await proxy.start()
    proxied = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    db = Database.open(proxied)
    raw = await asyncpg.connect(_dsn(proxied))
    counts: dict[str, int] = {}
    try:
        for name, step in variants(db, raw, principal, trip).items():
            for _ in range(3):  # connect, prepare and cache statements first
                await step()
            proxy.take()
            await step()
            counts[name] = proxy.take()
    finally:
        await raw.close()
        await db.dispose()
        await proxy.close()
    return counts


async def measure(url: str, n: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seed one readable TripView row in the (migrated) database at `url`, then time every variant."""
    secret = generate_secret()
    user, trip = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(SEED, trip, user)
    finally:
        await conn.close()
    principal = await TokenVerifier(secret=secret, audience="authenticated").verify(
        mint_token(secret=secret, email="bench@example.com", sub=user)
    )
    db = Database.open(url)
    raw = await asyncpg.connect(_dsn(url))
    results: dict[str, list[float]] = {}
    try:
        for name, step in variants(db, raw, principal, trip).items():
            assert await step() is not None, name  # RLS lets the member read the row
            results[name] = await _timed(step, n)
    finally:
        await raw.close()
        await db.dispose()
    return results, await _round_trips(url, principal, trip)


def table(results: dict[str, list[float]], trips: dict[str, int], n: int) -> str:
    """The markdown report."""
    lines = [
        f"| variant (n={n} sequential requests each) | round trips | median µs | p95 µs |",
        "|---|---:|---:|---:|",
    ]
    for name, samples in results.items():
        lines.append(
            f"| {name} | {trips.get(name, 'n/a')} | {statistics.median(samples):.0f}"
            f" | {statistics.quantiles(samples, n=20)[-1]:.0f} |"
        )
    names = list(results)
    raw_cost = statistics.median(results[names[1]]) - statistics.median(results[names[0]])
    lines += [
        "",
        f"Driver-level cost of BEGIN + set_config + COMMIT around one statement: {raw_cost:+.0f} µs (median).",
    ]
    return "\n".join(lines)


async def run(admin_url: str, n: int) -> str:
    """Create a scratch database next to `admin_url`, measure, drop it; return the markdown table."""
    url = await create_database(admin_url, "tripsage_rls_bench")
    try:
        await asyncio.to_thread(migrate, url)
        results, trips = await measure(url, n)
    finally:
        await drop_database(admin_url, url)
    return table(results, trips, n)


def main() -> None:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    default = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    parser.add_argument("--url", default=default, help="server and admin database (superuser)")
    parser.add_argument("--n", type=int, default=3000, help="requests per variant")
    args = parser.parse_args()
    print(asyncio.run(run(normalize_database_url(args.url), args.n)))  # noqa: T201  # the report


if __name__ == "__main__":
    main()
