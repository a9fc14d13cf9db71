"""Write-side commands issued as SQL in real request transactions, for the projection tests.

Each command runs in its own transaction as the `authenticated` role with the caller's claims
(`core.db.set_request_claims`), like a request does, so RLS and the change-feed triggers behave as
in production. Child changes bump the trip's version, as the command handlers do. The module also
holds the shared helpers of the projection tests (a burst worker run, read-model comparison).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from arq.worker import Worker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.auth import Principal
from core.db import set_request_claims
from core.settings import Settings
from projections.trip_view import build_documents
from workers.jobs import build_worker, close_worker


def principal(user_id: uuid.UUID) -> Principal:
    claims = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}
    return Principal(claims=claims, user_id=user_id, role="authenticated", email=None, expires_at=time.time() + 3600)


class Writes:
    """The write model's commands, as SQL in request transactions."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def as_user(self, user_id: uuid.UUID) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            await set_request_claims(conn, principal(user_id))
            yield conn

    async def xid(self, conn: AsyncConnection) -> int:
        return int(await conn.scalar(text("SELECT pg_current_xact_id()::text::bigint")) or 0)

    async def user(self, name: str = "user") -> uuid.UUID:
        user_id = uuid.uuid4()
        async with self.as_user(user_id) as conn:
            await conn.execute(
                text(
                    "WITH p AS (INSERT INTO profiles (id, email, display_name) VALUES (:id, :email, :name) RETURNING id)"
                    " INSERT INTO user_preferences (user_id) SELECT id FROM p"
                ),
                {"id": user_id, "email": f"{name}@example.com", "name": name},
            )
        return user_id

    async def create_trip(self, owner: uuid.UUID, title: str = "Trip", **fields: Any) -> uuid.UUID:
        values = {
            "title": title,
            "destination": fields.pop("destination", "Lisbon"),
            "start_date": fields.pop("start_date", date(2030, 5, 1)),
            "end_date": fields.pop("end_date", date(2030, 5, 10)),
            "description": fields.pop("description", None),
            "budget": fields.pop("budget", None),
        }
        async with self.as_user(owner) as conn:
            trip_id = await conn.scalar(
                text(
                    "INSERT INTO trips (owner_id, title, destination, start_date, end_date, description, budget)"
                    " VALUES (:owner, :title, :destination, :start_date, :end_date, :description, :budget) RETURNING id"
                ),
                {"owner": owner, **values},
            )
        assert isinstance(trip_id, uuid.UUID)
        return trip_id

    async def patch_trip(self, user: uuid.UUID, trip_id: uuid.UUID, **fields: Any) -> int:
        """Update trip columns and bump the version; returns the writer's xid."""
        sets = ", ".join(f"{name} = :{name}" for name in fields)
        async with self.as_user(user) as conn:
            await conn.execute(
                text(f"UPDATE trips SET {sets}, version = version + 1, updated_at = now() WHERE id = :id"),
                {"id": trip_id, **fields},
            )
            return await self.xid(conn)

    async def delete_trip(self, user: uuid.UUID, trip_id: uuid.UUID) -> None:
        async with self.as_user(user) as conn:
            await conn.execute(text("DELETE FROM trips WHERE id = :id"), {"id": trip_id})

    async def _bump(self, conn: AsyncConnection, trip_id: uuid.UUID) -> None:
        await conn.execute(
            text("UPDATE trips SET version = version + 1, updated_at = now() WHERE id = :id"), {"id": trip_id}
        )

    async def add_itinerary(
        self, user: uuid.UUID, trip_id: uuid.UUID, title: str = "Day", position: int = 0, day: date | None = None
    ) -> uuid.UUID:
        async with self.as_user(user) as conn:
            itinerary_id = await conn.scalar(
                text(
                    "INSERT INTO itineraries (trip_id, title, position, day) VALUES (:trip, :title, :pos, :day)"
                    " RETURNING id"
                ),
                {"trip": trip_id, "title": title, "pos": position, "day": day},
            )
            await self._bump(conn, trip_id)
        assert isinstance(itinerary_id, uuid.UUID)
        return itinerary_id

    async def delete_itinerary(self, user: uuid.UUID, trip_id: uuid.UUID, itinerary_id: uuid.UUID) -> None:
        async with self.as_user(user) as conn:
            await conn.execute(text("DELETE FROM itineraries WHERE id = :id"), {"id": itinerary_id})
            await self._bump(conn, trip_id)

    async def add_activity(
        self,
        user: uuid.UUID,
        trip_id: uuid.UUID,
        itinerary_id: uuid.UUID,
        title: str = "Visit",
        *,
        price: Decimal | None = None,
        currency: str = "USD",
        booking_status: str = "planned",
        position: int = 0,
    ) -> uuid.UUID:
        async with self.as_user(user) as conn:
            activity_id = await conn.scalar(
                text(
                    "INSERT INTO activities (itinerary_id, trip_id, title, price, currency, booking_status, position)"
                    " VALUES (:it, :trip, :title, :price, :currency, :status, :pos) RETURNING id"
                ),
                {
                    "it": itinerary_id,
                    "trip": trip_id,
                    "title": title,
                    "price": price,
                    "currency": currency,
                    "status": booking_status,
                    "pos": position,
                },
            )
            await self._bump(conn, trip_id)
        assert isinstance(activity_id, uuid.UUID)
        return activity_id

    async def patch_activity(self, user: uuid.UUID, trip_id: uuid.UUID, activity_id: uuid.UUID, **fields: Any) -> None:
        sets = ", ".join(f"{name} = :{name}" for name in fields)
        async with self.as_user(user) as conn:
            await conn.execute(
                text(f"UPDATE activities SET {sets}, updated_at = now() WHERE id = :id"), {"id": activity_id, **fields}
            )
            await self._bump(conn, trip_id)

    async def delete_activity(self, user: uuid.UUID, trip_id: uuid.UUID, activity_id: uuid.UUID) -> None:
        async with self.as_user(user) as conn:
            await conn.execute(text("DELETE FROM activities WHERE id = :id"), {"id": activity_id})
            await self._bump(conn, trip_id)

    async def share(self, user: uuid.UUID, trip_id: uuid.UUID, other: uuid.UUID, permission: str = "view") -> None:
        async with self.as_user(user) as conn:
            await conn.execute(
                text(
                    "INSERT INTO trip_collaborators (trip_id, user_id, permission) VALUES (:trip, :user, :perm)"
                    " ON CONFLICT (trip_id, user_id) DO UPDATE SET permission = EXCLUDED.permission, updated_at = now()"
                ),
                {"trip": trip_id, "user": other, "perm": permission},
            )
            await self._bump(conn, trip_id)

    async def unshare(self, user: uuid.UUID, trip_id: uuid.UUID, other: uuid.UUID) -> None:
        async with self.as_user(user) as conn:
            await conn.execute(
                text("DELETE FROM trip_collaborators WHERE trip_id = :trip AND user_id = :user"),
                {"trip": trip_id, "user": other},
            )
            await self._bump(conn, trip_id)

    async def rename(self, user: uuid.UUID, name: str) -> int:
        """Change the user's display name; returns the writer's xid (the consistency token)."""
        async with self.as_user(user) as conn:
            await conn.execute(
                text("UPDATE profiles SET display_name = :name, updated_at = now() WHERE id = :id"),
                {"id": user, "name": name},
            )
            return await self.xid(conn)


def trip_dates(offset: int) -> tuple[date, date]:
    start = date(2030, 1, 1) + timedelta(days=offset)
    return start, start + timedelta(days=5)


async def read_model(engine: AsyncEngine, trip_ids: list[uuid.UUID]) -> dict[uuid.UUID, bytes]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT trip_id, doc FROM trip_views WHERE trip_id = ANY(CAST(:ids AS uuid[]))"), {"ids": trip_ids}
        )
        return {row.trip_id: bytes(row.doc) for row in rows}


async def fresh_documents(engine: AsyncEngine, trip_ids: list[uuid.UUID]) -> dict[uuid.UUID, bytes]:
    async with engine.connect() as conn:
        return await build_documents(conn, trip_ids)


async def assert_converged(engine: AsyncEngine, trip_ids: list[uuid.UUID]) -> None:
    """The read model holds exactly the fresh documents (deleted trips absent), with matching members."""
    live = await read_model(engine, trip_ids)
    fresh = await fresh_documents(engine, trip_ids)
    assert live.keys() == fresh.keys()
    for trip_id, doc in fresh.items():
        assert live[trip_id] == doc, trip_id
    async with engine.connect() as conn:
        bad = await conn.scalar(
            text(
                """
                SELECT count(*) FROM (
                  (SELECT user_id, trip_id FROM trip_view_members WHERE trip_id = ANY(CAST(:ids AS uuid[]))
                   EXCEPT
                   SELECT unnest(member_ids), trip_id FROM trip_views WHERE trip_id = ANY(CAST(:ids AS uuid[])))
                  UNION ALL
                  (SELECT unnest(member_ids), trip_id FROM trip_views WHERE trip_id = ANY(CAST(:ids AS uuid[]))
                   EXCEPT
                   SELECT user_id, trip_id FROM trip_view_members WHERE trip_id = ANY(CAST(:ids AS uuid[])))
                ) d
                """
            ),
            {"ids": trip_ids},
        )
    assert bad == 0


async def run_burst_worker(settings: Settings, **overrides: Any) -> Worker:
    """Run a real arq worker in burst mode until the queue is empty, then close it (drains what is pending)."""
    worker = build_worker(settings, burst=True, poll_delay=0, handle_signals=False, **overrides)
    try:
        await worker.async_run()
    finally:
        await close_worker(worker)
    return worker
