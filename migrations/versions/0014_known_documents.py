"""The list's read function leaves out the documents the caller says it already holds.

A new overload `tripsage.trip_view_page(…, p_known text[])` answers the same rows as 0007's
function, in the same order and under the same role switch and RLS, plus each row's `etag`; its
`doc` is NULL where `trip_id::text || etag` is one of `p_known`. The API process keeps the
documents it has served (`queries.documents`), names them per (trip, ETag) and fills in those
rows itself: a page whose documents did not change since the process last served them moves a
few hundred bytes from PostgreSQL instead of ~700 KiB. The ETag names the document's bytes (its
version and the MD5 of the document: 0002), so a document used in place of a NULL is the one the
database holds at that moment, checked in the same statement as the visibility.

The function plans its statement for each call's own parameters (`plan_cache_mode =
force_custom_plan`, for the function only). PL/pgSQL's plan cache otherwise moves to a generic plan
after five calls, and the generic plan cannot know that the status, role and search filters are
NULL: it read every one of the caller's member rows and sorted them (171 rows and 643 buffers for a
page of 51 on the bench's user, against 51 rows and 157 buffers in index order), a cost that grows
with the number of trips a user has. Measured on the bench database, per call with every document
held: 575 → 425 µs of PostgreSQL CPU.

0007's function stays (an API process of the previous release still calls it during a rolling
deploy); the downgrade drops the overload. No table changes: data is untouched.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SERVICE_ROLE = "tripsage_api"
SIGNATURE = "tripsage.trip_view_page(text, integer, text, text, text, timestamptz, uuid, text[])"

UPGRADE = f"""
CREATE FUNCTION tripsage.trip_view_page(
  p_claims text, p_limit integer, p_status text, p_role text, p_q text, p_after_ts timestamptz, p_after_id uuid,
  p_known text[]
)
RETURNS TABLE (updated_at timestamptz, trip_id uuid, etag text, doc bytea)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('role', '{SERVICE_ROLE}', true), set_config('request.jwt.claims', p_claims, true),
    set_config('request.jwt.claim.sub', coalesce(p_claims::jsonb ->> 'sub', ''), true),
    set_config('request.jwt.claim.role', coalesce(p_claims::jsonb ->> 'role', ''), true);
  RETURN QUERY
    SELECT m.updated_at, m.trip_id, v.etag,
           CASE WHEN v.trip_id::text || v.etag = ANY (p_known) THEN NULL ELSE v.doc END
    FROM public.trip_view_members m
    JOIN public.trip_views v ON v.trip_id = m.trip_id
    WHERE m.user_id = (SELECT auth.uid())
      AND (m.updated_at, m.trip_id) < (p_after_ts, p_after_id)
      AND (p_status IS NULL OR m.status = p_status)
      AND (p_role IS NULL OR m.role = p_role)
      AND (p_q IS NULL OR strpos(v.search_text, lower(p_q)) > 0)
    ORDER BY m.updated_at DESC, m.trip_id DESC
    LIMIT p_limit;
END
$$;
REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {SERVICE_ROLE};
"""

DOWNGRADE = f"DROP FUNCTION IF EXISTS {SIGNATURE};"


def upgrade() -> None:
    """Add the list function that leaves out known documents."""
    execute_script(UPGRADE)


def downgrade() -> None:
    """Drop it (0007's function is still there)."""
    execute_script(DOWNGRADE)
