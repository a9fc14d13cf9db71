"""Response models of the query endpoints: the TripView document and the profile, for OpenAPI.

The hot path never runs these models: a TripView is projected once into `trip_views.doc` and sent
as stored bytes. The models describe that document precisely (field order = key order of the
stored JSON) so the OpenAPI document is exact, and the benchmark's eager-loading baseline validates
ORM objects through them to show what the projection saves.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Header
from pydantic import Field, WithJsonSchema

from core.models import Currency, Money, UtcDatetime, View

Timestamp = Annotated[UtcDatetime, WithJsonSchema({"type": "string", "format": "date-time"})]
"""A UTC timestamp, `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
Amount = Annotated[Money, WithJsonSchema({"type": "string", "pattern": r"^\d+\.\d{2}$", "examples": ["1250.00"]})]
"""Money as a JSON string with exactly two decimals."""

TripStatus = Literal["planning", "booked", "in_progress", "completed", "cancelled"]
TripType = Literal["leisure", "business", "family", "solo", "other"]
Permission = Literal["view", "edit", "admin"]
ItemType = Literal["activity", "meal", "transport", "accommodation", "event", "other"]
BookingStatus = Literal["planned", "reserved", "booked", "completed", "cancelled"]
TripRole = Literal["owner", "shared"]


class PreferencesView(View):
    """A user's travel preferences; every key is present, unset values are null or `[]`."""

    currency: Currency | None
    home_airport: str | None = Field(description="IATA airport code (3 letters)")
    travel_style: str | None
    dietary_restrictions: list[str]
    accessibility_needs: list[str]


class OwnerView(View):
    """The trip's owner as shown in a TripView."""

    id: uuid.UUID
    display_name: str
    preferences: PreferencesView


class CollaboratorView(View):
    """A person the trip is shared with (ordered by when they were added)."""

    user_id: uuid.UUID
    display_name: str
    permission: Permission


class ActivityView(View):
    """An activity of an itinerary (ordered by position, then creation)."""

    id: uuid.UUID
    title: str
    item_type: ItemType
    starts_at: Timestamp | None
    ends_at: Timestamp | None
    location: str | None
    price: Amount | None
    currency: Currency
    booking_status: BookingStatus
    notes: str | None
    position: int


class ItineraryView(View):
    """An itinerary of a trip with its activities (ordered by position, then creation)."""

    id: uuid.UUID
    title: str
    day: date | None
    position: int
    activities: list[ActivityView]


class TripStatsView(View):
    """Counts, and per currency the sum of the prices of activities that are not cancelled."""

    itinerary_count: int
    activity_count: int
    total_cost: dict[str, Amount] = Field(
        description='Per ISO 4217 currency, e.g. `{"USD": "1250.00"}`; `{}` when none'
    )


class TripView(View):
    """A trip with everything shown about it: the document served by `GET /api/trips[/{id}]`."""

    id: uuid.UUID
    title: str
    description: str | None
    destination: str
    start_date: date
    end_date: date
    budget: Amount | None
    currency: Currency
    travelers: int
    status: TripStatus
    trip_type: TripType
    tags: list[str]
    version: int
    created_at: Timestamp
    updated_at: Timestamp
    owner: OwnerView
    collaborators: list[CollaboratorView]
    itineraries: list[ItineraryView]
    stats: TripStatsView


class TripPage(View):
    """One page of the trip list, newest `updated_at` first."""

    items: list[TripView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class ProfileView(View):
    """The caller's profile and preferences."""

    id: uuid.UUID
    email: str | None
    display_name: str
    preferences: PreferencesView
    created_at: Timestamp
    updated_at: Timestamp


CONSISTENCY_TOKEN = "X-Consistency-Token"
CONSISTENCY_TOKEN_PATTERN = r"^v1\.[0-9]{1,18}$"
CONSISTENCY_TOKEN_DOC = "A command's consistency token: wait (bounded) until the read model includes that write"
ConsistencyToken = Annotated[
    str | None,
    Header(alias=CONSISTENCY_TOKEN, pattern=CONSISTENCY_TOKEN_PATTERN, description=CONSISTENCY_TOKEN_DOC),
]


FRESHNESS_HEADER_DOC: dict[str, Any] = {
    "X-Consistency": {
        "description": "With `X-Consistency-Token`: `fresh` when the answer includes that write, else `stale`",
        "schema": {"type": "string", "enum": ["fresh", "stale"]},
    }
}
