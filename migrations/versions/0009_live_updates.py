"""Live updates: a position on every projected document, tombstones for removals, and the replay function.

- `tripsage.live_positions` numbers projected changes. The worker stamps each document it changed
  (`trip_views.position`) and each removal (`tripsage.live_removals`) at the end of its batch, under
  a transaction-scoped advisory lock held until commit (`projections.apply.FINISH`), so positions
  become visible in ascending order: a reader that has seen position N has seen every change below N.
  The numbers are the `id:` of the events of `GET /api/events`.
- `tripsage.live_removals`: one row per (trip, user who could see it and no longer can), written by
  the projection's refresh statement when a trip is deleted or a member loses access. Pruned by the
  worker after the retention window (`projections.live.RETENTION_S`); `tripsage.live_horizon`
  remembers the highest pruned position, below which a resume answers `event: reset`.
- `tripsage.live_replay(claims, after, trip)`: a read function (like those of 0007) that switches to
  `tripsage_api` with the caller's claims and returns, in one statement, the latest document of
  every trip changed after a position that the caller may see (RLS on `trip_views`), the caller's
  own removals, or a single `reset` row when the position is older than the retention.

Everything is granted to `tripsage_api` only, never to `anon` or `authenticated`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SERVICE_ROLE = "tripsage_api"

TABLES = rf"""
CREATE SEQUENCE tripsage.live_positions AS bigint;
ALTER TABLE trip_views ADD COLUMN position bigint;
CREATE INDEX trip_views_position_idx ON trip_views (position) WHERE position IS NOT NULL;

CREATE TABLE tripsage.live_removals (
  position bigint,
  trip_id uuid NOT NULL,
  user_id uuid NOT NULL,
  removed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX live_removals_position_idx ON tripsage.live_removals (position);
CREATE INDEX live_removals_user_idx ON tripsage.live_removals (user_id, position);
CREATE INDEX live_removals_unstamped_idx ON tripsage.live_removals (trip_id) WHERE position IS NULL;

CREATE TABLE tripsage.live_horizon (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  pruned_through bigint NOT NULL DEFAULT 0
);
INSERT INTO tripsage.live_horizon DEFAULT VALUES;

ALTER TABLE tripsage.live_removals ENABLE ROW LEVEL SECURITY;
CREATE POLICY live_removals_select ON tripsage.live_removals FOR SELECT TO {SERVICE_ROLE}
  USING (user_id = (SELECT auth.uid()));
ALTER TABLE tripsage.live_horizon ENABLE ROW LEVEL SECURITY;
CREATE POLICY live_horizon_select ON tripsage.live_horizon FOR SELECT TO {SERVICE_ROLE} USING (true);

REVOKE ALL ON tripsage.live_removals, tripsage.live_horizon FROM PUBLIC, anon, authenticated;
REVOKE ALL ON SEQUENCE tripsage.live_positions FROM PUBLIC, anon, authenticated;
GRANT SELECT ON tripsage.live_removals, tripsage.live_horizon TO {SERVICE_ROLE};
"""

REPLAY = rf"""
-- What a subscriber missed since position p_after (NULL p_trip: every trip), oldest first: the
-- current document of each trip changed since then that the caller may see, and the caller's
-- removals not overtaken by a later document it may see; or one `reset` row when p_after is
-- below what the worker has pruned.
CREATE FUNCTION tripsage.live_replay(p_claims text, p_after bigint, p_trip uuid)
RETURNS TABLE (kind text, "position" bigint, trip_id uuid, doc bytea)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('role', '{SERVICE_ROLE}', true), set_config('request.jwt.claims', p_claims, true),
    set_config('request.jwt.claim.sub', coalesce(p_claims::jsonb ->> 'sub', ''), true),
    set_config('request.jwt.claim.role', coalesce(p_claims::jsonb ->> 'role', ''), true);
  IF p_after < (SELECT h.pruned_through FROM tripsage.live_horizon h) THEN
    RETURN QUERY SELECT 'reset'::text, NULL::bigint, NULL::uuid, NULL::bytea;
    RETURN;
  END IF;
  RETURN QUERY
    SELECT c.kind, c.position, c.trip_id, c.doc FROM (
      SELECT 'trip'::text AS kind, v.position, v.trip_id, v.doc
      FROM public.trip_views v
      WHERE v.position > p_after AND (SELECT auth.uid()) = ANY (v.member_ids)
        AND (p_trip IS NULL OR v.trip_id = p_trip)
      UNION ALL
      (SELECT DISTINCT ON (r.trip_id) 'trip_removed'::text, r.position, r.trip_id, NULL::bytea
      FROM tripsage.live_removals r
      WHERE r.position > p_after AND r.user_id = (SELECT auth.uid())
        AND (p_trip IS NULL OR r.trip_id = p_trip)
        AND NOT EXISTS (SELECT 1 FROM public.trip_views v
                        WHERE v.trip_id = r.trip_id AND v.position > r.position
                          AND (SELECT auth.uid()) = ANY (v.member_ids))
       ORDER BY r.trip_id, r.position DESC)
    ) c
    ORDER BY c.position;
END
$$;
REVOKE ALL ON FUNCTION tripsage.live_replay(text, bigint, uuid) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION tripsage.live_replay(text, bigint, uuid) TO {SERVICE_ROLE};
"""

DOWNGRADE = """
DROP FUNCTION IF EXISTS tripsage.live_replay(text, bigint, uuid);
DROP TABLE IF EXISTS tripsage.live_removals, tripsage.live_horizon;
DROP INDEX IF EXISTS trip_views_position_idx;
ALTER TABLE trip_views DROP COLUMN IF EXISTS position;
DROP SEQUENCE IF EXISTS tripsage.live_positions;
"""


def upgrade() -> None:
    """Create the positions, the removal tombstones and the replay function."""
    execute_script(TABLES)
    execute_script(REPLAY)


def downgrade() -> None:
    """Drop what the upgrade created."""
    execute_script(DOWNGRADE)
