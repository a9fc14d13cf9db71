"""The write model's commands, run through the real command handlers, for the projection tests.

Each command runs the way a request does: a unit of work as the caller (`Database.request_session`:
role `authenticated` with the caller's claims, so RLS and the change-feed triggers behave as in
production), the handler registered for the command (`commands.handlers.handle`), then a commit.
No SQL of its own: a bug in a command shows in the projection tests too. The module also holds the
shared helpers of the projection tests (a burst worker run, read-model comparison).
"""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from arq.worker import Worker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from commands.handlers import handle
from commands.messages import (
    AddActivity,
    AddItinerary,
    CreateTrip,
    DeleteTrip,
    RemoveActivity,
    RemoveItinerary,
    ShareTrip,
    UnshareTrip,
    UpdateActivity,
    UpdateProfile,
    UpdateTrip,
)
from commands.payloads import ActivityPatch, NewActivity, NewItinerary, NewTrip, ProfilePatch, TripPatch
from commands.unit import UnitOfWork, Written
from core.auth import Principal
from core.db import Database, RequestSession
from core.deps import PROVISION_PROFILE
from core.models import Command
from core.settings import Settings
from projections.trip_view import build_documents
from workers.jobs import build_worker, close_worker


def principal(user_id: uuid.UUID, name: str | None = None) -> Principal:
    claims: dict[str, Any] = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}
    email = None if name is None else f"{name}@example.com"
    if name is not None:
        claims |= {"email": email, "user_metadata": {"full_name": name}}
    return Principal(claims=claims, user_id=user_id, role="authenticated", email=email, expires_at=time.time() + 3600)


def created_id(written: Written[Any]) -> uuid.UUID:
    """The id of the record a command created."""
    assert written.record is not None and written.changed
    return uuid.UUID(str(written.record.id))


class Writes:
    """The write model's commands, each through its real handler in a unit of work of its own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.db = Database(
            engine, engine, async_sessionmaker(engine, expire_on_commit=False, sync_session_class=RequestSession)
        )

    async def run(self, user_id: uuid.UUID, command: Command) -> Written[Any]:
        """Handle `command` as `user_id` and commit, as a command route does."""
        async with self.db.request_session(principal(user_id)) as session:
            written = await handle(command, UnitOfWork(session=session, user_id=user_id))
            await session.commit()
        return written

    async def user(self, name: str = "user") -> uuid.UUID:
        """A user whose profile was provisioned as on a first request (`display_name` = `name`)."""
        user_id = uuid.uuid4()
        who = principal(user_id, name)
        assert who.display_name == name
        async with self.db.request_session(who) as session:
            await session.execute(PROVISION_PROFILE, {"id": user_id, "email": who.email, "name": who.display_name})
            await session.commit()
        return user_id

    async def create_trip(self, owner: uuid.UUID, title: str = "Trip", **fields: Any) -> uuid.UUID:
        values = {
            "destination": "Lisbon",
            "start_date": date(2030, 5, 1),
            "end_date": date(2030, 5, 10),
        } | fields
        written = await self.run(owner, CreateTrip(trip=NewTrip(title=title, **values)))
        return created_id(written)

    async def patch_trip(self, user: uuid.UUID, trip_id: uuid.UUID, **fields: Any) -> int:
        """Change trip fields; returns the command's xid (its consistency token)."""
        return (await self.run(user, UpdateTrip(trip_id=trip_id, patch=TripPatch(**fields)))).xid

    async def delete_trip(self, user: uuid.UUID, trip_id: uuid.UUID) -> None:
        await self.run(user, DeleteTrip(trip_id=trip_id))

    async def add_itinerary(
        self, user: uuid.UUID, trip_id: uuid.UUID, title: str = "Day", position: int = 0, day: date | None = None
    ) -> uuid.UUID:
        itinerary = NewItinerary(title=title, position=position, day=day)
        written = await self.run(user, AddItinerary(trip_id=trip_id, itinerary=itinerary))
        return created_id(written)

    async def delete_itinerary(self, user: uuid.UUID, trip_id: uuid.UUID, itinerary_id: uuid.UUID) -> None:
        await self.run(user, RemoveItinerary(trip_id=trip_id, itinerary_id=itinerary_id))

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
        activity = NewActivity.model_validate(
            {
                "title": title,
                "price": price,
                "currency": currency,
                "booking_status": booking_status,
                "position": position,
            }
        )
        written = await self.run(user, AddActivity(trip_id=trip_id, itinerary_id=itinerary_id, activity=activity))
        return created_id(written)

    async def _itinerary_of(self, activity_id: uuid.UUID) -> uuid.UUID:
        async with self.engine.connect() as conn:
            found = await conn.scalar(text("SELECT itinerary_id FROM activities WHERE id = :id"), {"id": activity_id})
        assert isinstance(found, uuid.UUID)
        return found

    async def patch_activity(self, user: uuid.UUID, trip_id: uuid.UUID, activity_id: uuid.UUID, **fields: Any) -> None:
        itinerary_id = await self._itinerary_of(activity_id)
        patch = ActivityPatch.model_validate(fields)
        await self.run(
            user, UpdateActivity(trip_id=trip_id, itinerary_id=itinerary_id, activity_id=activity_id, patch=patch)
        )

    async def delete_activity(self, user: uuid.UUID, trip_id: uuid.UUID, activity_id: uuid.UUID) -> None:
        itinerary_id = await self._itinerary_of(activity_id)
        await self.run(user, RemoveActivity(trip_id=trip_id, itinerary_id=itinerary_id, activity_id=activity_id))

    async def share(self, user: uuid.UUID, trip_id: uuid.UUID, other: uuid.UUID, permission: str = "view") -> None:
        await self.run(user, ShareTrip.model_validate({"trip_id": trip_id, "user_id": other, "permission": permission}))

    async def unshare(self, user: uuid.UUID, trip_id: uuid.UUID, other: uuid.UUID) -> None:
        await self.run(user, UnshareTrip(trip_id=trip_id, user_id=other))

    async def rename(self, user: uuid.UUID, name: str) -> int:
        """Change the user's display name; returns the command's xid (the consistency token)."""
        return (await self.run(user, UpdateProfile(patch=ProfilePatch(display_name=name)))).xid


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
