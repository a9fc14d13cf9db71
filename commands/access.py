"""Who may change a trip, and the trip row lock every change under a trip starts with.

Every command on an existing trip opens with one statement, the *claim*: the caller's permission
(`tripsage.trip_permission`, SECURITY DEFINER, so a viewer is told 403 and a stranger 404 without
the trip leaking), the transaction id for the consistency token, and — when the caller may write —
the trip row locked `FOR UPDATE`, plus the row under the trip the command is about, locked after
the trip. The permission is read by a plain function call, not through the lock: under RLS a
`SELECT … FOR UPDATE` also applies the UPDATE policy, which would hide the trip from a viewer
and turn their 403 into a 404.

Holding the trip row lock serialises every change to a trip and to anything under it, so the
version rises by exactly one per change and no update is lost; locks are always taken trip first,
then the child, so two commands cannot deadlock each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, Table, and_, bindparam, cast, delete, exists, func, insert, literal, select, true, update
from sqlalchemy.sql.expression import CTE, ColumnElement

from commands.messages import TripCommand
from commands.unit import XID, UnitOfWork
from core.errors import ApiError, not_found
from core.etag import command_etag
from core.schema import Activity, Itinerary, Trip, TripCollaborator

trips: Table = Trip.__table__  # type: ignore[assignment]
itineraries: Table = Itinerary.__table__  # type: ignore[assignment]
activities: Table = Activity.__table__  # type: ignore[assignment]
collaborators: Table = TripCollaborator.__table__  # type: ignore[assignment]

OWNER = frozenset({"owner"})
WRITERS = frozenset({"owner", "admin", "edit"})
MANAGERS = frozenset({"owner", "admin"})
MEMBERS = frozenset({"owner", "admin", "edit", "view"})
CHILD_PREFIX = "child_"


@dataclass(frozen=True, slots=True)
class Child:
    """The row under the trip a command is about: a table, the key values it must match, a name for 404s."""

    table: Table
    key: Mapping[str, uuid.UUID]
    name: str
    lock: bool = True
    required: bool = True


@dataclass(frozen=True, slots=True)
class Claim:
    """What the claim found.

    Attributes:
        permission: The caller's permission on the trip.
        xid: The command transaction's id.
        trip: The locked trip row (None when the caller's permission does not allow writing).
        child: The locked child row, when one was asked for and exists.
    """

    permission: str
    xid: int
    trip: dict[str, Any] | None
    child: dict[str, Any] | None = field(default=None)


def forbidden(action: str) -> ApiError:
    """403 for a caller who can see the trip but may not do this."""
    return ApiError(403, f"your permission on this trip does not allow {action}")


@lru_cache(maxsize=64)
def claim_statement(allowed: frozenset[str], table: Table | None, key: tuple[str, ...], lock: bool) -> Select[Any]:
    """The claim: permission, transaction id, the trip row locked for writers, the child locked after it.

    Built once per shape (bound parameters `trip_id` and `key_<column>`): constructing the lateral
    subqueries costs more than running them.
    """
    trip_id = bindparam("trip_id", type_=trips.c.id.type)
    perm = select(func.tripsage.trip_permission(trip_id).label("perm")).subquery("p")
    lockers = sorted(allowed & WRITERS)
    locked = select(trips).where(trips.c.id == trip_id, perm.c.perm.in_(lockers)).with_for_update().lateral("t")
    stmt = select(perm.c.perm, XID, locked)
    joined = perm.outerjoin(locked, true())
    if table is not None:
        matches = [table.c[name] == bindparam(f"key_{name}", type_=table.c[name].type) for name in key]
        found = select(*(column.label(CHILD_PREFIX + column.name) for column in table.c)).where(
            table.c.trip_id == locked.c.id, *matches
        )
        row = (found.with_for_update() if lock else found).lateral("c")
        stmt = stmt.add_columns(row)
        joined = joined.outerjoin(row, true())
    return stmt.select_from(joined)


async def claim_trip(
    uow: UnitOfWork, command: TripCommand, *, allowed: frozenset[str], action: str, child: Child | None = None
) -> Claim:
    """Run the claim and apply its verdict: 404 unseen, 403 not allowed, 412 stale `If-Match`.

    Args:
        uow: The command's unit of work.
        command: The command (its trip and `If-Match` version).
        allowed: The permissions that may run this command.
        action: What the caller tried, for the 403 message.
        child: The row under the trip to look up and lock as well.

    Returns:
        The claim; `trip` is None only for a permission that may not write the trip row.

    Raises:
        ApiError: 404, 403 or 412 as above.
    """
    params: dict[str, Any] = {"trip_id": command.trip_id}
    if child is None:
        stmt = claim_statement(allowed, None, (), False)
    else:
        stmt = claim_statement(allowed, child.table, tuple(child.key), child.lock)
        params |= {f"key_{name}": value for name, value in child.key.items()}
    result = await uow.session.execute(stmt, params)
    row = dict(result.mappings().one())
    permission = row.pop("perm")
    xid = int(row.pop("xid"))
    if permission is None:
        raise not_found("trip")
    if permission not in allowed:
        raise forbidden(action)
    child_row = {name.removeprefix(CHILD_PREFIX): row.pop(name) for name in list(row) if name.startswith(CHILD_PREFIX)}
    trip = row if row["id"] is not None else None
    if trip is None and permission in WRITERS:
        raise not_found("trip")  # deleted while this command waited for its lock
    if trip is not None and command.expected_version is not None and trip["version"] != command.expected_version:
        raise ApiError(
            412, "If-Match does not match the current version", headers={"ETag": command_etag(trip["version"])}
        )
    found = child_row if child_row and child_row.get("trip_id") is not None else None
    if child is not None and child.required and found is None and trip is not None:
        raise not_found(child.name)
    return Claim(permission=permission, xid=xid, trip=trip, child=found)


def bump_trip(trip_id: uuid.UUID, *, if_written: CTE | None = None) -> CTE:
    """A CTE recording a change under a trip: version + 1 and a fresh `updated_at`, returning the version.

    With `if_written`, only when that CTE (a conditional write) returned a row.
    """
    condition = [exists(select(literal(1)).select_from(if_written))] if if_written is not None else []
    return (
        update(trips)
        .where(trips.c.id == trip_id, *condition)
        .values(version=trips.c.version + 1, updated_at=func.now())
        .returning(trips.c.version.label("trip_version"))
        .cte("bump")
    )


async def write_under_trip(uow: UnitOfWork, trip_id: uuid.UUID, written: CTE) -> dict[str, Any]:
    """Run a change under a trip and the trip's version bump as one statement (two CTEs).

    Args:
        uow: The command's unit of work (the claim holds the trip row lock).
        trip_id: The trip.
        written: An INSERT/UPDATE/DELETE … RETURNING, as a CTE.

    Returns:
        The written row's returned columns plus `trip_version`.

    Raises:
        ApiError: 404 when the write policy refused the trip (the permission went away meanwhile).
    """
    bump = bump_trip(trip_id)
    stmt = select(written, bump.c.trip_version).select_from(written.join(bump, true()))
    row = (await uow.session.execute(stmt)).mappings().first()
    if row is None:
        raise not_found("trip")
    return dict(row)


async def update_child(
    uow: UnitOfWork, trip_id: uuid.UUID, table: Table, row_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any]:
    """Write the changed fields of an itinerary or activity (by id) and bump its trip, in one statement."""
    written = (
        update(table)
        .where(table.c.id == row_id)
        .values(**changes, updated_at=func.now())
        .returning(*table.c)
        .cte("written")
    )
    return await write_under_trip(uow, trip_id, written)


async def delete_child(uow: UnitOfWork, trip_id: uuid.UUID, table: Table, row_id: uuid.UUID) -> None:
    """Delete an itinerary or activity (by id) and bump its trip, in one statement."""
    await write_under_trip(uow, trip_id, delete(table).where(table.c.id == row_id).returning(table.c.id).cte("written"))


@dataclass(frozen=True, slots=True)
class Cap:
    """A size limit: the rows `count` finds (a `tripsage.count_*` call, migration 0008) stay under `limit`."""

    count: ColumnElement[Any]
    limit: int
    what: str
    """What is limited, for the 413 (`"itineraries per trip"`)."""


def over_cap(cap: Cap) -> ApiError:
    """413 for an insert a cap refused (contract §4: size limits)."""
    return ApiError(413, f"size limit reached: at most {cap.limit} {cap.what}")


async def insert_child(
    uow: UnitOfWork, trip_id: uuid.UUID, table: Table, values: dict[str, Any], caps: Sequence[Cap]
) -> dict[str, Any]:
    """Insert an itinerary or activity under a trip (new id) within its caps and bump the trip, in one statement.

    The rows are counted in this statement, after the claim locked the trip row: every insert
    under the trip holds that lock, so the count cannot miss a concurrent one (counting inside the
    claim itself would not do: a READ COMMITTED statement that waited for the lock keeps the
    snapshot it started with). Over a cap nothing is inserted and the version is not bumped. The
    counting functions are STABLE, so they read with this statement's snapshot.

    Raises:
        ApiError: 413 naming the cap reached; 404 when the trip went away.
    """
    counted = select(*(cap.count.label(f"n{i}") for i, cap in enumerate(caps))).cte("counted")
    row_values: dict[str, ColumnElement[Any]] = {"id": func.gen_random_uuid()} | {
        name: cast(literal(value, table.c[name].type), table.c[name].type)
        for name, value in ({"trip_id": trip_id} | values).items()
    }
    room = and_(*(counted.c[f"n{i}"] < cap.limit for i, cap in enumerate(caps)))
    source = select(*row_values.values()).select_from(counted).where(room)
    written = insert(table).from_select(list(row_values), source).returning(*table.c).cte("written")
    bump = bump_trip(trip_id, if_written=written)
    stmt = select(written, bump.c.trip_version, counted).select_from(
        counted.outerjoin(written.join(bump, true()), true())
    )
    row = dict((await uow.session.execute(stmt)).mappings().one())
    counts = [row.pop(f"n{i}") for i in range(len(caps))]
    if row["id"] is None:
        # A NULL count: the caller may no longer edit the trip (the insert's policy would refuse too).
        reached = [cap for cap, count in zip(caps, counts, strict=True) if count is not None and count >= cap.limit]
        raise over_cap(reached[0]) if reached else not_found("trip")
    return row
