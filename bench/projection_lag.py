"""Projection benchmark: lag under a sustained mixed command load, backlog drain rate, 200-trip fan-out.

    uv run python -m bench.projection_lag [--rate 200] [--duration 20] [--clients 8] [--backlog 10000]

Needs a PostgreSQL it may create a scratch database in (`--database-url`, else `TEST_DATABASE_URL` /
`DATABASE_URL`, else the embedded server under `.tripsage/bench`) and a Redis (`--redis-url`, else
`TEST_REDIS_URL` / `REDIS_URL`, else embedded). The worker is the real one, `tripsage worker`, in
its own process, nudged through Redis exactly as the API nudges it.

1. Lag: `--clients` concurrent clients issue `--rate` commands/s in total (open loop) for
   `--duration` s; each command is a request transaction as its user (role `tripsage_api` with
   claims, so RLS and the feed triggers run as in production), followed by a nudge. Lag is
   client-observed: from the command's COMMIT returning to a watcher seeing its transaction fully
   applied (the read-your-writes criterion: no feed row of that xid, nor fanned out of it, left). The
   watcher LISTENs to the worker's notifications and also polls every 10 ms.
2. Fan-out: a user who collaborates on 200 trips renames themself; time until all 200 documents
   show it (the token turns fresh).
3. Drain: with the worker stopped, `--backlog` trips (2 itineraries, 6 activities each) are changed
   in bulk; the worker is started and its refresh rate is taken from the read rows' `projected_at`.
Prints a markdown table with the machine's description.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from core.auth import Principal
from core.db import create_engine, set_request_claims
from core.embedded import start_postgres, start_redis
from core.migrate import migrate
from core.nudge import Nudger
from core.scratch import create_database, drop_database
from core.settings import generate_secret

ROOT = Path(__file__).resolve().parent.parent
FRESH = """
SELECT x FROM unnest($1::xid8[]) AS x
WHERE NOT EXISTS (SELECT 1 FROM tripsage.changes c WHERE c.xid = x)
  AND NOT EXISTS (SELECT 1 FROM tripsage.changes c WHERE c.origin_xid = x)
"""


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def principal(user_id: uuid.UUID) -> Principal:
    claims = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}
    return Principal(claims=claims, user_id=user_id, role="authenticated", email=None, expires_at=time.time() + 86400)


@dataclass
class Client:
    """One simulated client: a user and the trips/itineraries/activities it works on."""

    user: uuid.UUID
    trips: list[uuid.UUID] = field(default_factory=list)
    itineraries: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    activities: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)


# --- set-up -------------------------------------------------------------------------------------


async def seed_users(engine: AsyncEngine, count: int, prefix: str) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "WITH p AS (INSERT INTO profiles (id, display_name) SELECT u, :prefix || ordinality"
                " FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS u RETURNING id)"
                " INSERT INTO user_preferences (user_id) SELECT id FROM p"
            ),
            {"ids": ids, "prefix": prefix},
        )
    return ids


BULK_TRIPS = text(
    """
WITH t AS (
  INSERT INTO trips (owner_id, title, destination, start_date, end_date, budget)
  SELECT o, 'Trip ' || g, 'Lisbon', date '2030-05-01', date '2030-05-09', 1500
  FROM unnest(CAST(:owners AS uuid[])) AS o, generate_series(1, :per_owner) AS g
  RETURNING id, owner_id
), i AS (
  INSERT INTO itineraries (trip_id, title, position)
  SELECT t.id, 'Day ' || d, d FROM t, generate_series(1, 2) AS d RETURNING id, trip_id
), a AS (
  INSERT INTO activities (itinerary_id, trip_id, title, price, currency, position)
  SELECT i.id, i.trip_id, 'Activity ' || k, k * 12.5, CASE WHEN k = 3 THEN 'EUR' ELSE 'USD' END, k
  FROM i, generate_series(1, 3) AS k
  RETURNING id, itinerary_id, trip_id
)
SELECT t.id, t.owner_id, (SELECT array_agg(i.id) FROM i WHERE i.trip_id = t.id) AS its,
       (SELECT array_agg(a.id) FROM a WHERE a.trip_id = t.id) AS acts
FROM t
"""
)


async def seed_trips(engine: AsyncEngine, owners: list[uuid.UUID], per_owner: int) -> list[Any]:
    async with engine.begin() as conn:
        return list((await conn.execute(BULK_TRIPS, {"owners": owners, "per_owner": per_owner})).all())


def worker_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SUPABASE_JWT_SECRET=generate_secret(),
        TRIPSAGE_ENCRYPTION_KEYS="q3b9cK2cW8m4m8hX4QZ0yPZC1m7m0t7E8cQ5cX2m3lQ=",
        LOG_LEVEL="WARNING",
        LOG_FORMAT="text",
    )
    return env


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603  # our own console script
        [str(Path(sys.executable).parent / "tripsage"), "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


async def settle(engine: AsyncEngine, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            if not await conn.scalar(text("SELECT count(*) FROM tripsage.changes")):
                return
        await asyncio.sleep(0.02)
    raise RuntimeError("the feed did not drain in time")


# --- 1. lag under load --------------------------------------------------------------------------


class Watcher:
    """Sees when committed transactions are fully applied (LISTEN + 10 ms polling)."""

    def __init__(self, database_url: str) -> None:
        self.url = dsn(database_url)
        self.pending: dict[int, float] = {}
        self.lags: dict[int, float] = {}
        self.wake = asyncio.Event()
        self.stop = False

    async def run(self) -> None:
        conn = await asyncpg.connect(self.url)
        listen = await asyncpg.connect(self.url)
        await listen.add_listener("tripsage_projection", lambda *_: self.wake.set())
        try:
            while not self.stop or self.pending:
                try:
                    await asyncio.wait_for(self.wake.wait(), 0.01)
                except TimeoutError:
                    pass
                self.wake.clear()
                if not self.pending:
                    continue
                xids = list(self.pending)
                applied = await conn.fetch(FRESH, xids)
                now = time.perf_counter()
                for row in applied:
                    xid = int(row["x"])
                    self.lags[xid] = now - self.pending.pop(xid)
        finally:
            await listen.close()
            await conn.close()


async def command(engine: AsyncEngine, client: Client, rng: random.Random) -> int:
    """One mixed command as the client's user; returns its transaction id."""
    op = rng.choices(
        ["patch", "itinerary", "activity", "activity_patch", "create", "share", "rename"],
        weights=[35, 12, 25, 15, 5, 5, 3],
    )[0]
    trip = rng.choice(client.trips)
    async with engine.begin() as conn:
        await set_request_claims(conn, principal(client.user))
        bump = True
        if op in ("activity", "activity_patch") and not client.itineraries.get(trip):
            op = "itinerary"
        if op == "patch":
            await conn.execute(
                text("UPDATE trips SET title = :t WHERE id = :id"), {"t": f"T{rng.random():.6f}", "id": trip}
            )
        elif op == "itinerary":
            new = await conn.scalar(
                text("INSERT INTO itineraries (trip_id, title, position) VALUES (:trip, 'Extra', 9) RETURNING id"),
                {"trip": trip},
            )
            client.itineraries.setdefault(trip, []).append(new)
        elif op in ("activity", "activity_patch"):
            if op == "activity" or not client.activities.get(trip):
                new = await conn.scalar(
                    text(
                        "INSERT INTO activities (itinerary_id, trip_id, title, price, currency)"
                        " VALUES (:it, :trip, 'Museum', 14.50, 'EUR') RETURNING id"
                    ),
                    {"it": rng.choice(client.itineraries[trip]), "trip": trip},
                )
                client.activities.setdefault(trip, []).append(new)
            else:
                await conn.execute(
                    text("UPDATE activities SET booking_status = 'booked' WHERE id = :id"),
                    {"id": rng.choice(client.activities[trip])},
                )
        elif op == "create":
            trip = await conn.scalar(
                text(
                    "INSERT INTO trips (owner_id, title, destination, start_date, end_date)"
                    " VALUES (:o, 'New', 'Porto', date '2030-06-01', date '2030-06-05') RETURNING id"
                ),
                {"o": client.user},
            )
            client.trips.append(trip)
            bump = False
        elif op == "rename":
            await conn.execute(
                text("UPDATE profiles SET display_name = :n WHERE id = :id"),
                {"n": f"User {rng.random():.6f}", "id": client.user},
            )
            bump = False
        else:  # share
            await conn.execute(
                text(
                    "INSERT INTO trip_collaborators (trip_id, user_id, permission) VALUES (:trip, :u, 'view')"
                    " ON CONFLICT (trip_id, user_id) DO UPDATE SET permission = 'edit'"
                ),
                {"trip": trip, "u": SHARE_TARGET},
            )
        if bump:
            await conn.execute(text("UPDATE trips SET version = version + 1 WHERE id = :id"), {"id": trip})
        xid = await conn.scalar(text("SELECT pg_current_xact_id()::text::bigint"))
    return int(xid or 0)


SHARE_TARGET = uuid.UUID(int=7)


async def client_loop(
    engine: AsyncEngine, nudger: Nudger, client: Client, watcher: Watcher, rate: float, until: float, seed: int
) -> int:
    rng = random.Random(seed)
    interval, due, sent = 1.0 / rate, time.perf_counter() + rng.random() / rate, 0
    while due < until:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        xid = await command(engine, client, rng)
        watcher.pending[xid] = time.perf_counter()
        await nudger.nudge()
        sent += 1
        due += interval
    return sent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


# --- the run ------------------------------------------------------------------------------------


def bench_servers(args: argparse.Namespace) -> tuple[str, str, list[Any]]:
    """The PostgreSQL admin URL (asyncpg), the Redis URL, and the embedded servers started for them.

    `--database-url`/`--redis-url`, else `TEST_*`, else the app's variables, else embedded servers
    under `.tripsage/bench` (stop them with `stop_servers`).
    """
    handles: list[Any] = []
    admin = args.database_url or os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not admin:
        admin, handle = start_postgres(ROOT / ".tripsage" / "bench")
        handles.append(handle)
    redis_url = args.redis_url or os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if not redis_url:
        redis_url, handle = start_redis(ROOT / ".tripsage" / "bench")
        handles.append(handle)
    return admin.replace("postgresql://", "postgresql+asyncpg://", 1), redis_url, handles


def stop_servers(handles: list[Any]) -> None:
    """Stop the embedded servers `bench_servers` started."""
    for handle in handles:
        stop = getattr(handle, "cleanup", None) or getattr(handle, "shutdown", None)
        if callable(stop):
            stop()


async def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    admin, redis_url, handles = bench_servers(args)
    url = await create_database(admin, "tripsage_bench")
    results: list[tuple[str, str]] = []
    try:
        await asyncio.to_thread(migrate, url)
        engine = create_engine(url, pool_size=args.clients + 4)
        env = worker_env(url, redis_url)
        owners = await seed_users(engine, args.clients, "Client ")
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO profiles (id, display_name) VALUES (:id, 'Share target') ON CONFLICT DO NOTHING"),
                {"id": SHARE_TARGET},
            )
            await conn.execute(
                text("INSERT INTO user_preferences (user_id) VALUES (:id) ON CONFLICT DO NOTHING"), {"id": SHARE_TARGET}
            )
        rows = await seed_trips(engine, owners, 25)
        clients = {o: Client(o) for o in owners}
        for row in rows:
            c = clients[row.owner_id]
            c.trips.append(row.id)
            c.itineraries[row.id] = list(row.its)
            c.activities[row.id] = list(row.acts)
        worker = start_worker(env)
        await settle(engine)

        # 1. lag under load
        watcher = Watcher(url)
        watch = asyncio.create_task(watcher.run())
        nudger = Nudger(redis_url)
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        until = started + args.duration
        sent = await asyncio.gather(
            *(
                client_loop(engine, nudger, c, watcher, args.rate / args.clients, until, i)
                for i, c in enumerate(clients.values())
            )
        )
        elapsed = time.perf_counter() - started
        watcher.stop = True
        await asyncio.wait_for(watch, 60)
        await nudger.close()
        lags = list(watcher.lags.values())
        results += [
            ("commands sent (rate achieved)", f"{sum(sent)} in {elapsed:.1f} s ({sum(sent) / elapsed:.0f} cmd/s)"),
            ("lag p50 / p95 / p99 / max (ms)", " / ".join(f"{pct(lags, q):.1f}" for q in (0.5, 0.95, 0.99, 1.0))),
        ]

        # 2. fan-out: one user on 200 trips renames themself
        fan_user = (await seed_users(engine, 1, "Fan "))[0]
        shared = [row.id for row in rows[:200]]
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO trip_collaborators (trip_id, user_id, permission)"
                    " SELECT t, :u, 'edit' FROM unnest(CAST(:trips AS uuid[])) AS t"
                ),
                {"u": fan_user, "trips": shared},
            )
        nudger = Nudger(redis_url)
        await nudger.nudge()
        await settle(engine)
        fan_times = []
        check = await asyncpg.connect(dsn(url))
        try:
            for attempt in range(3):
                async with engine.begin() as conn:
                    await set_request_claims(conn, principal(fan_user))
                    await conn.execute(
                        text("UPDATE profiles SET display_name = :n WHERE id = :id"),
                        {"n": f"Fan {attempt}", "id": fan_user},
                    )
                    xid = int(await conn.scalar(text("SELECT pg_current_xact_id()::text::bigint")) or 0)
                t0 = time.perf_counter()
                await nudger.nudge()
                while not await check.fetch(FRESH, [xid]):
                    await asyncio.sleep(0.002)
                fan_times.append(time.perf_counter() - t0)
                shown = await check.fetchval(
                    "SELECT count(*) FROM trip_views WHERE trip_id = ANY($1::uuid[]) AND convert_from(doc, 'UTF8') LIKE $2",
                    shared,
                    f'%"Fan {attempt}"%',
                )
                assert shown == 200, shown
        finally:
            await check.close()
            await nudger.close()
        results.append(
            ("200-trip fan-out visible (ms, 3 runs)", " / ".join(f"{t * 1000:.0f}" for t in fan_times)),
        )

        # 3. backlog drain rate
        stop_worker(worker)
        bulk_owner = (await seed_users(engine, 1, "Bulk "))[0]
        backlog = [row.id for row in await seed_trips(engine, [bulk_owner], args.backlog)]
        t_start = time.perf_counter()
        worker = start_worker(env)
        await settle(engine, timeout=600)
        wall = time.perf_counter() - t_start
        async with engine.connect() as conn:
            span = await conn.scalar(
                text(
                    "SELECT extract(epoch FROM max(projected_at) - min(projected_at)) FROM trip_views"
                    " WHERE trip_id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": backlog},
            )
        stop_worker(worker)
        rate = len(backlog) / float(span) if span else float("nan")
        results.append(
            (
                f"backlog drain ({len(backlog)} trips, {len(backlog) * 9} feed rows)",
                f"{rate:,.0f} trip refreshes/s (worker busy {float(span or 0):.2f} s; {wall:.1f} s incl. process start)",
            )
        )
        await engine.dispose()
    finally:
        await drop_database(admin, url)
        stop_servers(handles)
    return results


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPU ({cpu}), Python {platform.python_version()};"
        f" load average at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--rate", type=float, default=200.0, help="commands per second, all clients together")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--backlog", type=int, default=10_000, help="trips changed in bulk for the drain test")
    args = parser.parse_args()
    host = machine()
    results = asyncio.run(run(args))
    print(f"\nProjection benchmark — {host}\n")
    print(f"Load: {args.clients} clients, {args.rate:.0f} cmd/s target, {args.duration:.0f} s; worker: 1 process\n")
    print("| measure | result |")
    print("|---|---|")
    for name, value in results:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
