"""ORM mapping of the write model (the tables themselves are created by the Alembic migrations).

Commands mostly use Core statements on these tables; the relationships exist for the eager-loading
baselines in `bench/` and for tests. `AsyncAttrs` lets a baseline await a lazy relation.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ARRAY, BigInteger, Date, DateTime, ForeignKey, Integer, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(AsyncAttrs, DeclarativeBase):
    """Declarative base of the write model."""


class Profile(Base):
    """A user who has signed in at least once."""

    __tablename__ = "profiles"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email: Mapped[str | None] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    preferences: Mapped[UserPreferences | None] = relationship(back_populates="profile", uselist=False)


class UserPreferences(Base):
    """A profile's travel preferences (1:1)."""

    __tablename__ = "user_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("profiles.id"), primary_key=True)
    currency: Mapped[str | None] = mapped_column(String(3))
    home_airport: Mapped[str | None] = mapped_column(String(3))
    travel_style: Mapped[str | None] = mapped_column(Text)
    dietary_restrictions: Mapped[list[str]] = mapped_column(ARRAY(Text))
    accessibility_needs: Mapped[list[str]] = mapped_column(ARRAY(Text))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    profile: Mapped[Profile] = relationship(back_populates="preferences")


class Trip(Base):
    """A trip: the aggregate root of the write side."""

    __tablename__ = "trips"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid())
    owner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("profiles.id"))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    destination: Mapped[str] = mapped_column(Text)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    budget: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    travelers: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text)
    trip_type: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text))
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    owner: Mapped[Profile] = relationship()
    collaborators: Mapped[list[TripCollaborator]] = relationship(
        order_by="TripCollaborator.created_at", back_populates="trip"
    )
    itineraries: Mapped[list[Itinerary]] = relationship(
        order_by="(Itinerary.position, Itinerary.created_at, Itinerary.id)", back_populates="trip"
    )


class TripCollaborator(Base):
    """A user a trip is shared with, and how."""

    __tablename__ = "trip_collaborators"

    trip_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("trips.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("profiles.id"), primary_key=True)
    permission: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trip: Mapped[Trip] = relationship(back_populates="collaborators")
    user: Mapped[Profile] = relationship()


class Itinerary(Base):
    """A day (or section) of a trip."""

    __tablename__ = "itineraries"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid())
    trip_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("trips.id"))
    title: Mapped[str] = mapped_column(Text)
    day: Mapped[date | None] = mapped_column(Date)
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trip: Mapped[Trip] = relationship(back_populates="itineraries")
    activities: Mapped[list[Activity]] = relationship(
        order_by="(Activity.position, Activity.created_at, Activity.id)", back_populates="itinerary"
    )


class Activity(Base):
    """Something planned within an itinerary."""

    __tablename__ = "activities"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid())
    itinerary_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("itineraries.id"))
    trip_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("trips.id"))
    title: Mapped[str] = mapped_column(Text)
    item_type: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    location: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    booking_status: Mapped[str] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    itinerary: Mapped[Itinerary] = relationship(back_populates="activities")
