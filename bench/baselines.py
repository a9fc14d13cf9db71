"""The read paths the query endpoints are measured against, as bench-only routes of the same app.

(a) `lazy`:  the naive async ORM path, one lazy load per relation (N+1), `awaitable_attrs`.
(b) `eager`: the original plan: selectinload chains, `TripView.model_validate(..., from_attributes=True)`,
             then pydantic JSON serialisation.
(c) `jsonagg`: ONE statement of JSON aggregation over the write model (PostgREST/Hasura style:
             json_build_object/json_agg with correlated subqueries).
(d) the production endpoints `GET /api/trips` and `GET /api/trips/{id}` (not here).
(e) `floor`: a constant response of the same size, through the same auth and the same RLS set-up
    as (d) (role and claims in one statement, one round trip), with no data read.
    `floor0` (e0) is the same without the database (auth only), for reference.

Each anchor also runs without auth and RLS: `bench/baselines_noauth.py`.

(a)-(c) run as the caller with RLS in force, through `queries.plumbing.read_transaction` (role and
claims with BEGIN in one message, the statements, COMMIT); (d) through `queries.plumbing.call_as`
(one statement: a read function that sets role and claims itself).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import Select, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload

from core.deps import ContextDep, CurrentUser
from core.errors import not_found
from core.pagination import encode_cursor
from core.schema import Itinerary, Profile, Trip, TripCollaborator, UserPreferences
from queries.plumbing import call_as, read_transaction
from queries.trips import page_body
from queries.views import TripPage, TripView

router = APIRouter(prefix="/bench", include_in_schema=False)
JSON = "application/json"
Limit = Annotated[int, Query(ge=1, le=100)]


# --- the ORM → TripView shape adapter used by (a) and (b) --------------------------------------


class _Collaborator:
    __slots__ = ("display_name", "permission", "user_id")

    def __init__(self, row: TripCollaborator, display_name: str) -> None:
        self.user_id = row.user_id
        self.permission = row.permission
        self.display_name = display_name


class _Owner:
    __slots__ = ("display_name", "id", "preferences")

    def __init__(self, profile: Profile, preferences: UserPreferences | None) -> None:
        self.id = profile.id
        self.display_name = profile.display_name
        self.preferences: UserPreferences | dict[str, Any] = preferences or {
            "currency": None,
            "home_airport": None,
            "travel_style": None,
            "dietary_restrictions": [],
            "accessibility_needs": [],
        }


class TripShape:
    """A loaded `Trip` with the TripView's computed parts (owner, collaborator names, stats)."""

    def __init__(self, trip: Trip, owner: _Owner, collaborators: list[_Collaborator]) -> None:
        """Wrap a trip whose relations are loaded."""
        self._trip = trip
        self.owner = owner
        self.collaborators = collaborators
        self.itineraries = trip.itineraries
        activities = [a for i in trip.itineraries for a in i.activities]
        totals: dict[str, Decimal] = {}
        for a in activities:
            if a.price is not None and a.booking_status != "cancelled":
                totals[a.currency] = totals.get(a.currency, Decimal(0)) + a.price
        self.stats = {
            "itinerary_count": len(trip.itineraries),
            "activity_count": len(activities),
            "total_cost": dict(sorted(totals.items())),
        }

    def __getattr__(self, name: str) -> Any:
        """Every other TripView field is the trip's own column."""
        return getattr(self._trip, name)


def shape(trip: Trip) -> TripShape:
    """Adapt a trip whose relations (owner.preferences, collaborators.user, itineraries.activities) are loaded."""
    collaborators = sorted(trip.collaborators, key=lambda c: (c.created_at, c.user_id))
    return TripShape(
        trip,
        _Owner(trip.owner, trip.owner.preferences),
        [_Collaborator(c, c.user.display_name) for c in collaborators],
    )


def visible_trips(user_id: uuid.UUID, limit: int) -> Select[Trip]:
    """Trips the user owns or collaborates on, newest first (the write-model form of the list)."""
    shared = select(TripCollaborator.trip_id).where(TripCollaborator.user_id == user_id)
    return (
        select(Trip)
        .where(or_(Trip.owner_id == user_id, Trip.id.in_(shared)))
        .order_by(Trip.updated_at.desc(), Trip.id.desc())
        .limit(limit)
    )


def _page(shapes: Sequence[TripShape], limit: int) -> bytes:
    """(a)/(b): validate the ORM objects through the pydantic models, then serialise."""
    items = shapes[:limit]
    cursor = encode_cursor(items[-1].updated_at.isoformat(), str(items[-1].id)) if len(shapes) > limit else None
    page = TripPage.model_validate({"items": items, "next_cursor": cursor}, from_attributes=True)
    return page.model_dump_json().encode()


# --- (a) lazy loading, N+1 ------------------------------------------------------------------------


async def _lazy_shape(trip: Trip) -> TripShape:
    owner = await trip.awaitable_attrs.owner
    await owner.awaitable_attrs.preferences
    for collaborator in await trip.awaitable_attrs.collaborators:
        await collaborator.awaitable_attrs.user
    for itinerary in await trip.awaitable_attrs.itineraries:
        await itinerary.awaitable_attrs.activities
    return shape(trip)


async def lazy_list(conn: AsyncConnection, user_id: uuid.UUID, limit: int) -> bytes:
    """(a) the list: one query for the trips, then one per relation per object."""
    async with AsyncSession(bind=conn) as session:
        trips = (await session.scalars(visible_trips(user_id, limit + 1))).all()
        return _page([await _lazy_shape(t) for t in trips], limit)


async def lazy_one(conn: AsyncConnection, trip_id: uuid.UUID) -> bytes | None:
    """(a) one trip."""
    async with AsyncSession(bind=conn) as session:
        trip = await session.get(Trip, trip_id)
        if trip is None:
            return None
        return TripView.model_validate(await _lazy_shape(trip), from_attributes=True).model_dump_json().encode()


# --- (b) eager loading (selectinload) + pydantic -----------------------------------------------

EAGER = (
    selectinload(Trip.owner).selectinload(Profile.preferences),
    selectinload(Trip.itineraries).selectinload(Itinerary.activities),
    selectinload(Trip.collaborators).selectinload(TripCollaborator.user),
)


async def eager_list(conn: AsyncConnection, user_id: uuid.UUID, limit: int) -> bytes:
    """(b) the list: one query per relation level, pydantic validation and serialisation."""
    async with AsyncSession(bind=conn) as session:
        trips = (await session.scalars(visible_trips(user_id, limit + 1).options(*EAGER))).all()
        return _page([shape(t) for t in trips], limit)


async def eager_one(conn: AsyncConnection, trip_id: uuid.UUID) -> bytes | None:
    """(b) one trip."""
    async with AsyncSession(bind=conn) as session:
        trip = (await session.scalars(select(Trip).where(Trip.id == trip_id).options(*EAGER))).first()
        if trip is None:
            return None
        return TripView.model_validate(shape(trip), from_attributes=True).model_dump_json().encode()


# --- (c) one statement of JSON aggregation over the write model ---------------------------------

TS = '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\''
JSONAGG_DOC = f"""
json_build_object(
  'id', t.id, 'title', t.title, 'description', t.description, 'destination', t.destination,
  'start_date', t.start_date, 'end_date', t.end_date, 'budget', t.budget::text, 'currency', t.currency,
  'travelers', t.travelers, 'status', t.status, 'trip_type', t.trip_type, 'tags', t.tags, 'version', t.version,
  'created_at', to_char(t.created_at AT TIME ZONE 'UTC', {TS}),
  'updated_at', to_char(t.updated_at AT TIME ZONE 'UTC', {TS}),
  'owner', (SELECT json_build_object('id', p.id, 'display_name', p.display_name, 'preferences', json_build_object(
              'currency', u.currency, 'home_airport', u.home_airport, 'travel_style', u.travel_style,
              'dietary_restrictions', coalesce(u.dietary_restrictions, '{{}}'),
              'accessibility_needs', coalesce(u.accessibility_needs, '{{}}')))
            FROM profiles p LEFT JOIN user_preferences u ON u.user_id = p.id WHERE p.id = t.owner_id),
  'collaborators', (SELECT coalesce(json_agg(json_build_object(
                      'user_id', c.user_id, 'display_name', p.display_name, 'permission', c.permission)
                      ORDER BY c.created_at, c.user_id), '[]')
                    FROM trip_collaborators c JOIN profiles p ON p.id = c.user_id WHERE c.trip_id = t.id),
  'itineraries', (SELECT coalesce(json_agg(json_build_object(
                    'id', i.id, 'title', i.title, 'day', i.day, 'position', i.position,
                    'activities', (SELECT coalesce(json_agg(json_build_object(
                        'id', a.id, 'title', a.title, 'item_type', a.item_type,
                        'starts_at', to_char(a.starts_at AT TIME ZONE 'UTC', {TS}),
                        'ends_at', to_char(a.ends_at AT TIME ZONE 'UTC', {TS}),
                        'location', a.location, 'price', a.price::text, 'currency', a.currency,
                        'booking_status', a.booking_status, 'notes', a.notes, 'position', a.position)
                        ORDER BY a.position, a.created_at, a.id), '[]')
                      FROM activities a WHERE a.itinerary_id = i.id))
                    ORDER BY i.position, i.created_at, i.id), '[]')
                  FROM itineraries i WHERE i.trip_id = t.id),
  'stats', json_build_object(
    'itinerary_count', (SELECT count(*) FROM itineraries i WHERE i.trip_id = t.id),
    'activity_count', (SELECT count(*) FROM activities a WHERE a.trip_id = t.id),
    'total_cost', (SELECT coalesce(json_object_agg(s.currency, s.total::text ORDER BY s.currency), '{{}}')
                   FROM (SELECT a.currency, sum(a.price) AS total FROM activities a
                         WHERE a.trip_id = t.id AND a.price IS NOT NULL AND a.booking_status <> 'cancelled'
                         GROUP BY a.currency) s))
)"""

JSONAGG_LIST = text(
    f"""
    SELECT t.updated_at, t.id, convert_to({JSONAGG_DOC}::text, 'UTF8')
    FROM trips t
    WHERE t.owner_id = :user_id
       OR t.id IN (SELECT c.trip_id FROM trip_collaborators c WHERE c.user_id = :user_id)
    ORDER BY t.updated_at DESC, t.id DESC
    LIMIT :limit
    """
)
"""(c) the list: the page of trips and each one's whole document, built by correlated subqueries."""

JSONAGG_ONE = text(f"SELECT convert_to({JSONAGG_DOC}::text, 'UTF8') FROM trips t WHERE t.id = :trip_id")
"""(c) one trip's document."""


async def jsonagg_list(conn: AsyncConnection, user_id: uuid.UUID, limit: int) -> bytes:
    """(c) the list: one statement, documents joined into the envelope like (d)."""
    rows = (await conn.execute(JSONAGG_LIST, {"user_id": user_id, "limit": limit + 1})).all()
    cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last: datetime = rows[-1][0]
        cursor = encode_cursor(last.isoformat(), str(rows[-1][1]))
    return page_body([row[2] for row in rows], cursor)


async def jsonagg_one(conn: AsyncConnection, trip_id: uuid.UUID) -> bytes | None:
    """(c) one trip's document (None when absent)."""
    body: bytes | None = (await conn.execute(JSONAGG_ONE, {"trip_id": trip_id})).scalar()
    return body


# --- the routes -------------------------------------------------------------------------------


class Floor:
    """The constant bodies of (e), set by the benchmark to the size of (d)'s responses."""

    list_body = b"{}"
    one_body = b"{}"


@router.get("/a/trips")
async def a_list(ctx: ContextDep, user: CurrentUser, limit: Limit = 20) -> Response:
    """(a) lazy ORM list."""
    assert user.user_id is not None
    async with read_transaction(ctx.db.read_engine, user) as conn:
        return Response(await lazy_list(conn, user.user_id, limit), media_type=JSON)


@router.get("/a/trips/{trip_id}")
async def a_one(ctx: ContextDep, user: CurrentUser, trip_id: uuid.UUID) -> Response:
    """(a) lazy ORM single trip."""
    async with read_transaction(ctx.db.read_engine, user) as conn:
        body = await lazy_one(conn, trip_id)
    if body is None:
        raise not_found("trip")
    return Response(body, media_type=JSON)


@router.get("/b/trips")
async def b_list(ctx: ContextDep, user: CurrentUser, limit: Limit = 20) -> Response:
    """(b) eager ORM list."""
    assert user.user_id is not None
    async with read_transaction(ctx.db.read_engine, user) as conn:
        return Response(await eager_list(conn, user.user_id, limit), media_type=JSON)


@router.get("/b/trips/{trip_id}")
async def b_one(ctx: ContextDep, user: CurrentUser, trip_id: uuid.UUID) -> Response:
    """(b) eager ORM single trip."""
    async with read_transaction(ctx.db.read_engine, user) as conn:
        body = await eager_one(conn, trip_id)
    if body is None:
        raise not_found("trip")
    return Response(body, media_type=JSON)


@router.get("/c/trips")
async def c_list(ctx: ContextDep, user: CurrentUser, limit: Limit = 20) -> Response:
    """(c) JSON aggregation list."""
    assert user.user_id is not None
    async with read_transaction(ctx.db.read_engine, user) as conn:
        return Response(await jsonagg_list(conn, user.user_id, limit), media_type=JSON)


@router.get("/c/trips/{trip_id}")
async def c_one(ctx: ContextDep, user: CurrentUser, trip_id: uuid.UUID) -> Response:
    """(c) JSON aggregation single trip."""
    async with read_transaction(ctx.db.read_engine, user) as conn:
        body = await jsonagg_one(conn, trip_id)
    if body is None:
        raise not_found("trip")
    return Response(body, media_type=JSON)


FLOOR_SQL = "SELECT set_config('role', 'tripsage_api', true), set_config('request.jwt.claims', $1, true)"
"""What (d)'s read function does before its query: role and claims for the statement, one round trip."""


@router.get("/e/trips")
async def e_list(ctx: ContextDep, user: CurrentUser) -> Response:
    """(e) the floor for the list: the same auth and RLS set-up as (d) (one round trip), a constant body."""
    await call_as(ctx.db.read_engine, user, FLOOR_SQL)
    return Response(Floor.list_body, media_type=JSON)


@router.get("/e/trips/{trip_id}")
async def e_one(ctx: ContextDep, user: CurrentUser, trip_id: uuid.UUID) -> Response:  # noqa: ARG001  # pylint: disable=unused-argument  # same path as (d)
    """(e) the floor for one trip."""
    await call_as(ctx.db.read_engine, user, FLOOR_SQL)
    return Response(Floor.one_body, media_type=JSON)


@router.get("/e0/trips")
async def e0_list(user: CurrentUser) -> Response:  # noqa: ARG001  # pylint: disable=unused-argument  # auth only
    """(e0) the list's constant body, auth only (no database), for reference."""
    return Response(Floor.list_body, media_type=JSON)


@router.get("/e0/trips/{trip_id}")
async def e0_one(user: CurrentUser, trip_id: uuid.UUID) -> Response:  # noqa: ARG001  # pylint: disable=unused-argument  # auth only
    """(e0) one trip's constant body, auth only (no database), for reference."""
    return Response(Floor.one_body, media_type=JSON)
