"""A projection's definition versions and rebuilds, for `projections status`, the admin API and `/readyz`.

See `projections.rebuild.state` for what a definition version is. The status reads the live and
previous definitions, the last switched (or rolled back) rebuild and the one building now, in one
statement readable by the login role and by `service_role`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.models import UtcDatetime
from projections import trip_view
from projections.rebuild.state import definition_version

log = logging.getLogger("tripsage.rebuild")

STATUS = text(
    """
SELECT
  pv.definition_version AS live_definition,
  pv.previous_version AS previous_definition,
  pv.switched_at,
  last.id AS last_id, last.state AS last_state, last.started_at AS last_started_at,
  last.switched_at AS last_switched_at, last.duration_s AS last_duration_s, last.rows AS last_rows,
  last.rows_per_s AS last_rows_per_s,
  b.id AS building_id, b.holder AS building_holder, b.started_at AS building_started_at,
  (SELECT sum(rows) FROM tripsage.rebuild_parts WHERE rebuild_id = b.id) AS building_rows,
  (SELECT count(*) FILTER (WHERE done) || '/' || count(*) FROM tripsage.rebuild_parts WHERE rebuild_id = b.id)
    AS building_parts,
  (SELECT count(*) FROM tripsage.rebuild_dirty) AS dirty
FROM (SELECT :projection AS projection) p
LEFT JOIN tripsage.projection_versions pv ON pv.projection = p.projection
LEFT JOIN LATERAL (
  SELECT * FROM tripsage.rebuilds r
  WHERE r.projection = p.projection AND r.state IN ('switched', 'rolled_back')
  ORDER BY r.switched_at DESC NULLS LAST, r.id DESC LIMIT 1
) last ON true
LEFT JOIN tripsage.rebuilds b ON b.projection = p.projection AND b.state = 'building'
"""
)
"""The live and previous definitions, the last switched rebuild, and the one building now."""


@dataclass(frozen=True, slots=True)
class RebuildStatus:
    """A projection's definition versions and rebuilds (part of `projections status`)."""

    definition: str
    live_definition: str | None
    previous_definition: str | None
    last_rebuild: dict[str, Any] | None
    building: dict[str, Any] | None

    @property
    def rebuild_due(self) -> bool:
        """The code's definition differs from the one the live tables were built with."""
        return self.live_definition != self.definition

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields (timestamps in UTC, `...Z`), as `projections status` and the admin API show them."""
        return {
            "definition": self.definition,
            "live_definition": self.live_definition,
            "rebuild_due": self.rebuild_due,
            "previous_definition": self.previous_definition,
            "rollback_available": self.previous_definition is not None,
            "last_rebuild": _jsonable(self.last_rebuild),
            "rebuilding": _jsonable(self.building),
        }


_UTC = TypeAdapter(UtcDatetime)


def _jsonable(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: _UTC.dump_python(v, mode="json") if isinstance(v, datetime) else v for k, v in values.items()}


async def read_rebuild_status(conn: AsyncConnection, projection: str = trip_view.NAME) -> RebuildStatus:
    """The projection's versions and rebuilds, in one statement (login role or service_role).

    Args:
        conn: Any connection that may read `tripsage`.
        projection: The projection's name.

    Returns:
        The status.
    """
    row = (await conn.execute(STATUS, {"projection": projection})).one()
    last = None
    if row.last_id is not None:
        last = {
            "id": row.last_id,
            "state": row.last_state,
            "started_at": row.last_started_at,
            "switched_at": row.last_switched_at,
            "duration_s": row.last_duration_s,
            "rows": row.last_rows,
            "rows_per_s": row.last_rows_per_s,
        }
    building = None
    if row.building_id is not None:
        building = {
            "id": row.building_id,
            "holder": row.building_holder,
            "started_at": row.building_started_at,
            "rows": int(row.building_rows or 0),
            "parts_done": row.building_parts,
            "dirty": int(row.dirty),
        }
    return RebuildStatus(definition_version(), row.live_definition, row.previous_definition, last, building)


async def definition_note(conn: AsyncConnection) -> str | None:
    """A readiness note when the live read model was built with another definition than this code's.

    `/readyz` stays 200 (the old documents are complete and served; making every API instance
    unready after a deploy would be an outage) and carries this note until a rebuild switches.

    Returns:
        `"rebuild due: live <x>, code <y>"`, or None when they agree.
    """
    status = await read_rebuild_status(conn)
    if not status.rebuild_due:
        return None
    return f"rebuild due: live {status.live_definition}, code {status.definition}"


async def readiness_notes(engine: AsyncEngine, *, timeout_s: float = 2.0) -> dict[str, str]:
    """`/readyz` notes: `{"trip_views": "rebuild due: …"}` while a rebuild is due, else `{}`.

    Informational only: the caller never turns them into a 503 (see `definition_note`). A database
    that does not answer gives no note; the readiness check of the database reports it.
    """
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            note = await definition_note(conn)
    except (SQLAlchemyError, OSError, TimeoutError):
        log.debug("no projection note for /readyz", exc_info=True)
        return {}
    return {trip_view.NAME: note} if note else {}
