"""Seed a realistic benchmark dataset with COPY, then build the read model set-based.

Default shape: 1,000 users, each owning 50 trips x 5 itineraries x 8 activities with 2
collaborators per trip: 50,000 trips, 250,000 itineraries, 2,000,000 activities, 100,000
collaborator rows. The measured user's 50 trips are the most recently updated, so their first page
of 50 is their own trips; they also collaborate on other users' trips, as everyone does.

Rows are generated deterministically (seeded RNG) and streamed into `COPY` (asyncpg
`copy_records_to_table`), with triggers off for the load (`SET session_replication_role = replica`,
which needs a superuser login): no change-feed rows, no per-row FK checks. The read model is then
built in batches by `projections.trip_view.refresh_trips`, the same code the worker runs.

Usage: `uv run python -m bench.seed [--url postgresql://postgres@127.0.0.1:5432/tripsage_bench]
[--users 1000] [--reseed]` (the database is created and migrated when missing; an existing seed
with the same shape is reused).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from core.migrate import migrate
from core.settings import normalize_database_url
from projections.trip_view import refresh_trips

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/tripsage_bench"
MEASURED_USER = uuid.UUID("00000000-0000-4000-8000-00000000d00d")
MEASURED_EMAIL = "measured@bench.tripsage.dev"
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
REFRESH_BATCH = 500

CITIES = ["Lisbon", "Kyoto", "Reykjavik", "Cape Town", "Oaxaca", "Hanoi", "Tbilisi", "Vancouver", "Porto", "Seoul"]
WORDS = ["harbour", "market", "museum", "ridge", "temple", "garden", "old town", "coast", "vineyard", "night"]
ITEM_TYPES = ["activity", "meal", "transport", "accommodation", "event", "other"]
BOOKING = ["planned", "reserved", "booked", "completed", "cancelled"]
STATUSES = ["planning", "booked", "in_progress", "completed", "cancelled"]
TRIP_TYPES = ["leisure", "business", "family", "solo", "other"]
PERMISSIONS = ["view", "edit", "admin"]


@dataclass(frozen=True)
class SeedPlan:
    """The dataset's shape."""

    users: int = 1000
    trips_per_user: int = 50
    itineraries: int = 5
    activities: int = 8
    collaborators: int = 2
    rng_seed: int = 42

    @property
    def trips(self) -> int:
        """Total trips."""
        return self.users * self.trips_per_user


@dataclass(frozen=True)
class SeedInfo:
    """What the benchmark needs to know about a seeded database."""

    measured_user: uuid.UUID
    measured_email: str
    single_trip: uuid.UUID
    seconds_load: float
    seconds_read_model: float
    reused: bool


def asyncpg_dsn(url: str) -> str:
    """A libpq-style DSN for asyncpg from any PostgreSQL URL."""
    return make_url(normalize_database_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


class Generator:
    """Deterministic rows for every table, in COPY column order."""

    def __init__(self, plan: SeedPlan) -> None:
        """Draw the users and trip ids up front (the other tables refer to them)."""
        self.plan = plan
        self.rng = random.Random(plan.rng_seed)
        self.users = [MEASURED_USER] + [_uuid(self.rng) for _ in range(plan.users - 1)]
        # trips[i] = (id, owner, updated_at); the measured user's are the newest.
        self.trips: list[tuple[uuid.UUID, uuid.UUID, datetime]] = []
        for u_index, user in enumerate(self.users):
            for t_index in range(plan.trips_per_user):
                if u_index == 0:
                    updated = BASE_TIME + timedelta(days=400, minutes=t_index)
                else:
                    updated = BASE_TIME + timedelta(seconds=self.rng.randrange(0, 365 * 86400))
                self.trips.append((_uuid(self.rng), user, updated))

    def profiles(self) -> Iterator[tuple[Any, ...]]:
        """profiles(id, email, display_name, created_at, updated_at)."""
        for i, user in enumerate(self.users):
            email = MEASURED_EMAIL if user == MEASURED_USER else f"user{i}@bench.tripsage.dev"
            yield (user, email, f"Traveller {i}", BASE_TIME, BASE_TIME)

    def preferences(self) -> Iterator[tuple[Any, ...]]:
        """user_preferences(user_id, currency, home_airport, travel_style, dietary..., accessibility..., updated_at)."""
        rng = random.Random(self.plan.rng_seed + 1)
        for user in self.users:
            if rng.random() < 0.5:
                yield (user, "EUR", "LIS", "slow", ["vegetarian"], [], BASE_TIME)
            else:
                yield (user, None, None, None, [], [], BASE_TIME)

    def trip_rows(self) -> Iterator[tuple[Any, ...]]:
        """trips(id, owner_id, title, description, destination, start/end, budget, ..., timestamps)."""
        rng = random.Random(self.plan.rng_seed + 2)
        for trip_id, owner, updated in self.trips:
            city = rng.choice(CITIES)
            start = date(2026, 1, 1) + timedelta(days=rng.randrange(0, 300))
            budget = Decimal(rng.randrange(50_000, 900_000)) / 100 if rng.random() < 0.7 else None
            description = f"A {rng.choice(WORDS)} trip to {city} with friends" if rng.random() < 0.6 else None
            yield (
                trip_id, owner, f"{city} {rng.choice(WORDS)}", description, city, start,
                start + timedelta(days=self.plan.itineraries + 1), budget, "USD", rng.randrange(1, 5),
                rng.choice(STATUSES), rng.choice(TRIP_TYPES), ["bench", rng.choice(WORDS)], rng.randrange(1, 60),
                updated - timedelta(days=30), updated,
            )  # fmt: skip

    def collaborators(self) -> Iterator[tuple[Any, ...]]:
        """trip_collaborators(trip_id, user_id, permission, created_at, updated_at)."""
        rng = random.Random(self.plan.rng_seed + 3)
        for trip_id, owner, updated in self.trips:
            chosen: set[uuid.UUID] = set()
            while len(chosen) < min(self.plan.collaborators, len(self.users) - 1):
                other = self.users[rng.randrange(len(self.users))]
                if other != owner:
                    chosen.add(other)
            for n, user in enumerate(sorted(chosen)):
                created = updated - timedelta(days=10, minutes=n)
                yield (trip_id, user, rng.choice(PERMISSIONS), created, created)

    def itineraries_and_activities(self) -> tuple[list[tuple[Any, ...]], Callable[[], Iterator[tuple[Any, ...]]]]:
        """itineraries rows (kept in memory: 5 per trip) and a generator of their activities."""
        rng = random.Random(self.plan.rng_seed + 4)
        itineraries: list[tuple[Any, ...]] = []
        for trip_id, _owner, updated in self.trips:
            for pos in range(self.plan.itineraries):
                created = updated - timedelta(days=20, minutes=pos)
                day = date(2026, 1, 1) + timedelta(days=pos) if pos % 2 == 0 else None
                itineraries.append((_uuid(rng), trip_id, f"Day {pos + 1}", day, pos, created, created))

        def activities() -> Iterator[tuple[Any, ...]]:
            arng = random.Random(self.plan.rng_seed + 5)
            for it_id, trip_id, _title, _day, _pos, created, _u in itineraries:
                for pos in range(self.plan.activities):
                    starts = BASE_TIME + timedelta(minutes=arng.randrange(0, 500_000)) if arng.random() < 0.7 else None
                    price = Decimal(arng.randrange(500, 50_000)) / 100 if arng.random() < 0.8 else None
                    yield (
                        _uuid(arng), it_id, trip_id, f"{arng.choice(WORDS).title()} visit", arng.choice(ITEM_TYPES),
                        starts, starts + timedelta(hours=2) if starts else None,
                        f"{arng.choice(WORDS)} street {pos}" if arng.random() < 0.6 else None, price,
                        "EUR" if arng.random() < 0.2 else "USD", arng.choice(BOOKING),
                        "Bring cash" if arng.random() < 0.2 else None, pos, created, created,
                    )  # fmt: skip

        return itineraries, activities


COLUMNS = {
    "profiles": ["id", "email", "display_name", "created_at", "updated_at"],
    "user_preferences": [
        "user_id", "currency", "home_airport", "travel_style", "dietary_restrictions", "accessibility_needs", "updated_at",
    ],
    "trips": [
        "id", "owner_id", "title", "description", "destination", "start_date", "end_date", "budget", "currency",
        "travelers", "status", "trip_type", "tags", "version", "created_at", "updated_at",
    ],
    "trip_collaborators": ["trip_id", "user_id", "permission", "created_at", "updated_at"],
    "itineraries": ["id", "trip_id", "title", "day", "position", "created_at", "updated_at"],
    "activities": [
        "id", "itinerary_id", "trip_id", "title", "item_type", "starts_at", "ends_at", "location", "price", "currency",
        "booking_status", "notes", "position", "created_at", "updated_at",
    ],
}  # fmt: skip


async def ensure_database(url: str) -> None:
    """Create the database if missing and migrate it (idempotent)."""
    target = make_url(normalize_database_url(url))
    admin = await asyncpg.connect(asyncpg_dsn(target.set(database="postgres").render_as_string(hide_password=False)))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await admin.close()
    await asyncio.to_thread(migrate, normalize_database_url(url))


async def _stored_plan(conn: asyncpg.Connection) -> dict[str, Any] | None:
    await conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (id int PRIMARY KEY, plan jsonb NOT NULL)")
    raw = await conn.fetchval("SELECT plan::text FROM bench_meta WHERE id = 1")
    return orjson.loads(raw) if raw else None


async def _load(conn: asyncpg.Connection, gen: Generator, say: Callable[[str], None]) -> None:
    await conn.execute("SET session_replication_role = replica")
    await conn.execute(
        "TRUNCATE profiles, user_preferences, trips, trip_collaborators, itineraries, activities,"
        " trip_views, trip_view_members, tripsage.changes CASCADE"
    )
    itineraries, activities = gen.itineraries_and_activities()
    sources: list[tuple[str, Any]] = [
        ("profiles", gen.profiles()),
        ("user_preferences", gen.preferences()),
        ("trips", gen.trip_rows()),
        ("trip_collaborators", gen.collaborators()),
        ("itineraries", itineraries),
        ("activities", activities()),
    ]
    for table, records in sources:
        started = time.perf_counter()
        await conn.copy_records_to_table(table, records=records, columns=COLUMNS[table])
        say(f"  COPY {table}: {time.perf_counter() - started:.1f}s")
    await conn.execute("RESET session_replication_role")
    # The triggers were off: count the activities the caps read (migration 0015), as its upgrade does.
    await conn.execute(
        "INSERT INTO tripsage.activity_tally (itinerary_id, trip_id, activities)"
        " SELECT itinerary_id, trip_id, count(*) FROM activities GROUP BY itinerary_id, trip_id"
    )
    await conn.execute("ANALYZE")


async def build_read_model(url: str, trip_ids: list[uuid.UUID], say: Callable[[str], None]) -> None:
    """Build every trip's document with the projection's own set-based builder, in batches."""
    engine = create_async_engine(normalize_database_url(url))
    try:
        done = 0
        for start in range(0, len(trip_ids), REFRESH_BATCH):
            batch = trip_ids[start : start + REFRESH_BATCH]
            async with engine.begin() as conn:
                await refresh_trips(conn, batch)
            done += len(batch)
            if done % (REFRESH_BATCH * 20) == 0 or done == len(trip_ids):
                say(f"  read model: {done}/{len(trip_ids)} trips")
    finally:
        await engine.dispose()


async def seed(url: str = DEFAULT_URL, plan: SeedPlan | None = None, *, reseed: bool = False) -> SeedInfo:
    """Create, migrate and fill the benchmark database (reusing an identical earlier seed).

    Args:
        url: The benchmark database's URL (created when missing).
        plan: The dataset's shape.
        reseed: Load again even when the same shape is already there.

    Returns:
        The measured user and trip, and how long loading took.
    """
    plan = plan or SeedPlan()
    say = print
    await ensure_database(url)
    gen = Generator(plan)
    single = gen.trips[plan.trips_per_user - 1][0]  # the measured user's newest trip
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        stored = await _stored_plan(conn)
        if not reseed and stored == asdict(plan):
            say(f"reusing the seeded database ({plan.trips} trips)")
            return SeedInfo(MEASURED_USER, MEASURED_EMAIL, single, 0.0, 0.0, reused=True)
        say(
            f"seeding {plan.users} users, {plan.trips} trips, {plan.trips * plan.itineraries * plan.activities} activities"
        )
        started = time.perf_counter()
        await conn.execute("DELETE FROM bench_meta")
        await _load(conn, gen, say)
        loaded = time.perf_counter() - started
        say(f"loaded in {loaded:.1f}s")
        started = time.perf_counter()
        await build_read_model(url, [trip[0] for trip in gen.trips], say)
        await conn.execute("VACUUM ANALYZE trip_views, trip_view_members")
        built = time.perf_counter() - started
        say(f"read model built in {built:.1f}s")
        await conn.execute(
            "INSERT INTO bench_meta (id, plan) VALUES (1, $1::jsonb)", orjson.dumps(asdict(plan)).decode()
        )
    finally:
        await conn.close()
    return SeedInfo(MEASURED_USER, MEASURED_EMAIL, single, loaded, built, reused=False)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=DEFAULT_URL, help="benchmark database URL (created when missing)")
    parser.add_argument("--users", type=int, default=SeedPlan.users)
    parser.add_argument("--trips-per-user", type=int, default=SeedPlan.trips_per_user)
    parser.add_argument("--reseed", action="store_true", help="load again even if the same shape is present")
    args = parser.parse_args()
    plan = SeedPlan(users=args.users, trips_per_user=args.trips_per_user)
    asyncio.run(seed(args.url, plan, reseed=args.reseed))


if __name__ == "__main__":
    main()
