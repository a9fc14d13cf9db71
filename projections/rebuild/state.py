"""Rebuild bookkeeping: definition versions, rebuild runs, resumable parts, and their status.

**Definition version.** A projection's definition is `"<VERSION>.<hash>"`: C's explicit
`trip_view.VERSION` plus the first 10 hex digits of the SHA-256 of the whitespace-normalised
`trip_view.REFRESH` SQL (the document builder and the row/member mapping). The number says on
purpose that the layout changed; the hash catches an edited builder whose version was not bumped
(at the price of calling a rebuild due after a cosmetic SQL edit, which is harmless). The live
tables' definition is stored in `tripsage.projection_versions` when a rebuild switches; when the
code's definition differs, status and `/readyz` report "rebuild due" while the worker goes on
maintaining the live tables (documents it touches get the new shape; the rebuild brings the rest).

**Runs and parts.** `tripsage.rebuilds` has one row per run (at most one `building` per
projection); `tripsage.rebuild_parts` splits the trip-id space into equal UUID ranges, one keyset
cursor each, moved in the same transaction as the batch it covers.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from projections import trip_view

MAX_UUID = uuid.UUID(int=(1 << 128) - 1)


def definition_version() -> str:
    """The trip projection's definition version in this code (`"<VERSION>.<sha256 of REFRESH>"`)."""
    normalized = " ".join(trip_view.REFRESH.text.split())
    return f"{trip_view.VERSION}.{hashlib.sha256(normalized.encode()).hexdigest()[:10]}"


def this_process() -> str:
    """`host:pid` of the running process (who holds a rebuild)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def split_ranges(parts: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Split the UUID space into `parts` contiguous inclusive ranges of equal width.

    Trip ids are random (v4), so equal widths hold about equal numbers of trips.
    """
    parts = max(1, parts)
    width = (1 << 128) // parts
    bounds = [i * width for i in range(parts)] + [1 << 128]
    return [(uuid.UUID(int=bounds[i]), uuid.UUID(int=bounds[i + 1] - 1)) for i in range(parts)]


@dataclass(slots=True)
class Part:
    """One range of a rebuild and its keyset cursor."""

    part: int
    lo: uuid.UUID
    hi: uuid.UUID
    last_trip_id: uuid.UUID | None
    rows: int
    done: bool

    @property
    def next_from(self) -> uuid.UUID:
        """The first trip id the next batch may take (inclusive)."""
        return self.lo if self.last_trip_id is None else uuid.UUID(int=self.last_trip_id.int + 1)


@dataclass(slots=True)
class Run:
    """A rebuild run being built (new or resumed)."""

    id: int
    projection: str
    definition_version: str
    batch_size: int
    started_at: datetime
    parts: list[Part]
    resumed: bool

    @property
    def rows_done(self) -> int:
        """Trips built so far by the bulk phase (all runs)."""
        return sum(p.rows for p in self.parts)


FIND_BUILDING = text(
    "SELECT id, definition_version, batch_size, started_at FROM tripsage.rebuilds"
    " WHERE projection = :projection AND state = 'building'"
)
"""The interrupted rebuild of a projection, if any."""

START = text(
    """
INSERT INTO tripsage.rebuilds (projection, definition_version, holder, batch_size)
VALUES (:projection, :definition, :holder, :batch_size)
RETURNING id, started_at
"""
)
"""Record a new rebuild run (the partial unique index refuses a second `building` row)."""

ADD_PARTS = text(
    """
INSERT INTO tripsage.rebuild_parts (rebuild_id, part, lo, hi)
SELECT :rebuild_id, p.part - 1, p.lo, p.hi
FROM unnest(CAST(:los AS uuid[]), CAST(:his AS uuid[])) WITH ORDINALITY AS p(lo, hi, part)
"""
)
"""The run's ranges, cursors unset."""

RESUME = text(
    "UPDATE tripsage.rebuilds SET holder = :holder, resumed_at = now(), runs = runs + 1 WHERE id = :rebuild_id"
)
"""Take over an interrupted run."""

PARTS = text(
    "SELECT part, lo, hi, last_trip_id, rows, done FROM tripsage.rebuild_parts WHERE rebuild_id = :rebuild_id"
    " ORDER BY part"
)

ADVANCE = text(
    """
UPDATE tripsage.rebuild_parts SET last_trip_id = :last, rows = rows + :rows, done = :done
WHERE rebuild_id = :rebuild_id AND part = :part
"""
)
"""Move a part's cursor past the batch just built (in the batch's own transaction)."""

ABANDON = text("UPDATE tripsage.rebuilds SET state = 'abandoned' WHERE id = :rebuild_id AND state = 'building'")


async def start_run(conn: AsyncConnection, *, projection: str, batch_size: int, parts: int) -> Run:
    """Record a new run and its parts (caller's transaction).

    Args:
        conn: The login role, inside the transaction that also starts the change capture.
        projection: The projection's name.
        batch_size: Trips per batch, kept for resumed runs.
        parts: How many ranges (the build's concurrency).

    Returns:
        The run.
    """
    row = (
        await conn.execute(
            START,
            {
                "projection": projection,
                "definition": definition_version(),
                "holder": this_process(),
                "batch_size": batch_size,
            },
        )
    ).one()
    ranges = split_ranges(parts)
    await conn.execute(ADD_PARTS, {"rebuild_id": row.id, "los": [r[0] for r in ranges], "his": [r[1] for r in ranges]})
    return Run(
        row.id,
        projection,
        definition_version(),
        batch_size,
        row.started_at,
        [Part(i, lo, hi, None, 0, False) for i, (lo, hi) in enumerate(ranges)],
        resumed=False,
    )


async def find_run(conn: AsyncConnection, projection: str) -> Run | None:
    """The interrupted run of `projection` with its parts, or None."""
    row = (await conn.execute(FIND_BUILDING, {"projection": projection})).first()
    if row is None:
        return None
    parts = [Part(*part) for part in (await conn.execute(PARTS, {"rebuild_id": row.id})).all()]
    return Run(row.id, projection, row.definition_version, row.batch_size, row.started_at, parts, resumed=True)


async def resume_run(conn: AsyncConnection, run: Run) -> None:
    """Record that this process took over `run`."""
    await conn.execute(RESUME, {"holder": this_process(), "rebuild_id": run.id})


async def advance(
    conn: AsyncConnection, run_id: int, part: Part, last: uuid.UUID | None, rows: int, *, done: bool
) -> None:
    """Move a part's cursor, inside the transaction that built the batch (the caller updates `part` after commit)."""
    await conn.execute(ADVANCE, {"last": last, "rows": rows, "done": done, "rebuild_id": run_id, "part": part.part})


async def abandon_run(conn: AsyncConnection, run_id: int) -> None:
    """Mark a building run abandoned (its shadow tables are dropped by the caller)."""
    await conn.execute(ABANDON, {"rebuild_id": run_id})


RECORD_SWITCH = text(
    """
UPDATE tripsage.rebuilds SET state = 'switched', switched_at = clock_timestamp(), holder = :holder,
  duration_s = extract(epoch FROM clock_timestamp() - started_at), rows = :rows, rows_per_s = :rows_per_s
WHERE id = :rebuild_id
"""
)
"""Close the run: when it switched, its wall time since it first started, rows, this run's rate."""

SET_VERSION = text(
    """
INSERT INTO tripsage.projection_versions AS pv (projection, definition_version, rebuild_id, switched_at)
VALUES (:projection, :definition, :rebuild_id, clock_timestamp())
ON CONFLICT (projection) DO UPDATE SET
  previous_version = pv.definition_version, previous_rebuild_id = pv.rebuild_id,
  definition_version = EXCLUDED.definition_version, rebuild_id = EXCLUDED.rebuild_id,
  switched_at = EXCLUDED.switched_at
"""
)
"""The new tables' definition becomes live; the replaced one is kept as the rollback target."""


async def record_switch(conn: AsyncConnection, run: Run, *, rows: int, rows_per_s: float | None) -> None:
    """Close `run` as switched and make its definition the live one (inside the switch transaction)."""
    params = {"holder": this_process(), "rows": rows, "rows_per_s": rows_per_s, "rebuild_id": run.id}
    await conn.execute(RECORD_SWITCH, params)
    version = {"projection": run.projection, "definition": run.definition_version, "rebuild_id": run.id}
    await conn.execute(SET_VERSION, version)
