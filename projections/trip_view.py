"""The TripView projection: one ready JSON document per trip, built set-based in PostgreSQL.

`BUILD` turns a batch of trip ids into finished documents with one statement (ordered `json_agg`
subqueries per trip, so the work is proportional to the batch, not to the table). `json` rather than
`jsonb` keeps the keys in the documented order (jsonb sorts them). `refresh_trips` wraps the same
build in data-modifying CTEs that upsert `trip_views` only where the document changed and the
source version is not older than the stored one, delete documents of trips that no longer exist,
and replace the trips' member rows: one round trip per batch, whatever its size.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

NAME = "trip_views"
"""The projection's name (CLI, status, metrics)."""

VERSION = 1
"""The document layout's version: bump it when the builder changes so a rebuild is due."""

_UTC_TS = """to_char(({col}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _ts(col: str) -> str:
    return _UTC_TS.format(col=col)


# One row per existing trip among :trip_ids, with the read-table columns and the document bytes.
# Every per-trip part is a LATERAL subquery driven by an index on the trip (or itinerary) id, so a
# batch costs what its trips hold, never a scan of the child tables.
BUILD_SELECT = f"""
SELECT
  t.id AS trip_id,
  t.owner_id,
  ARRAY[t.owner_id] || co.shared_ids AS member_ids,
  co.shared_ids,
  t.status,
  lower(t.title || ' ' || t.destination || ' ' || coalesce(t.description, '')) AS search_text,
  t.updated_at,
  t.version,
  convert_to(json_build_object(
    'id', t.id,
    'title', t.title,
    'description', t.description,
    'destination', t.destination,
    'start_date', to_char(t.start_date, 'YYYY-MM-DD'),
    'end_date', to_char(t.end_date, 'YYYY-MM-DD'),
    'budget', t.budget::text,
    'currency', t.currency,
    'travelers', t.travelers,
    'status', t.status,
    'trip_type', t.trip_type,
    'tags', to_json(t.tags),
    'version', t.version,
    'created_at', {_ts("t.created_at")},
    'updated_at', {_ts("t.updated_at")},
    'owner', json_build_object(
      'id', o.id,
      'display_name', o.display_name,
      'preferences', json_build_object(
        'currency', p.currency,
        'home_airport', p.home_airport,
        'travel_style', p.travel_style,
        'dietary_restrictions', to_json(coalesce(p.dietary_restrictions, '{{}}'::text[])),
        'accessibility_needs', to_json(coalesce(p.accessibility_needs, '{{}}'::text[]))
      )
    ),
    'collaborators', co.collaborators,
    'itineraries', it.itineraries,
    'stats', json_build_object(
      'itinerary_count', it.itinerary_count,
      'activity_count', it.activity_count,
      'total_cost', tc.total_cost
    )
  )::text, 'UTF8') AS doc
FROM trips t
JOIN profiles o ON o.id = t.owner_id
LEFT JOIN user_preferences p ON p.user_id = t.owner_id
CROSS JOIN LATERAL (
  SELECT
    coalesce(json_agg(json_build_object(
      'user_id', c.user_id, 'display_name', cp.display_name, 'permission', c.permission
    ) ORDER BY c.created_at, c.user_id), '[]'::json) AS collaborators,
    coalesce(array_agg(c.user_id ORDER BY c.created_at, c.user_id)
             FILTER (WHERE c.user_id <> t.owner_id), '{{}}'::uuid[]) AS shared_ids
  FROM trip_collaborators c
  JOIN profiles cp ON cp.id = c.user_id
  WHERE c.trip_id = t.id
) co
CROSS JOIN LATERAL (
  SELECT
    coalesce(json_agg(json_build_object(
      'id', i.id,
      'title', i.title,
      'day', to_char(i.day, 'YYYY-MM-DD'),
      'position', i.position,
      'activities', acts.activities
    ) ORDER BY i.position, i.created_at, i.id), '[]'::json) AS itineraries,
    count(i.id) AS itinerary_count,
    coalesce(sum(acts.activity_count), 0)::bigint AS activity_count
  FROM itineraries i
  CROSS JOIN LATERAL (
    SELECT
      coalesce(json_agg(json_build_object(
        'id', a.id,
        'title', a.title,
        'item_type', a.item_type,
        'starts_at', {_ts("a.starts_at")},
        'ends_at', {_ts("a.ends_at")},
        'location', a.location,
        'price', a.price::text,
        'currency', a.currency,
        'booking_status', a.booking_status,
        'notes', a.notes,
        'position', a.position
      ) ORDER BY a.position, a.created_at, a.id), '[]'::json) AS activities,
      count(a.id) AS activity_count
    FROM activities a
    WHERE a.itinerary_id = i.id
  ) acts
  WHERE i.trip_id = t.id
) it
CROSS JOIN LATERAL (
  SELECT coalesce(json_object_agg(s.currency, s.total::text ORDER BY s.currency), '{{}}'::json) AS total_cost
  FROM (
    SELECT a.currency, sum(a.price) AS total
    FROM activities a
    WHERE a.trip_id = t.id AND a.booking_status <> 'cancelled' AND a.price IS NOT NULL
    GROUP BY a.currency
  ) s
) tc
WHERE t.id = ANY(CAST(:trip_ids AS uuid[]))
"""

BUILD = text(f"SELECT trip_id, doc FROM ({BUILD_SELECT}) built")
"""Fresh documents for :trip_ids (existing trips only), without writing anything."""

REFRESH = text(
    f"""
WITH built AS MATERIALIZED ({BUILD_SELECT}),
previous AS MATERIALIZED (
  SELECT trip_id, member_ids FROM trip_views WHERE trip_id = ANY(CAST(:trip_ids AS uuid[]))
),
upserted AS (
  INSERT INTO trip_views AS v
    (trip_id, owner_id, member_ids, status, search_text, updated_at, version, etag, doc, projected_at)
  SELECT trip_id, owner_id, member_ids, status, search_text, updated_at, version,
         '"' || version || '-' || left(md5(doc), 16) || '"', doc, clock_timestamp()
  FROM built
  ON CONFLICT (trip_id) DO UPDATE SET
    owner_id = EXCLUDED.owner_id, member_ids = EXCLUDED.member_ids, status = EXCLUDED.status,
    search_text = EXCLUDED.search_text, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version,
    etag = EXCLUDED.etag, doc = EXCLUDED.doc, projected_at = EXCLUDED.projected_at, position = NULL
  WHERE v.version <= EXCLUDED.version AND v.doc IS DISTINCT FROM EXCLUDED.doc
  RETURNING v.trip_id
),
gone AS (
  DELETE FROM trip_views v
  WHERE v.trip_id = ANY(CAST(:trip_ids AS uuid[]))
    AND NOT EXISTS (SELECT 1 FROM built b WHERE b.trip_id = v.trip_id)
  RETURNING v.trip_id
),
members AS MATERIALIZED (
  SELECT b.trip_id, m.user_id, m.role, b.status, b.updated_at
  FROM built b
  JOIN upserted u ON u.trip_id = b.trip_id
  CROSS JOIN LATERAL (
    SELECT b.owner_id AS user_id, 'owner' AS role
    UNION ALL
    SELECT s.user_id, 'shared' FROM unnest(b.shared_ids) AS s(user_id)
  ) m
),
stale_members AS (
  DELETE FROM trip_view_members tm
  USING upserted u
  WHERE tm.trip_id = u.trip_id
    AND NOT EXISTS (SELECT 1 FROM members n WHERE n.trip_id = tm.trip_id AND n.user_id = tm.user_id)
  RETURNING 1
),
fresh_members AS (
  INSERT INTO trip_view_members AS tm (user_id, trip_id, role, status, updated_at)
  SELECT user_id, trip_id, role, status, updated_at FROM members
  ON CONFLICT (user_id, trip_id) DO UPDATE SET
    role = EXCLUDED.role, status = EXCLUDED.status, updated_at = EXCLUDED.updated_at
  WHERE (tm.role, tm.status, tm.updated_at) IS DISTINCT FROM (EXCLUDED.role, EXCLUDED.status, EXCLUDED.updated_at)
  RETURNING 1
),
removed AS (
  INSERT INTO tripsage.live_removals (trip_id, user_id)
  SELECT p.trip_id, m.user_id
  FROM previous p CROSS JOIN LATERAL unnest(p.member_ids) AS m(user_id)
  WHERE p.trip_id IN (SELECT trip_id FROM gone)
     OR (p.trip_id IN (SELECT trip_id FROM upserted)
         AND NOT EXISTS (SELECT 1 FROM built b WHERE b.trip_id = p.trip_id AND m.user_id = ANY (b.member_ids)))
  RETURNING 1
)
SELECT (SELECT count(*) FROM upserted) + (SELECT count(*) FROM gone)
"""
)
"""Upsert changed documents (never over a newer version), delete vanished trips, sync member rows.

A changed document loses its live position (`position = NULL`) and every user who could see a
trip and no longer can (the trip is gone, or they left its members) gets a removal row without a
position: the batch's last statement (`projections.apply.FINISH`) numbers both, in commit order."""


async def refresh_trips(conn: AsyncConnection, trip_ids: Sequence[uuid.UUID]) -> int:
    """Rebuild the documents and member rows of `trip_ids` from the write model, in one statement.

    The caller owns the transaction (and, for concurrent workers, the per-trip advisory locks taken
    before this call; see `projections.locks`).

    Args:
        conn: A connection inside a transaction, as a role that may write the read tables.
        trip_ids: The trips to rebuild; ids of deleted trips remove their documents.

    Returns:
        How many documents were written or deleted (unchanged documents are not rewritten).
    """
    if not trip_ids:
        return 0
    changed = await conn.scalar(REFRESH, {"trip_ids": list(trip_ids)})
    return int(changed or 0)


async def build_documents(conn: AsyncConnection, trip_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bytes]:
    """Build fresh documents for `trip_ids` without writing (verification and tests).

    Args:
        conn: Any connection that can read the write model.
        trip_ids: The trips to build; trips that do not exist are absent from the result.

    Returns:
        The UTF-8 JSON bytes of each existing trip's document, by trip id.
    """
    if not trip_ids:
        return {}
    rows = await conn.execute(BUILD, {"trip_ids": list(trip_ids)})
    return {row.trip_id: bytes(row.doc) for row in rows}
