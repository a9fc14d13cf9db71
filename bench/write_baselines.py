"""The write paths the commands are measured against, as bench-only routes of the same app.

(o) `orm`: the original plan's write path: an `AsyncSession`, `add` (or `get` + setattr), `commit`,
    `refresh` with the eager-loaded relations, then the response through pydantic
    (`from_attributes`). Two variants of it: **with** the same auth and RLS as the commands
    (`CurrentUser`, `Database.request_session`: role `tripsage_api` + claims) and **without** either
    (the login role, the user id fixed by the bench): what a user who skips them would run.
(k) `core`: ONE Core `INSERT/UPDATE … RETURNING` per request on `engine.begin()`, no auth, no RLS,
    no version bump: the floor of a write through SQLAlchemy.

The bodies are the commands' own payload models, so every variant parses and validates the same
JSON; every variant answers with the same record models the commands answer with. Never in
production: only `bench.write_bench` mounts this router.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from commands.access import activities, trips
from commands.payloads import NewActivity, NewTrip, TripPatch
from commands.records import ActivityRecord, TripRecord
from core.auth import Principal
from core.deps import AppContext, ContextDep, CurrentUser
from core.errors import not_found
from core.schema import Activity, Itinerary, Trip

router = APIRouter(prefix="/bench/w", include_in_schema=False)
JSON = "application/json"
ITINERARY = "/trips/{trip_id}/itineraries/{itinerary_id}/activities"


class Anchor:
    """The user the no-auth variants act for (set by the benchmark)."""

    user_id = uuid.UUID(int=0)


@asynccontextmanager
async def orm_session(ctx: AppContext, user: Principal | None) -> AsyncIterator[AsyncSession]:
    """With a user: the commands' own unit of work (role + claims, RLS). Without: the login role."""
    if user is not None:
        async with ctx.db.request_session(user) as session:
            yield session
    else:
        async with ctx.db.sessionmaker() as session:
            yield session


def _json(model: Any, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type=JSON)


async def _orm_create(ctx: AppContext, user: Principal | None, body: NewTrip) -> Response:
    async with orm_session(ctx, user) as session:
        owner = user.user_id if user else Anchor.user_id
        trip = Trip(owner_id=owner, version=1, created_at=func.now(), updated_at=func.now(), **body.model_dump())
        session.add(trip)
        await session.commit()
        await session.refresh(trip, ["itineraries", "collaborators"])
        await session.refresh(trip)
        return _json(TripRecord.model_validate(trip), 201)


async def _orm_patch(ctx: AppContext, user: Principal | None, trip_id: uuid.UUID, body: TripPatch) -> Response:
    async with orm_session(ctx, user) as session:
        eager = (selectinload(Trip.itineraries), selectinload(Trip.collaborators))
        trip = await session.get(Trip, trip_id, options=eager, with_for_update=True)
        if trip is None:
            raise not_found("trip")
        for name, value in body.model_dump(exclude_unset=True).items():
            setattr(trip, name, value)
        trip.version += 1
        await session.commit()
        await session.refresh(trip)
        return _json(TripRecord.model_validate(trip))


async def _orm_activity(
    ctx: AppContext, user: Principal | None, trip_id: uuid.UUID, itinerary_id: uuid.UUID, body: NewActivity
) -> Response:
    async with orm_session(ctx, user) as session:
        trip = await session.get(Trip, trip_id, with_for_update=True)
        itinerary = await session.get(Itinerary, itinerary_id, options=(selectinload(Itinerary.activities),))
        if trip is None or itinerary is None or itinerary.trip_id != trip_id:
            raise not_found("itinerary")
        values = body.model_dump()
        values["currency"] = values["currency"] or trip.currency
        activity = Activity(
            trip_id=trip_id, itinerary_id=itinerary_id, created_at=func.now(), updated_at=func.now(), **values
        )
        session.add(activity)
        trip.version += 1
        await session.commit()
        await session.refresh(activity)
        await session.refresh(trip)
        record = {c.key: getattr(activity, c.key) for c in Activity.__table__.columns} | {"trip_version": trip.version}
        return _json(ActivityRecord.model_validate(record), 201)


# --- (o) the ORM path, with auth and RLS ------------------------------------------------------------


@router.post("/orm/trips", status_code=201)
async def orm_create(ctx: ContextDep, user: CurrentUser, body: NewTrip) -> Response:
    """(o) create a trip: add, commit, refresh with relations, pydantic; as the caller under RLS."""
    return await _orm_create(ctx, user, body)


@router.patch("/orm/trips/{trip_id}")
async def orm_patch(ctx: ContextDep, user: CurrentUser, trip_id: uuid.UUID, body: TripPatch) -> Response:
    """(o) patch a trip: get with relations, setattr, version + 1, commit, refresh; under RLS."""
    return await _orm_patch(ctx, user, trip_id, body)


@router.post("/orm" + ITINERARY, status_code=201)
async def orm_activity(
    ctx: ContextDep, user: CurrentUser, trip_id: uuid.UUID, itinerary_id: uuid.UUID, body: NewActivity
) -> Response:
    """(o) add an activity: get trip and itinerary, add, version + 1, commit, refresh; under RLS."""
    return await _orm_activity(ctx, user, trip_id, itinerary_id, body)


# --- (o0) the ORM path without auth or RLS -------------------------------------------------------


@router.post("/orm0/trips", status_code=201)
async def orm0_create(ctx: ContextDep, body: NewTrip) -> Response:
    """(o0) create a trip, ORM path, no auth, no RLS."""
    return await _orm_create(ctx, None, body)


@router.patch("/orm0/trips/{trip_id}")
async def orm0_patch(ctx: ContextDep, trip_id: uuid.UUID, body: TripPatch) -> Response:
    """(o0) patch a trip, ORM path, no auth, no RLS."""
    return await _orm_patch(ctx, None, trip_id, body)


@router.post("/orm0" + ITINERARY, status_code=201)
async def orm0_activity(ctx: ContextDep, trip_id: uuid.UUID, itinerary_id: uuid.UUID, body: NewActivity) -> Response:
    """(o0) add an activity, ORM path, no auth, no RLS."""
    return await _orm_activity(ctx, None, trip_id, itinerary_id, body)


# --- (k0) one Core statement, no auth, no RLS --------------------------------------------------------


async def _core_one(request: Request, stmt: Any, model: type[Any], status: int) -> Response:
    ctx: AppContext = request.app.state.ctx
    async with ctx.db.engine.begin() as conn:
        row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        raise not_found("trip")
    return _json(model.model_validate(dict(row)), status)


@router.post("/core0/trips", status_code=201)
async def core0_create(request: Request, body: NewTrip) -> Response:
    """(k0) `INSERT … RETURNING`, one statement, no auth, no RLS."""
    stmt = insert(trips).values(owner_id=Anchor.user_id, **body.model_dump()).returning(*trips.c)
    return await _core_one(request, stmt, TripRecord, 201)


@router.patch("/core0/trips/{trip_id}")
async def core0_patch(request: Request, trip_id: uuid.UUID, body: TripPatch) -> Response:
    """(k0) `UPDATE … RETURNING`, one statement, no auth, no RLS."""
    stmt = (
        update(trips)
        .where(trips.c.id == trip_id)
        .values(**body.model_dump(exclude_unset=True), version=trips.c.version + 1)
        .returning(*trips.c)
    )
    return await _core_one(request, stmt, TripRecord, 200)


@router.post("/core0" + ITINERARY, status_code=201)
async def core0_activity(request: Request, trip_id: uuid.UUID, itinerary_id: uuid.UUID, body: NewActivity) -> Response:
    """(k0) `INSERT … RETURNING` of the activity, one statement, no auth, no RLS, no version bump."""
    values = body.model_dump()
    values["currency"] = values["currency"] or "USD"
    stmt = (
        insert(activities)
        .values(trip_id=trip_id, itinerary_id=itinerary_id, **values)
        .returning(
            *activities.c, select(trips.c.version).where(trips.c.id == trip_id).scalar_subquery().label("trip_version")
        )
    )
    return await _core_one(request, stmt, ActivityRecord, 201)
