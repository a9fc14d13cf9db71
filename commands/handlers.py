"""The command → handler mapping: explicit, one plain `async def` per command, no discovery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from commands import activities, collaborators, itineraries, profile, trips
from commands.messages import (
    AddActivity,
    AddItinerary,
    CreateTrip,
    DeleteTrip,
    InviteCollaborator,
    RemoveActivity,
    RemoveItinerary,
    ShareTrip,
    UnshareTrip,
    UpdateActivity,
    UpdateItinerary,
    UpdateProfile,
    UpdateTrip,
)
from commands.unit import UnitOfWork, Written
from core.models import Command

Handler = Callable[[Any, UnitOfWork], Awaitable[Written[Any]]]

HANDLERS: dict[type[Command], Handler] = {
    CreateTrip: trips.create_trip,
    UpdateTrip: trips.update_trip,
    DeleteTrip: trips.delete_trip,
    AddItinerary: itineraries.add_itinerary,
    UpdateItinerary: itineraries.update_itinerary,
    RemoveItinerary: itineraries.remove_itinerary,
    AddActivity: activities.add_activity,
    UpdateActivity: activities.update_activity,
    RemoveActivity: activities.remove_activity,
    ShareTrip: collaborators.share_trip,
    InviteCollaborator: collaborators.invite_collaborator,
    UnshareTrip: collaborators.unshare_trip,
    UpdateProfile: profile.update_profile,
}


async def handle(command: Command, uow: UnitOfWork) -> Written[Any]:
    """Run the handler registered for the command's type.

    Args:
        command: The command.
        uow: The caller's unit of work (the handler writes; the caller commits).

    Returns:
        What the handler wrote.
    """
    return await HANDLERS[type(command)](command, uow)
