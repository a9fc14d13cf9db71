"""Handlers of the activity commands: add, change, remove.

An activity is addressed through its trip and itinerary; an itinerary of another trip, or an
activity of another itinerary, is not found (404).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func

from commands.access import (
    WRITERS,
    Cap,
    Child,
    activities,
    claim_trip,
    delete_child,
    insert_child,
    itineraries,
    update_child,
)
from commands.messages import AddActivity, RemoveActivity, UpdateActivity
from commands.payloads import NewActivity
from commands.records import ActivityRecord
from commands.unit import Caps, UnitOfWork, Written, changed_fields
from core.auth import Principal
from core.db import Database
from core.direct import run_as
from core.errors import ApiError

ACTION = "changing this trip"
ACTIVITY_FIELDS = tuple(NewActivity.model_fields)
ADD_ACTIVITY = (
    "SELECT a.*, pg_current_xact_id()::text::bigint AS xid FROM tripsage.add_activity($1, "
    + ", ".join(f"${i}" for i in range(2, len(ACTIVITY_FIELDS) + 7))
    + ") AS a"
)
"""The happy path of `add_activity` as one call (`tripsage.add_activity`, migration 0010): claims,
trip, itinerary, If-Match version, the two caps, then the activity's fields in `NewActivity`'s
order. No row: refused or over a cap, nothing changed (the full path then says why)."""


def _activity(command: UpdateActivity | RemoveActivity) -> Child:
    return Child(activities, {"id": command.activity_id, "itinerary_id": command.itinerary_id}, "activity")


def check_times(starts_at: datetime | None, ends_at: datetime | None, given: set[str]) -> None:
    """422 when the merged times end before they start (named after the field the request sent)."""
    if starts_at is not None and ends_at is not None and ends_at < starts_at:
        field = "ends_at" if "ends_at" in given else "starts_at"
        raise ApiError(
            422,
            "the request is invalid",
            errors=[{"loc": ["body", field], "msg": "ends_at must not be before starts_at"}],
        )


async def add_activity(command: AddActivity, uow: UnitOfWork) -> Written[ActivityRecord]:
    """Lock trip and itinerary, insert the activity within the caps (currency defaults to the trip's), bump the version."""
    parent = Child(itineraries, {"id": command.itinerary_id}, "itinerary")
    claim = await claim_trip(uow, command, allowed=WRITERS, action=ACTION, child=parent)
    assert claim.trip is not None
    values = command.activity.model_dump()
    values["currency"] = values["currency"] or claim.trip["currency"]
    per_itinerary = func.tripsage.count_activities(command.trip_id, command.itinerary_id)
    per_trip = func.tripsage.count_activities(command.trip_id, None)
    caps = [
        Cap(per_itinerary, uow.caps.activities_per_itinerary, "activities per itinerary"),
        Cap(per_trip, uow.caps.activities_per_trip, "activities per trip"),
    ]
    row = await insert_child(uow, command.trip_id, activities, {"itinerary_id": command.itinerary_id, **values}, caps)
    return Written(ActivityRecord.model_validate(row), claim.xid)


async def add_activity_as(
    command: AddActivity, db: Database, principal: Principal, caps: Caps
) -> Written[ActivityRecord] | None:
    """Add the activity in ONE round trip (a command function call that commits itself), or None when refused.

    None means nothing was written: the caller runs `add_activity` in a transaction for the exact error.
    """
    values = command.activity.model_dump()
    args = [command.trip_id, command.itinerary_id, command.expected_version]
    args += [caps.activities_per_itinerary, caps.activities_per_trip, *(values[name] for name in ACTIVITY_FIELDS)]
    rows = await run_as(db.engine, principal, ADD_ACTIVITY, *args, timeouts=db.timeouts, write=True)
    if not rows:
        return None
    row = dict(rows[0])
    xid = int(row.pop("xid"))
    return Written(ActivityRecord.model_validate(row), xid)


async def update_activity(command: UpdateActivity, uow: UnitOfWork) -> Written[ActivityRecord]:
    """Lock trip and activity, write only what changed (trip version + 1); no change, no write."""
    claim = await claim_trip(uow, command, allowed=WRITERS, action=ACTION, child=_activity(command))
    assert claim.trip is not None and claim.child is not None
    stored = claim.child
    given = command.patch.model_dump(exclude_unset=True)
    changes = changed_fields(stored, given)
    if not changes:
        record = ActivityRecord.model_validate(stored | {"trip_version": claim.trip["version"]})
        return Written(record, claim.xid, changed=False)
    check_times(changes.get("starts_at", stored["starts_at"]), changes.get("ends_at", stored["ends_at"]), set(given))
    row = await update_child(uow, command.trip_id, activities, command.activity_id, changes)
    return Written(ActivityRecord.model_validate(row), claim.xid)


async def remove_activity(command: RemoveActivity, uow: UnitOfWork) -> Written[None]:
    """Lock trip and activity, delete it and bump the trip's version."""
    claim = await claim_trip(uow, command, allowed=WRITERS, action=ACTION, child=_activity(command))
    await delete_child(uow, command.trip_id, activities, command.activity_id)
    return Written(None, claim.xid)
