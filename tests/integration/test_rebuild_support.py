"""Shared helpers of the rebuild and verify tests: a running worker, CLI environments, read-model probes."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.settings import Settings
from projections.apply import drain
from projections.rebuild.run import RebuildResult, rebuild
from workers.projector import Projector, ProjectorOptions

TRIPSAGE = Path(sys.executable).parent / "tripsage"

TRIP_KEYS = [
    "id", "title", "description", "destination", "start_date", "end_date", "budget", "currency", "travelers",
    "status", "trip_type", "tags", "version", "created_at", "updated_at", "owner", "collaborators", "itineraries",
    "stats",
]  # fmt: skip


def cli_environment(settings: Settings) -> dict[str, str]:
    """Environment for a `tripsage` subprocess against the test database and Redis."""
    return {
        **os.environ,
        "DATABASE_URL": str(settings.database_url),
        "REDIS_URL": str(settings.redis_url),
        "SUPABASE_JWT_SECRET": str(settings.supabase_jwt_secret),
        "TRIPSAGE_ENCRYPTION_KEYS": str(settings.tripsage_encryption_keys),
        "LOG_FORMAT": "text",
    }


@asynccontextmanager
async def running_worker(database_url: str) -> AsyncIterator[Projector]:
    """The worker's real projection loop (sweeping every 50 ms instead of waiting for nudges)."""
    engine = create_engine(database_url, pool_size=3)
    projector = Projector(engine, ProjectorOptions(sweep_interval_s=0.05, heartbeat_interval_s=0.5))
    projector.start()
    try:
        yield projector
    finally:
        await projector.aclose()
        await engine.dispose()


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(text(sql), params)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def fresh_start(engine: AsyncEngine) -> RebuildResult:
    """Apply the feed and rebuild everything: a known-good read model whatever earlier tests left."""
    await drain(engine)
    return await rebuild(engine)


async def bulk_trips(engine: AsyncEngine, owner: uuid.UUID, count: int, title: str = "bulk") -> list[uuid.UUID]:
    """`count` trips with one itinerary and two activities each, in one transaction (login role)."""
    async with engine.begin() as conn:
        ids = list(
            (
                await conn.scalars(
                    text(
                        "INSERT INTO trips (owner_id, title, destination, start_date, end_date)"
                        " SELECT :owner, :title || ' ' || g, 'Porto', DATE '2030-01-01', DATE '2030-01-05'"
                        " FROM generate_series(1, :count) AS g RETURNING id"
                    ),
                    {"owner": owner, "title": title, "count": count},
                )
            ).all()
        )
        await conn.execute(
            text(
                "WITH it AS (INSERT INTO itineraries (trip_id, title, position)"
                " SELECT id, 'Day', 0 FROM unnest(CAST(:ids AS uuid[])) AS id RETURNING id, trip_id)"
                " INSERT INTO activities (itinerary_id, trip_id, title, price, currency, position)"
                " SELECT it.id, it.trip_id, 'Visit ' || n, 10.5 * n, 'EUR', n FROM it, generate_series(1, 2) AS n"
            ),
            {"ids": ids},
        )
    return ids


def doc_is_complete(doc: dict[str, Any]) -> bool:
    """A whole TripView: every key in order, and stats that agree with the itineraries shown."""
    if list(doc) != TRIP_KEYS:
        return False
    activities = sum(len(it["activities"]) for it in doc["itineraries"])
    stats = doc["stats"]
    return bool(stats["itinerary_count"] == len(doc["itineraries"]) and stats["activity_count"] == activities)
