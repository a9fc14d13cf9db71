"""The trip read model: one ready TripView document per trip, plus per-member access rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

READ_MODEL = r"""
-- One row per trip: the complete TripView as UTF-8 JSON bytes, sent to clients as they are.
CREATE TABLE trip_views (
  trip_id uuid PRIMARY KEY,
  owner_id uuid NOT NULL,
  member_ids uuid[] NOT NULL,
  status text NOT NULL,
  search_text text NOT NULL,
  updated_at timestamptz NOT NULL,
  version bigint NOT NULL,
  etag text NOT NULL,
  doc bytea NOT NULL,
  projected_at timestamptz NOT NULL DEFAULT now()
);
-- Documents are read whole and sent as bytes; skip pglz so reads do not pay for decompression.
ALTER TABLE trip_views ALTER COLUMN doc SET STORAGE EXTERNAL;

-- One row per (user who may see the trip, trip): the list endpoint's access path, keyset-ordered.
CREATE TABLE trip_view_members (
  user_id uuid NOT NULL,
  trip_id uuid NOT NULL REFERENCES trip_views (trip_id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('owner', 'shared')),
  status text NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, trip_id)
);
CREATE INDEX trip_view_members_list_idx ON trip_view_members (user_id, updated_at DESC, trip_id DESC);
CREATE INDEX trip_view_members_trip_idx ON trip_view_members (trip_id);

ALTER TABLE trip_views ENABLE ROW LEVEL SECURITY;
CREATE POLICY trip_views_select ON trip_views FOR SELECT TO authenticated
  USING ((SELECT auth.uid()) = ANY (member_ids));
ALTER TABLE trip_view_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY trip_view_members_select ON trip_view_members FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()));
GRANT SELECT ON trip_views, trip_view_members TO authenticated, service_role;
"""


def upgrade() -> None:
    """Create the trip read tables with their RLS policies."""
    execute_script(READ_MODEL)


def downgrade() -> None:
    """Drop the trip read tables."""
    execute_script("DROP TABLE IF EXISTS trip_view_members, trip_views CASCADE")
