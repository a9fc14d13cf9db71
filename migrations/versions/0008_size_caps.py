"""Size caps: count the rows under a trip without paying Row Level Security per row.

The commands that add an itinerary or an activity count what the trip already holds (the caps of
`MAX_ITINERARIES_PER_TRIP`, `MAX_ACTIVITIES_PER_ITINERARY`, `MAX_ACTIVITIES_PER_TRIP`) in the
statement that inserts, after the trip row is locked. Counted as `authenticated`, every row passes
the `can_view_trip` policy, one SECURITY DEFINER call per row: about 0.1 ms a row, 200 ms for a
trip of 2,000 activities (measured as `authenticated`, before 0007; the policies are the same for
`tripsage_api`). These functions check the caller's right once (the same right the insert
needs: `can_edit_trip`) and count with the indexes alone; a caller who may not edit the trip gets
NULL, so they reveal nothing. STABLE: they read with the calling statement's snapshot.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COUNT_FUNCTIONS = r"""
-- The trip's itineraries.
CREATE FUNCTION tripsage.count_itineraries(p_trip uuid) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT CASE WHEN tripsage.can_edit_trip(p_trip)
              THEN (SELECT count(*) FROM public.itineraries WHERE trip_id = p_trip) END
$$;
-- The trip's activities, or (p_itinerary given) those of one of its itineraries.
CREATE FUNCTION tripsage.count_activities(p_trip uuid, p_itinerary uuid) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT CASE WHEN tripsage.can_edit_trip(p_trip)
              THEN (SELECT count(*) FROM public.activities
                    WHERE trip_id = p_trip AND (p_itinerary IS NULL OR itinerary_id = p_itinerary)) END
$$;
-- Like every function of the service's since 0007: for the service's own role only.
REVOKE ALL ON FUNCTION tripsage.count_itineraries(uuid), tripsage.count_activities(uuid, uuid)
  FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION tripsage.count_itineraries(uuid), tripsage.count_activities(uuid, uuid) TO tripsage_api;
"""

DROP = """
DROP FUNCTION IF EXISTS tripsage.count_itineraries(uuid);
DROP FUNCTION IF EXISTS tripsage.count_activities(uuid, uuid);
"""


def upgrade() -> None:
    """Create the counting functions of the size caps."""
    execute_script(COUNT_FUNCTIONS)


def downgrade() -> None:
    """Drop the counting functions."""
    execute_script(DROP)
