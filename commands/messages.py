"""The commands: imperative messages, each carrying everything its handler needs.

A route builds one from the path, the validated body and the `If-Match` header, and hands it to
`commands.handlers.handle`. `expected_version` is the trip version an `If-Match` demanded (None:
no precondition).
"""

from __future__ import annotations

import uuid

from commands.payloads import (
    ActivityPatch,
    ItineraryPatch,
    NewActivity,
    NewItinerary,
    NewTrip,
    Permission,
    ProfilePatch,
    TripPatch,
)
from core.models import Command


class TripCommand(Command):
    """A command on an existing trip."""

    trip_id: uuid.UUID
    expected_version: int | None = None


class CreateTrip(Command):
    """Create a trip owned by the caller."""

    trip: NewTrip


class UpdateTrip(TripCommand):
    """Change some fields of a trip."""

    patch: TripPatch


class DeleteTrip(TripCommand):
    """Delete a trip and everything under it."""


class AddItinerary(TripCommand):
    """Add an itinerary to a trip."""

    itinerary: NewItinerary


class UpdateItinerary(TripCommand):
    """Change some fields of an itinerary."""

    itinerary_id: uuid.UUID
    patch: ItineraryPatch


class RemoveItinerary(TripCommand):
    """Delete an itinerary and its activities."""

    itinerary_id: uuid.UUID


class AddActivity(TripCommand):
    """Add an activity to an itinerary of a trip."""

    itinerary_id: uuid.UUID
    activity: NewActivity


class UpdateActivity(TripCommand):
    """Change some fields of an activity."""

    itinerary_id: uuid.UUID
    activity_id: uuid.UUID
    patch: ActivityPatch


class RemoveActivity(TripCommand):
    """Delete an activity."""

    itinerary_id: uuid.UUID
    activity_id: uuid.UUID


class ShareTrip(TripCommand):
    """Share a trip with a user, or change their permission."""

    user_id: uuid.UUID
    permission: Permission


class InviteCollaborator(TripCommand):
    """Share a trip with the user who signed in with an email (compared case-insensitively)."""

    email: str
    permission: Permission


class UnshareTrip(TripCommand):
    """Stop sharing a trip with a user (or leave a trip shared with you)."""

    user_id: uuid.UUID


class UpdateProfile(Command):
    """Change the caller's display name and/or preferences."""

    patch: ProfilePatch
