"""Handlers of the itinerary commands: add, change, remove (its activities go with it)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func

from commands.access import (
    WRITERS,
    Cap,
    Child,
    claim_trip,
    delete_child,
    insert_child,
    itineraries,
    update_child,
)
from commands.messages import AddItinerary, RemoveItinerary, UpdateItinerary
from commands.records import ItineraryRecord
from commands.unit import UnitOfWork, Written, changed_fields
from core.errors import ApiError

ACTION = "changing this trip"


def check_day(day: date | None, trip: dict[str, Any]) -> None:
    """422 when an itinerary's day falls outside its trip's dates."""
    if day is not None and not trip["start_date"] <= day <= trip["end_date"]:
        raise ApiError(
            422,
            "the request is invalid",
            errors=[
                {
                    "loc": ["body", "day"],
                    "msg": f"must lie within the trip's dates ({trip['start_date']} to {trip['end_date']})",
                }
            ],
        )


def _itinerary(command: UpdateItinerary | RemoveItinerary) -> Child:
    return Child(itineraries, {"id": command.itinerary_id}, "itinerary")


async def add_itinerary(command: AddItinerary, uow: UnitOfWork) -> Written[ItineraryRecord]:
    """Lock the trip, check the day, insert the itinerary within the cap and bump the trip's version in one statement."""
    claim = await claim_trip(uow, command, allowed=WRITERS, action=ACTION)
    assert claim.trip is not None
    check_day(command.itinerary.day, claim.trip)
    count = func.tripsage.count_itineraries(command.trip_id)
    cap = Cap(count, uow.caps.itineraries_per_trip, "itineraries per trip")
    row = await insert_child(uow, command.trip_id, itineraries, command.itinerary.model_dump(), [cap])
    return Written(ItineraryRecord.model_validate(row), claim.xid)


async def update_itinerary(command: UpdateItinerary, uow: UnitOfWork) -> Written[ItineraryRecord]:
    """Lock trip and itinerary, write only what changed (trip version + 1); no change, no write."""
    claim = await claim_trip(uow, command, allowed=WRITERS, action=ACTION, child=_itinerary(command))
    assert claim.trip is not None and claim.child is not None
    changes = changed_fields(claim.child, command.patch.model_dump(exclude_unset=True))
    if not changes:
        record = ItineraryRecord.model_validate(claim.child | {"trip_version": claim.trip["version"]})
        return Written(record, claim.xid, changed=False)
    if "day" in changes:
        check_day(changes["day"], claim.trip)
    row = await update_child(uow, command.trip_id, itineraries, command.itinerary_id, changes)
    return Written(ItineraryRecord.model_validate(row), claim.xid)


async def remove_itinerary(command: RemoveItinerary, uow: UnitOfWork) -> Written[None]:
    """Lock trip and itinerary, delete it (its activities cascade) and bump the trip's version."""
    claim = await claim_trip(uow, command, allowed=WRITERS, action=ACTION, child=_itinerary(command))
    await delete_child(uow, command.trip_id, itineraries, command.itinerary_id)
    return Written(None, claim.xid)
