"""Read functions: the trip query endpoints' statements, each setting the caller's role and claims itself.

A query endpoint must run its statement as `authenticated` with the caller's claims. Done as a
transaction (`BEGIN; set_config(...)`, the statement, `COMMIT`) that costs three round trips and,
in the app, most of a request's CPU. A plpgsql function can do both in ONE statement: it sets
`role` and `request.jwt.claims` transaction-locally (the statement's implicit transaction ends
with it, so nothing outlives the call), then plans and runs its query as `authenticated`, where
Row Level Security applies exactly as in a transaction (plpgsql plans are made after the
set_config and are replanned whenever the role differs from the one they were made for).

The functions are SECURITY INVOKER (the default): a caller that is not a member of
`authenticated` cannot switch to it and gets an error, so EXECUTE stays granted to PUBLIC (the
login role that serves need not be the one that migrated). Tables are schema-qualified, so no
`search_path` setting is needed, and a rebuild's table swap is picked up by the plan cache.
Callers: `queries.trips` (through `queries.plumbing.call_as`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

READ_FUNCTIONS = r"""
-- One trip's ETag and, unless the client's If-None-Match already names that ETag, its document.
CREATE FUNCTION tripsage.trip_view_get(p_claims text, p_user_id uuid, p_trip_id uuid, p_if_none_match text[])
RETURNS TABLE (etag text, doc bytea)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('role', 'authenticated', true), set_config('request.jwt.claims', p_claims, true);
  RETURN QUERY
    SELECT v.etag, CASE WHEN v.etag = ANY (p_if_none_match) THEN NULL ELSE v.doc END
    FROM public.trip_views v
    WHERE v.trip_id = p_trip_id AND p_user_id = ANY (v.member_ids);
END
$$;

-- A page of the trips the user may see, newest first, after the keyset cursor (updated_at,
-- trip_id); NULL status/role/q: no filter. The cursor is never NULL: without one the caller
-- (`queries.trips.TRIP_PAGE`) passes bounds after every row, so the row comparison stays an index
-- condition of trip_view_members_list_idx in the generic plan (a coalesce in here would turn it
-- into a filter over all the user's rows, plus a sort: checked with auto_explain).
-- `q` is a plain substring of the lower-cased search text (strpos: `%` and `_` are no wildcards).
CREATE FUNCTION tripsage.trip_view_page(
  p_claims text, p_user_id uuid, p_limit integer,
  p_status text, p_role text, p_q text, p_after_ts timestamptz, p_after_id uuid
)
RETURNS TABLE (updated_at timestamptz, trip_id uuid, doc bytea)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('role', 'authenticated', true), set_config('request.jwt.claims', p_claims, true);
  RETURN QUERY
    SELECT m.updated_at, m.trip_id, v.doc
    FROM public.trip_view_members m
    JOIN public.trip_views v ON v.trip_id = m.trip_id
    WHERE m.user_id = p_user_id
      AND (m.updated_at, m.trip_id) < (p_after_ts, p_after_id)
      AND (p_status IS NULL OR m.status = p_status)
      AND (p_role IS NULL OR m.role = p_role)
      AND (p_q IS NULL OR strpos(v.search_text, lower(p_q)) > 0)
    ORDER BY m.updated_at DESC, m.trip_id DESC
    LIMIT p_limit;
END
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS tripsage.trip_view_get(text, uuid, uuid, text[]);
DROP FUNCTION IF EXISTS tripsage.trip_view_page(text, uuid, integer, text, text, text, timestamptz, uuid);
"""


def upgrade() -> None:
    """Create the read functions of the trip query endpoints."""
    execute_script(READ_FUNCTIONS)


def downgrade() -> None:
    """Drop the read functions."""
    execute_script(DROP)
