"""Projection state: fan-out columns on the change feed, dead letters, worker heartbeats.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PROJECTION_STATE = r"""
-- A profile change is expanded by the worker into one trip change per trip that shows the user.
-- Those rows carry the profile change's xid in origin_xid, so a consistency token taken from the
-- profile command stays "pending" until every fanned-out trip is projected. A user with more trips
-- than one fan-out step handles gets a continuation row: fanout_after is the last trip id done.
ALTER TABLE tripsage.changes ADD COLUMN origin_xid xid8;
ALTER TABLE tripsage.changes ADD COLUMN fanout_after uuid;
CREATE INDEX changes_origin_xid_idx ON tripsage.changes (origin_xid) WHERE origin_xid IS NOT NULL;
CREATE INDEX changes_created_idx ON tripsage.changes (created_at);
-- A batch takes every claimable row of the trips it picked (one rebuild per trip).
CREATE INDEX changes_trip_idx ON tripsage.changes (trip_id) WHERE trip_id IS NOT NULL;

-- Trips whose projection failed. retry_at set: retried with backoff by the worker's sweep;
-- retry_at NULL: parked (a dead letter) until `tripsage projections retry-dead` or a later change
-- that projects cleanly. xids are the feed transactions the failure swallowed (tokens stay stale).
CREATE TABLE tripsage.dead_letters (
  trip_id uuid PRIMARY KEY,
  xids xid8[] NOT NULL DEFAULT '{}',
  attempts integer NOT NULL DEFAULT 1 CHECK (attempts >= 0),
  error text NOT NULL,
  first_failed_at timestamptz NOT NULL DEFAULT now(),
  last_failed_at timestamptz NOT NULL DEFAULT now(),
  retry_at timestamptz
);
CREATE INDEX dead_letters_retry_idx ON tripsage.dead_letters (retry_at) WHERE retry_at IS NOT NULL;

-- One row per running worker, refreshed about every second (readiness and `projections status`).
CREATE TABLE tripsage.worker_heartbeats (
  worker_id text PRIMARY KEY,
  hostname text NOT NULL,
  pid integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  beat_at timestamptz NOT NULL DEFAULT now(),
  batches bigint NOT NULL DEFAULT 0,
  trips bigint NOT NULL DEFAULT 0
);

-- The projection tables are the worker's (it runs as the login role); service_role may read the
-- operational state for `GET /api/admin/projections`.
GRANT SELECT ON tripsage.changes, tripsage.dead_letters, tripsage.worker_heartbeats TO service_role;
"""

DROP = r"""
DROP TABLE IF EXISTS tripsage.worker_heartbeats, tripsage.dead_letters;
DROP INDEX IF EXISTS tripsage.changes_origin_xid_idx;
DROP INDEX IF EXISTS tripsage.changes_created_idx;
DROP INDEX IF EXISTS tripsage.changes_trip_idx;
ALTER TABLE tripsage.changes DROP COLUMN IF EXISTS fanout_after;
ALTER TABLE tripsage.changes DROP COLUMN IF EXISTS origin_xid;
"""


def upgrade() -> None:
    """Add the fan-out columns, the dead-letter table and the heartbeat table."""
    execute_script(PROJECTION_STATE)


def downgrade() -> None:
    """Drop what upgrade added."""
    execute_script(DROP)
