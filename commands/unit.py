"""The unit of work a handler runs in, and what a handler hands back.

The session's transaction already runs as the caller (role `authenticated`, their JWT claims), so
Row Level Security holds under every statement a handler sends. Nothing is committed unless the
route says so after the handler returned.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import BigInteger, Text, cast, func
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings

R = TypeVar("R")

XID = cast(cast(func.pg_current_xact_id(), Text), BigInteger).label("xid")
"""The command transaction's id, folded into a statement the handler runs anyway (no extra round trip)."""


@dataclass(frozen=True, slots=True)
class Caps:
    """How many rows a trip may hold under it (the `MAX_*` settings); over a cap a command answers 413."""

    itineraries_per_trip: int
    activities_per_itinerary: int
    activities_per_trip: int

    @classmethod
    def of(cls, settings: Settings) -> Caps:
        """The caps the settings configure."""
        return cls(
            itineraries_per_trip=settings.max_itineraries_per_trip,
            activities_per_itinerary=settings.max_activities_per_itinerary,
            activities_per_trip=settings.max_activities_per_trip,
        )


DEFAULT_CAPS = Caps.of(Settings.model_construct())
"""The settings' defaults (`model_construct` reads no environment)."""


@dataclass(frozen=True, slots=True)
class UnitOfWork:
    """One command's transaction: the caller's session, who the caller is, and the size caps in force."""

    session: AsyncSession
    user_id: uuid.UUID
    caps: Caps = field(default=DEFAULT_CAPS)


@dataclass(frozen=True, slots=True)
class Written(Generic[R]):
    """A handler's result.

    Attributes:
        record: The record as stored after the command (None when it was deleted).
        xid: The command transaction's id, for the `X-Consistency-Token`.
        changed: False when the command changed nothing (no version bump, no nudge).
    """

    record: R | None
    xid: int
    changed: bool = True


def changed_fields(stored: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The given fields whose value differs from the stored one (a PATCH that repeats values is a no-op)."""
    return {name: value for name, value in given.items() if stored[name] != value}
