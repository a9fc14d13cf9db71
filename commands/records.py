"""What commands answer: the written record as the write model holds it.

A trip command returns the trip with its `version`; a command on an itinerary, activity or
collaborator returns that record plus `trip_version`. Money is a string with 2 decimals,
timestamps are UTC (`...ffffffZ`), the same forms the TripView document uses.
"""

from __future__ import annotations

import uuid
from datetime import date

from commands.payloads import BookingStatus, ItemType, Permission, TripStatus, TripType
from core.models import Money, UtcDatetime, View


class TripRecord(View):
    """A trip as stored."""

    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str | None
    destination: str
    start_date: date
    end_date: date
    budget: Money | None
    currency: str
    travelers: int
    status: TripStatus
    trip_type: TripType
    tags: list[str]
    version: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ItineraryRecord(View):
    """An itinerary as stored, with its trip's version after the command."""

    id: uuid.UUID
    trip_id: uuid.UUID
    title: str
    day: date | None
    position: int
    created_at: UtcDatetime
    updated_at: UtcDatetime
    trip_version: int


class ActivityRecord(View):
    """An activity as stored, with its trip's version after the command."""

    id: uuid.UUID
    trip_id: uuid.UUID
    itinerary_id: uuid.UUID
    title: str
    item_type: ItemType
    starts_at: UtcDatetime | None
    ends_at: UtcDatetime | None
    location: str | None
    price: Money | None
    currency: str
    booking_status: BookingStatus
    notes: str | None
    position: int
    created_at: UtcDatetime
    updated_at: UtcDatetime
    trip_version: int


class CollaboratorRecord(View):
    """A trip's collaborator as stored, with the trip's version after the command."""

    trip_id: uuid.UUID
    user_id: uuid.UUID
    permission: Permission
    created_at: UtcDatetime
    updated_at: UtcDatetime
    trip_version: int


class PreferencesRecord(View):
    """Travel preferences; every key present (null or [] when unset)."""

    currency: str | None
    home_airport: str | None
    travel_style: str | None
    dietary_restrictions: list[str]
    accessibility_needs: list[str]


class ProfileRecord(View):
    """The caller's profile with preferences."""

    id: uuid.UUID
    email: str | None
    display_name: str
    preferences: PreferencesRecord
    created_at: UtcDatetime
    updated_at: UtcDatetime
