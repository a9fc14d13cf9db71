"""Access rows of trips whose document cannot be projected: who may read follows the write model.

When a trip's rebuild fails (a poison trip, see `projections.poison`), its document stays as it was
last projected, and so would its access: the read model's `trip_view_members` rows (the list
endpoint's access path) and the document's `member_ids` (the RLS policy of `trip_views`). A
collaborator removed since then would go on reading the trip. `narrow_access` brings the access in
line with the write model without building the document: it only reads `trips` and
`trip_collaborators`, so what breaks the document's build does not break it.

Access is only ever narrowed here: removed members lose their rows and leave `member_ids` at once;
added members wait for the document (they would otherwise get a document that does not list them).
A trip that no longer exists loses its document and rows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.poison import is_poison

log = logging.getLogger("tripsage.projections")

NARROW_ACCESS = text(
    """
WITH access AS MATERIALIZED (
  SELECT t.id AS trip_id,
         ARRAY[t.owner_id] || coalesce(array_agg(c.user_id) FILTER (WHERE c.user_id <> t.owner_id), '{}') AS allowed
  FROM trips t
  LEFT JOIN trip_collaborators c ON c.trip_id = t.id
  WHERE t.id = ANY(CAST(:trip_ids AS uuid[]))
  GROUP BY t.id, t.owner_id
),
gone AS (
  DELETE FROM trip_views v
  WHERE v.trip_id = ANY(CAST(:trip_ids AS uuid[]))
    AND NOT EXISTS (SELECT 1 FROM access a WHERE a.trip_id = v.trip_id)
  RETURNING 1
),
narrowed AS (
  UPDATE trip_views v
  SET member_ids = ARRAY(SELECT u.m FROM unnest(v.member_ids) WITH ORDINALITY AS u(m, n)
                         WHERE u.m = ANY(a.allowed) ORDER BY u.n)
  FROM access a
  WHERE v.trip_id = a.trip_id AND NOT v.member_ids <@ a.allowed
  RETURNING 1
),
revoked AS (
  DELETE FROM trip_view_members tm
  USING access a
  WHERE tm.trip_id = a.trip_id AND tm.user_id <> ALL(a.allowed)
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM narrowed) + (SELECT count(*) FROM revoked)
"""
)
"""Delete the documents of vanished trips, drop from `member_ids` (keeping the order) and from
`trip_view_members` every user who is neither the owner nor a collaborator any more."""


async def narrow_access(conn: AsyncConnection, trip_ids: Sequence[uuid.UUID]) -> int:
    """Take away read access the write model no longer grants, for trips whose document is stale.

    Args:
        conn: The apply transaction (login role), holding the trips' advisory locks.
        trip_ids: The trips whose rebuild failed.

    Returns:
        Documents deleted or narrowed plus member rows removed (0: the access was already right).
    """
    if not trip_ids:
        return 0
    return int(await conn.scalar(NARROW_ACCESS, {"trip_ids": list(trip_ids)}) or 0)


async def narrow_failed(conn: AsyncConnection, trip_ids: Sequence[uuid.UUID]) -> None:
    """Bring the access of trips that failed to project in line with the write model (in a savepoint).

    The statement reads only trips and collaborators, so the poison that broke the document should
    not break it; if something does, the trips stay parked with the access they had and the error
    is logged loudly rather than holding back the rest of the batch.
    """
    try:
        async with conn.begin_nested():
            narrowed = await narrow_access(conn, trip_ids)
    except DBAPIError as exc:
        if not is_poison(exc):
            raise
        log.exception("could not narrow the access of %d stale trip(s)", len(trip_ids))
        return
    if narrowed:
        log.warning("narrowed the access of stale trip(s) %s to the write model", ", ".join(map(str, trip_ids)))
