"""Rebuild throughput: the online rebuild under a light write load vs. one offline INSERT … SELECT.

Both runs build the whole trip read model of the benchmark dataset (`bench.seed`: by default
50,000 trips, 2,000,000 activities) in the same process, one after the other:

- **offline baseline**: one `INSERT … SELECT` of every document (the projection's own builder,
  `trip_view.BUILD_SELECT`, over all trip ids) into empty copies of the read tables with the same
  indexes, plus one `INSERT … SELECT` of the member rows; nothing else running. Rolled back.
- **online**: `projections.rebuild.rebuild` (shadow build in keyset batches, catch-up, VACUUM/ANALYZE
  of the copies, atomic switch) while the real worker loop runs and `--writers` clients commit trip
  changes as the `authenticated` role at `--writes-per-s` in total. Its wall time includes everything
  up to the switch; the changes they made are caught up and verified afterwards (`--verify`).

Usage: `uv run python -m bench.rebuild_bench [--url postgresql://postgres@127.0.0.1:5432/tripsage_rebuild_bench]
[--users 1000] [--batch-size 500] [--concurrency 2] [--writes-per-s 20] [--no-verify]`.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.seed import SeedPlan, seed
from core.auth import Principal
from core.db import create_engine, set_request_claims
from core.settings import normalize_database_url
from projections.apply import drain
from projections.rebuild.run import RebuildOptions, RebuildResult, rebuild
from projections.rebuild.verify import verify
from projections.trip_view import BUILD_SELECT
from workers.projector import Projector, ProjectorOptions

DEFAULT_URL = os.environ.get("BENCH_REBUILD_URL", "postgresql://postgres@127.0.0.1:5432/tripsage_rebuild_bench")

OFFLINE_SCHEMA = """
DROP SCHEMA IF EXISTS bench_offline CASCADE;
CREATE SCHEMA bench_offline;
CREATE TABLE bench_offline.trip_views (LIKE public.trip_views INCLUDING ALL);
CREATE TABLE bench_offline.trip_view_members (LIKE public.trip_view_members INCLUDING ALL);
"""

OFFLINE_VIEWS = text(
    f"""
INSERT INTO bench_offline.trip_views
  (trip_id, owner_id, member_ids, status, search_text, updated_at, version, etag, doc, projected_at)
SELECT trip_id, owner_id, member_ids, status, search_text, updated_at, version,
       '"' || version || '-' || left(md5(doc), 16) || '"', doc, clock_timestamp()
FROM ({BUILD_SELECT}) built
"""
)
OFFLINE_MEMBERS = text(
    """
INSERT INTO bench_offline.trip_view_members (user_id, trip_id, role, status, updated_at)
SELECT m.user_id, v.trip_id, CASE WHEN m.user_id = v.owner_id THEN 'owner' ELSE 'shared' END, v.status, v.updated_at
FROM bench_offline.trip_views v CROSS JOIN LATERAL unnest(v.member_ids) AS m(user_id)
"""
)


def principal(user_id: uuid.UUID) -> Principal:
    """A signed-in user (what a request transaction runs as)."""
    claims = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}
    return Principal(claims=claims, user_id=user_id, role="authenticated", email=None, expires_at=time.time() + 3600)


@dataclass
class WriteLoad:
    """Trip changes committed by clients as the `authenticated` role, at a fixed total rate."""

    engine: AsyncEngine
    trips: list[tuple[uuid.UUID, uuid.UUID]]
    writers: int
    rate: float
    done: int = 0
    stop: asyncio.Event | None = None

    async def _writer(self, seed_: int) -> None:
        rng = random.Random(seed_)
        pause = self.writers / self.rate if self.rate > 0 else 3600.0
        assert self.stop is not None
        while not self.stop.is_set():
            trip_id, owner = rng.choice(self.trips)
            async with self.engine.begin() as conn:
                await set_request_claims(conn, principal(owner))
                await conn.execute(
                    text("UPDATE trips SET title = :t, version = version + 1, updated_at = now() WHERE id = :id"),
                    {"t": f"bench edit {self.done}", "id": trip_id},
                )
            self.done += 1
            await asyncio.sleep(pause)

    def start(self) -> list[asyncio.Task[None]]:
        """Start the writers."""
        self.stop = asyncio.Event()
        return [asyncio.create_task(self._writer(i)) for i in range(self.writers)]


async def offline(engine: AsyncEngine) -> tuple[int, float]:
    """One INSERT … SELECT of every document plus one of the member rows, timed, rolled back."""
    async with engine.connect() as conn:
        ids = list((await conn.scalars(text("SELECT id FROM trips ORDER BY id"))).all())
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        await raw.driver_connection.execute(OFFLINE_SCHEMA)
        started = time.perf_counter()
        await conn.execute(OFFLINE_VIEWS, {"trip_ids": ids})
        await conn.execute(OFFLINE_MEMBERS)
        seconds = time.perf_counter() - started
        await conn.rollback()
    return len(ids), seconds


async def online(engine: AsyncEngine, args: argparse.Namespace) -> tuple[RebuildResult, int]:
    """The online rebuild with the worker running and the write load on."""
    async with engine.connect() as conn:
        trips = [(r.id, r.owner_id) for r in await conn.execute(text("SELECT id, owner_id FROM trips"))]
    worker_engine = create_engine(str(engine.url.render_as_string(hide_password=False)), pool_size=2)
    projector = Projector(worker_engine, ProjectorOptions(sweep_interval_s=0.1))
    projector.start()
    load = WriteLoad(engine, trips, args.writers, args.writes_per_s)
    tasks = load.start()
    try:
        await asyncio.sleep(1.0)
        before = load.done
        options = RebuildOptions(batch_size=args.batch_size, concurrency=args.concurrency)
        result = await rebuild(engine, options=options)
        during = load.done - before
    finally:
        assert load.stop is not None
        load.stop.set()
        await asyncio.gather(*tasks)
        await projector.aclose()
        await worker_engine.dispose()
    return result, during


def machine() -> str:
    """CPU model, cores, memory and load average."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            memory = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal"))) / 1024 / 1024
    except (OSError, StopIteration):
        memory = 0.0
    load = os.getloadavg()
    return f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, load average {load[0]:.2f} / {load[1]:.2f}"


async def main(args: argparse.Namespace) -> None:
    url = normalize_database_url(args.url)
    info = await seed(args.url, SeedPlan(users=args.users))
    engine = create_engine(url, pool_size=args.concurrency + 4)
    try:
        async with engine.connect() as conn:
            pg = await conn.scalar(text("SHOW server_version"))
        await drain(engine)
        load_before = machine()
        trips, offline_s = await offline(engine)
        result, writes = await online(engine, args)
        await drain(engine)
        report = await verify(engine, batch_size=1000, settle_s=30) if args.verify else None
    finally:
        await engine.dispose()
    offline_rate = trips / offline_s
    online_rate = result.rows / result.seconds
    lines = [
        f"Machine: {load_before} (before the runs); PostgreSQL {pg}. Shared CPU: other work may run.",
        f"Dataset: `bench.seed` {args.users} users: {trips:,} trips (seed reused: {info.reused}).",
        "",
        "| run | trips | seconds | trips/s | vs offline |",
        "|---|---:|---:|---:|---:|",
        f"| offline: one `INSERT … SELECT` of all documents + members (baseline) | {trips:,} | {offline_s:.1f}"
        f" | {offline_rate:,.0f} | 100% |",
        f"| online `rebuild` (batch {args.batch_size}, concurrency {args.concurrency}), {args.writers} writers"
        f" at {args.writes_per_s:g} commits/s ({writes} commits during it, {result.caught_up} trips caught up)"
        f" | {result.rows:,} | {result.seconds:.1f} | {online_rate:,.0f} | {online_rate / offline_rate:.0%} |",
        "",
        f"Targets: online ≥ 3,500 trips/s: {'met' if online_rate >= 3500 else 'NOT met'};"
        f" within 20 % of offline: {'met' if online_rate >= 0.8 * offline_rate else 'NOT met'}.",
    ]
    if report is not None:
        lines.append(f"verify after the online run: {report.checked:,} trips, {len(report.differences)} difference(s).")
    lines.append(f"Machine after: {machine()}.")
    print("\n".join(lines))


def cli() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=DEFAULT_URL, help="benchmark database (created and seeded when missing)")
    parser.add_argument("--users", type=int, default=SeedPlan.users, help="50 trips per user")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--writes-per-s", type=float, default=20.0)
    parser.add_argument("--no-verify", dest="verify", action="store_false")
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
