"""Projection rebuilds: definition versions, rebuild runs and their resumable parts, change capture.

A rebuild fills shadow copies of the read tables in the schema `tripsage_rebuild`, then swaps them
with the live tables in `public`; the tables it replaced move to `tripsage_prev` (kept for
`tripsage projections rollback` until the next rebuild). See `projections.rebuild`.

The live definition version of the trip projection is recorded as the one of the code that runs
this migration: on a fresh database the read model is about to be filled by that code's worker; on
an existing deployment the read model was built before versioning existed and is assumed current
(run `tripsage projections rebuild` if the builder changed in the same release).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from core.migrate import execute_script
from projections.rebuild_state import definition_version

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REBUILDS = r"""
-- Where a rebuild builds (tripsage_rebuild) and where the replaced tables wait for a rollback
-- (tripsage_prev). Nobody but the login role reaches into them: queries read public only.
CREATE SCHEMA tripsage_rebuild;
CREATE SCHEMA tripsage_prev;

-- The definition each projection's live tables were built with, and the one of the tables kept
-- for rollback (with the rebuilds that produced them).
CREATE TABLE tripsage.projection_versions (
  projection text PRIMARY KEY,
  definition_version text NOT NULL,
  rebuild_id bigint,
  switched_at timestamptz,
  previous_version text,
  previous_rebuild_id bigint
);

-- One row per rebuild run. At most one is 'building' per projection; it is resumed by the next
-- `rebuild` when interrupted. holder: who ran it last (host:pid).
CREATE TABLE tripsage.rebuilds (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  projection text NOT NULL,
  state text NOT NULL DEFAULT 'building'
    CHECK (state IN ('building', 'switched', 'rolled_back', 'abandoned')),
  definition_version text NOT NULL,
  holder text NOT NULL,
  batch_size integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  resumed_at timestamptz,
  runs integer NOT NULL DEFAULT 1,
  switched_at timestamptz,
  duration_s double precision,
  rows bigint,
  rows_per_s double precision
);
CREATE UNIQUE INDEX rebuilds_one_building ON tripsage.rebuilds (projection) WHERE state = 'building';

-- The trip-id space of a rebuild split into ranges [lo, hi], each built in keyset order; the
-- cursor (last_trip_id) moves in the same transaction as the batch it covers: an interrupted
-- rebuild resumes exactly after its last committed batch.
CREATE TABLE tripsage.rebuild_parts (
  rebuild_id bigint NOT NULL REFERENCES tripsage.rebuilds (id) ON DELETE CASCADE,
  part integer NOT NULL,
  lo uuid NOT NULL,
  hi uuid NOT NULL,
  last_trip_id uuid,
  rows bigint NOT NULL DEFAULT 0,
  done boolean NOT NULL DEFAULT false,
  PRIMARY KEY (rebuild_id, part)
);

-- Trips changed while a rebuild is building (append-only, so writers never wait on the rebuild's
-- claims): filled by a statement trigger on the change feed that exists only during a rebuild.
CREATE TABLE tripsage.rebuild_dirty (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  trip_id uuid NOT NULL
);

CREATE FUNCTION tripsage.capture_rebuild_dirty() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  -- A leftover trigger (a rebuild killed after its switch) records nothing.
  IF EXISTS (SELECT 1 FROM tripsage.rebuilds WHERE state = 'building') THEN
    INSERT INTO tripsage.rebuild_dirty (trip_id)
    SELECT DISTINCT trip_id FROM added WHERE trip_id IS NOT NULL;
  END IF;
  RETURN NULL;
END $$;

GRANT SELECT ON tripsage.projection_versions, tripsage.rebuilds, tripsage.rebuild_parts, tripsage.rebuild_dirty
  TO service_role;
"""

DROP = r"""
DROP TRIGGER IF EXISTS changes_rebuild_capture ON tripsage.changes;
DROP FUNCTION IF EXISTS tripsage.capture_rebuild_dirty();
DROP TABLE IF EXISTS tripsage.rebuild_dirty, tripsage.rebuild_parts, tripsage.rebuilds, tripsage.projection_versions;
DROP SCHEMA IF EXISTS tripsage_rebuild CASCADE;
DROP SCHEMA IF EXISTS tripsage_prev CASCADE;
"""


def upgrade() -> None:
    """Create the rebuild bookkeeping and record the live definition version."""
    execute_script(REBUILDS)
    version = definition_version().replace("'", "''")
    execute_script(
        "INSERT INTO tripsage.projection_versions (projection, definition_version)"
        f" VALUES ('trip_views', '{version}') ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    """Drop what upgrade added (and any rebuild or rollback copy)."""
    execute_script(DROP)
