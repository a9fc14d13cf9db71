"""The permission helpers of the RLS policies and the size caps in PL/pgSQL: planned once per session.

Every policy on the write model calls `tripsage.trip_permission` (directly or through
`can_view_trip`, `can_edit_trip`, `can_manage_collaborators`, `trip_owned_by`), and the size caps
call `count_itineraries` / `count_activities`. As SQL functions that are SECURITY DEFINER (never
inlined) their bodies were parsed and planned again on every call: 0.1–0.3 ms each, several per
command. PL/pgSQL keeps each statement's plan for the session. Same signatures, same results,
same volatility (STABLE: they read with the calling statement's snapshot), same owner, privileges
and `search_path`; measured with `bench/write_bench.py` (README "Database & Performance").

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

HEAD = "STABLE SECURITY DEFINER SET search_path = pg_catalog, public"

UPGRADE = f"""
CREATE OR REPLACE FUNCTION tripsage.trip_permission(p_trip uuid) RETURNS text
LANGUAGE plpgsql {HEAD} AS $$
DECLARE
  v_uid uuid := auth.uid();
  v_owner uuid;
  v_permission text;
BEGIN
  SELECT t.owner_id INTO v_owner FROM public.trips t WHERE t.id = p_trip;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF v_owner = v_uid THEN
    RETURN 'owner';
  END IF;
  SELECT c.permission INTO v_permission FROM public.trip_collaborators c
  WHERE c.trip_id = p_trip AND c.user_id = v_uid;
  RETURN v_permission;
END
$$;

CREATE OR REPLACE FUNCTION tripsage.is_collaborator(p_trip uuid) RETURNS boolean
LANGUAGE plpgsql {HEAD} AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM public.trip_collaborators c WHERE c.trip_id = p_trip AND c.user_id = auth.uid());
END
$$;

CREATE OR REPLACE FUNCTION tripsage.can_view_trip(p_trip uuid) RETURNS boolean
LANGUAGE plpgsql {HEAD} AS $$
BEGIN
  RETURN coalesce(tripsage.trip_permission(p_trip) IS NOT NULL, false);
END
$$;

CREATE OR REPLACE FUNCTION tripsage.can_edit_trip(p_trip uuid) RETURNS boolean
LANGUAGE plpgsql {HEAD} AS $$
BEGIN
  RETURN coalesce(tripsage.trip_permission(p_trip) IN ('owner', 'edit', 'admin'), false);
END
$$;

CREATE OR REPLACE FUNCTION tripsage.can_manage_collaborators(p_trip uuid) RETURNS boolean
LANGUAGE plpgsql {HEAD} AS $$
BEGIN
  RETURN coalesce(tripsage.trip_permission(p_trip) IN ('owner', 'admin'), false);
END
$$;

CREATE OR REPLACE FUNCTION tripsage.trip_owned_by(p_trip uuid, p_owner uuid) RETURNS boolean
LANGUAGE plpgsql {HEAD} AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM public.trips t WHERE t.id = p_trip AND t.owner_id = p_owner)
     AND tripsage.can_view_trip(p_trip);
END
$$;

CREATE OR REPLACE FUNCTION tripsage.count_itineraries(p_trip uuid) RETURNS bigint
LANGUAGE plpgsql {HEAD} AS $$
BEGIN
  IF NOT tripsage.can_edit_trip(p_trip) THEN
    RETURN NULL;
  END IF;
  RETURN (SELECT count(*) FROM public.itineraries WHERE trip_id = p_trip);
END
$$;

CREATE OR REPLACE FUNCTION tripsage.count_activities(p_trip uuid, p_itinerary uuid) RETURNS bigint
LANGUAGE plpgsql {HEAD} AS $$
BEGIN
  IF NOT tripsage.can_edit_trip(p_trip) THEN
    RETURN NULL;
  END IF;
  RETURN (SELECT count(*) FROM public.activities
          WHERE trip_id = p_trip AND (p_itinerary IS NULL OR itinerary_id = p_itinerary));
END
$$;
"""

DOWNGRADE = f"""
CREATE OR REPLACE FUNCTION tripsage.trip_permission(p_trip uuid) RETURNS text
LANGUAGE sql {HEAD} AS $$
  SELECT CASE WHEN t.owner_id = auth.uid() THEN 'owner'
              ELSE (SELECT c.permission FROM public.trip_collaborators c
                    WHERE c.trip_id = t.id AND c.user_id = auth.uid()) END
  FROM public.trips t WHERE t.id = p_trip
$$;

CREATE OR REPLACE FUNCTION tripsage.is_collaborator(p_trip uuid) RETURNS boolean
LANGUAGE sql {HEAD} AS $$
  SELECT EXISTS (SELECT 1 FROM public.trip_collaborators c WHERE c.trip_id = p_trip AND c.user_id = auth.uid())
$$;

CREATE OR REPLACE FUNCTION tripsage.can_view_trip(p_trip uuid) RETURNS boolean
LANGUAGE sql {HEAD} AS $$
  SELECT coalesce(tripsage.trip_permission(p_trip) IS NOT NULL, false)
$$;

CREATE OR REPLACE FUNCTION tripsage.can_edit_trip(p_trip uuid) RETURNS boolean
LANGUAGE sql {HEAD} AS $$
  SELECT coalesce(tripsage.trip_permission(p_trip) IN ('owner', 'edit', 'admin'), false)
$$;

CREATE OR REPLACE FUNCTION tripsage.can_manage_collaborators(p_trip uuid) RETURNS boolean
LANGUAGE sql {HEAD} AS $$
  SELECT coalesce(tripsage.trip_permission(p_trip) IN ('owner', 'admin'), false)
$$;

CREATE OR REPLACE FUNCTION tripsage.trip_owned_by(p_trip uuid, p_owner uuid) RETURNS boolean
LANGUAGE sql {HEAD} AS $$
  SELECT EXISTS (SELECT 1 FROM public.trips t WHERE t.id = p_trip AND t.owner_id = p_owner)
     AND tripsage.can_view_trip(p_trip)
$$;

CREATE OR REPLACE FUNCTION tripsage.count_itineraries(p_trip uuid) RETURNS bigint
LANGUAGE sql {HEAD} AS $$
  SELECT CASE WHEN tripsage.can_edit_trip(p_trip)
              THEN (SELECT count(*) FROM public.itineraries WHERE trip_id = p_trip) END
$$;

CREATE OR REPLACE FUNCTION tripsage.count_activities(p_trip uuid, p_itinerary uuid) RETURNS bigint
LANGUAGE sql {HEAD} AS $$
  SELECT CASE WHEN tripsage.can_edit_trip(p_trip)
              THEN (SELECT count(*) FROM public.activities
                    WHERE trip_id = p_trip AND (p_itinerary IS NULL OR itinerary_id = p_itinerary)) END
$$;
"""


def upgrade() -> None:
    """Replace the SQL bodies of the permission and counting helpers with PL/pgSQL ones."""
    execute_script(UPGRADE)


def downgrade() -> None:
    """Put the SQL bodies back (as 0001 and 0008 created them)."""
    execute_script(DOWNGRADE)
