"""Handlers of the trip commands: create, change, delete."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import delete, exists, func, insert, or_, select, update

from commands.access import OWNER, WRITERS, claim_trip, itineraries, trips
from commands.messages import CreateTrip, DeleteTrip, UpdateTrip
from commands.payloads import NewTrip, TripPatch
from commands.records import TripRecord
from commands.unit import XID, UnitOfWork, Written, changed_fields
from core.auth import Principal
from core.db import Database
from core.direct import run_as
from core.errors import ApiError, not_found

MAX_NAMED_ITINERARIES = 20
TRIP_FIELDS = tuple(NewTrip.model_fields)
CREATE_TRIP = (
    "SELECT t.*, pg_current_xact_id()::text::bigint AS xid FROM tripsage.create_trip($1, "
    + ", ".join(f"${i}" for i in range(2, len(TRIP_FIELDS) + 2))
    + ") AS t"
)
"""`POST /api/trips` as one call (`tripsage.create_trip`, migration 0010): claims, then the trip's
fields in `NewTrip`'s order; returns the row and the transaction id."""
UPDATE_TRIP = (
    "SELECT u.*, pg_current_xact_id()::text::bigint AS xid FROM tripsage.update_trip($1, $2, $3, $4, "
    + ", ".join(f"${i}" for i in range(5, len(TRIP_FIELDS) + 5))
    + ") AS u"
)
"""The happy path of `update_trip` as one call (`tripsage.update_trip`, migration 0010): claims, trip,
If-Match version, the names of the fields sent, then every field's value (None where not sent).
Returns the row and whether it changed; no row: refused (the full path then says why)."""
assert tuple(TripPatch.model_fields) == TRIP_FIELDS, "tripsage.update_trip takes exactly NewTrip's fields"


async def create_trip(command: CreateTrip, uow: UnitOfWork) -> Written[TripRecord]:
    """Insert the trip, owned by the caller, in one statement that also returns the transaction id."""
    stmt = (
        insert(trips)
        .values(id=func.gen_random_uuid(), owner_id=uow.user_id, **command.trip.model_dump())
        .returning(*trips.c, XID)
    )
    row = (await uow.session.execute(stmt)).mappings().one()
    return Written(TripRecord.model_validate(dict(row)), int(row["xid"]))


async def create_trip_as(command: CreateTrip, db: Database, principal: Principal) -> Written[TripRecord]:
    """Create the trip in ONE round trip: a command function call outside any transaction (commits itself)."""
    values = command.trip.model_dump()
    args = [values[name] for name in TRIP_FIELDS]
    rows = await run_as(db.engine, principal, CREATE_TRIP, *args, timeouts=db.timeouts, write=True)
    row = dict(rows[0])
    xid = int(row.pop("xid"))
    return Written(TripRecord.model_validate(row), xid)


def _outside(trip_id: uuid.UUID, start: date, end: date) -> Any:
    """Itineraries of the trip whose day falls outside [start, end]."""
    return (itineraries.c.trip_id == trip_id) & or_(itineraries.c.day < start, itineraries.c.day > end)


async def _itineraries_outside(uow: UnitOfWork, trip_id: uuid.UUID, start: date, end: date) -> list[dict[str, Any]]:
    """Field errors naming the itineraries a date change would leave outside the trip."""
    stmt = (
        select(itineraries.c.id, itineraries.c.title, itineraries.c.day)
        .where(_outside(trip_id, start, end))
        .order_by(itineraries.c.day, itineraries.c.position, itineraries.c.id)
        .limit(MAX_NAMED_ITINERARIES)
    )
    rows = (await uow.session.execute(stmt)).all()
    return [
        {
            "loc": ["body", "start_date" if day < start else "end_date"],
            "msg": f"itinerary {itinerary_id} ({title}) on {day.isoformat()} falls outside the trip dates",
        }
        for itinerary_id, title, day in rows
    ]


async def update_trip(command: UpdateTrip, uow: UnitOfWork) -> Written[TripRecord]:
    """Lock the trip, merge the patch, and write only what changed (version + 1); no change, no write."""
    claim = await claim_trip(uow, command, allowed=WRITERS, action="changing this trip")
    assert claim.trip is not None
    stored = claim.trip
    given = command.patch.model_dump(exclude_unset=True)
    changes = changed_fields(stored, given)
    if not changes:
        return Written(TripRecord.model_validate(stored), claim.xid, changed=False)
    start = changes.get("start_date", stored["start_date"])
    end = changes.get("end_date", stored["end_date"])
    if end < start:
        field = "end_date" if "end_date" in given else "start_date"
        raise ApiError(
            422,
            "the request is invalid",
            errors=[{"loc": ["body", field], "msg": "end_date must not be before start_date"}],
        )
    stmt = (
        update(trips)
        .where(trips.c.id == command.trip_id)
        .values(**changes, version=trips.c.version + 1, updated_at=func.now())
        .returning(*trips.c)
    )
    dates_changed = "start_date" in changes or "end_date" in changes
    if dates_changed:
        # Checked in the UPDATE itself: the lock is held, so no itinerary can move in between.
        stmt = stmt.where(~exists().where(_outside(command.trip_id, start, end)))
    row = (await uow.session.execute(stmt)).mappings().first()
    if row is None:
        errors = await _itineraries_outside(uow, command.trip_id, start, end) if dates_changed else []
        if errors:
            raise ApiError(422, "the new dates would leave itineraries outside the trip", errors=errors)
        raise not_found("trip")  # the write policy refused the row: the permission went away meanwhile
    return Written(TripRecord.model_validate(dict(row)), claim.xid)


async def update_trip_as(command: UpdateTrip, db: Database, principal: Principal) -> Written[TripRecord] | None:
    """Change the trip in ONE round trip (a command function call that commits itself), or None when refused.

    None means nothing was written: the caller runs `update_trip` in a transaction for the exact error.
    """
    given = command.patch.model_dump(exclude_unset=True)
    args = [command.trip_id, command.expected_version, list(given), *(given.get(name) for name in TRIP_FIELDS)]
    rows = await run_as(db.engine, principal, UPDATE_TRIP, *args, timeouts=db.timeouts, write=True)
    if not rows:
        return None
    row = dict(rows[0])
    xid, changed = int(row.pop("xid")), bool(row.pop("changed"))
    return Written(TripRecord.model_validate(row), xid, changed=changed)


async def delete_trip(command: DeleteTrip, uow: UnitOfWork) -> Written[None]:
    """Lock and delete the trip (owner only); the database cascades to everything under it."""
    claim = await claim_trip(uow, command, allowed=OWNER, action="deleting this trip (only its owner may)")
    await uow.session.execute(delete(trips).where(trips.c.id == command.trip_id))
    return Written(None, claim.xid)
