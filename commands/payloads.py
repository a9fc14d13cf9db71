"""Request bodies of the write side: strict, partial where the verb is PATCH, NUL-free.

A body model validates one request on its own (lengths, ranges, enums, field order rules); rules
that need stored state (a PATCH's dates against the stored ones, an itinerary's day against the
trip) are the handlers' job. PATCH bodies are partial: only the fields sent change, an explicit
`null` clears a nullable field and is refused (422) for the others.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator
from pydantic_extra_types.currency_code import ISO4217

from core.models import INTEGRAL, Command, Currency, JsonDate, JsonDatetime, Money, SafeStr, drop_null_branch

MAX_TAGS = 20
Title = Annotated[SafeStr, Field(min_length=1, max_length=200)]
Description = Annotated[SafeStr, Field(max_length=2000)]
Position = Annotated[int, Field(strict=True, ge=0, le=100_000), INTEGRAL]
Travelers = Annotated[int, Field(strict=True, ge=1, le=1000), INTEGRAL]
TripStatus = Literal["planning", "booked", "in_progress", "completed", "cancelled"]
TripType = Literal["leisure", "business", "family", "solo", "other"]
ItemType = Literal["activity", "meal", "transport", "accommodation", "event", "other"]
BookingStatus = Literal["planned", "reserved", "booked", "completed", "cancelled"]
Permission = Literal["view", "edit", "admin"]
Location = Annotated[SafeStr, Field(max_length=500)]
Notes = Annotated[SafeStr, Field(max_length=5000)]


def _merge_tags(tags: list[str]) -> list[str]:
    merged = list(dict.fromkeys(tags))
    if len(merged) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} distinct tags")
    return merged


Tags = Annotated[
    list[Annotated[SafeStr, Field(min_length=1, max_length=50)]],
    Field(max_length=1000),
    AfterValidator(_merge_tags),
]
"""Up to 20 tags of 1–50 characters; duplicates merged, first occurrence and order kept."""


def _not_before(value: Any, info: ValidationInfo, earlier: str) -> Any:
    """Refuse `value` when it lies before the already validated field `earlier` (both given)."""
    start = info.data.get(earlier)
    if value is not None and start is not None and value < start:
        raise ValueError(f"must not be before {earlier}")
    return value


KEEP = Field(json_schema_extra=drop_null_branch)
"""Marks a PATCH field that may be left out but not cleared (`Annotated[X | None, KEEP] = None`):
`null` is refused (422) and the OpenAPI document says so (no `null` branch)."""


def _present(value: Any) -> Any:
    """Refuse an explicit null for a field that cannot be cleared."""
    if value is None:
        raise ValueError("must not be null")
    return value


class NewTrip(Command):
    """The fields of a new trip (defaults as in the contract)."""

    title: Title
    description: Description | None = None
    destination: Title
    start_date: JsonDate
    end_date: JsonDate
    budget: Money | None = None
    currency: Currency = ISO4217("USD")
    travelers: Travelers = 1
    status: TripStatus = "planning"
    trip_type: TripType = "leisure"
    tags: Tags = []

    @field_validator("end_date")
    @classmethod
    def _dates_ordered(cls, value: JsonDate, info: ValidationInfo) -> JsonDate:
        return _not_before(value, info, "start_date")  # type: ignore[no-any-return]


class TripPatch(Command):
    """A partial change of a trip: only the fields sent change."""

    title: Annotated[Title | None, KEEP] = None
    description: Description | None = None
    destination: Annotated[Title | None, KEEP] = None
    start_date: Annotated[JsonDate | None, KEEP] = None
    end_date: Annotated[JsonDate | None, KEEP] = None
    budget: Money | None = None
    currency: Annotated[Currency | None, KEEP] = None
    travelers: Annotated[Travelers | None, KEEP] = None
    status: Annotated[TripStatus | None, KEEP] = None
    trip_type: Annotated[TripType | None, KEEP] = None
    tags: Annotated[Tags | None, KEEP] = None

    _required = field_validator(
        "title", "destination", "start_date", "end_date", "currency", "travelers", "status", "trip_type", "tags"
    )(_present)

    @field_validator("end_date")
    @classmethod
    def _dates_ordered(cls, value: JsonDate | None, info: ValidationInfo) -> JsonDate | None:
        return _not_before(value, info, "start_date")  # type: ignore[no-any-return]


class NewItinerary(Command):
    """A new itinerary (a day or section) of a trip."""

    title: Title
    day: JsonDate | None = None
    position: Position = 0


class ItineraryPatch(Command):
    """A partial change of an itinerary."""

    title: Annotated[Title | None, KEEP] = None
    day: JsonDate | None = None
    position: Annotated[Position | None, KEEP] = None

    _required = field_validator("title", "position")(_present)


class NewActivity(Command):
    """A new activity; `currency` defaults to the trip's."""

    title: Title
    item_type: ItemType = "activity"
    starts_at: JsonDatetime | None = None
    ends_at: JsonDatetime | None = None
    location: Location | None = None
    price: Money | None = None
    currency: Currency | None = None
    booking_status: BookingStatus = "planned"
    notes: Notes | None = None
    position: Position = 0

    @field_validator("ends_at")
    @classmethod
    def _times_ordered(cls, value: JsonDatetime | None, info: ValidationInfo) -> JsonDatetime | None:
        return _not_before(value, info, "starts_at")  # type: ignore[no-any-return]


class ActivityPatch(Command):
    """A partial change of an activity."""

    title: Annotated[Title | None, KEEP] = None
    item_type: Annotated[ItemType | None, KEEP] = None
    starts_at: JsonDatetime | None = None
    ends_at: JsonDatetime | None = None
    location: Location | None = None
    price: Money | None = None
    currency: Annotated[Currency | None, KEEP] = None
    booking_status: Annotated[BookingStatus | None, KEEP] = None
    notes: Notes | None = None
    position: Annotated[Position | None, KEEP] = None

    _required = field_validator("title", "item_type", "currency", "booking_status", "position")(_present)

    @field_validator("ends_at")
    @classmethod
    def _times_ordered(cls, value: JsonDatetime | None, info: ValidationInfo) -> JsonDatetime | None:
        return _not_before(value, info, "starts_at")  # type: ignore[no-any-return]


class CollaboratorGrant(Command):
    """The permission a collaborator gets on a trip."""

    permission: Permission


class CollaboratorInvite(Command):
    """Who to share a trip with, by the email they signed in with, and the permission they get."""

    email: Annotated[SafeStr, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
    permission: Permission


ListItem = Annotated[SafeStr, Field(min_length=1, max_length=200)]
Airport = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]  # the pattern (documented) excludes NUL too


class PreferencesPatch(Command):
    """A partial change of the caller's travel preferences (null clears; null lists become [])."""

    currency: Currency | None = None
    home_airport: Airport | None = None
    travel_style: Annotated[SafeStr, Field(max_length=50)] | None = None
    dietary_restrictions: Annotated[list[ListItem], Field(max_length=50)] | None = None
    accessibility_needs: Annotated[list[ListItem], Field(max_length=50)] | None = None


DisplayName = Annotated[SafeStr, Field(min_length=1, max_length=100)]


class ProfilePatch(Command):
    """A partial change of the caller's profile."""

    display_name: Annotated[DisplayName | None, KEEP] = None
    preferences: Annotated[PreferencesPatch | None, KEEP] = None

    _required = field_validator("display_name", "preferences")(_present)
