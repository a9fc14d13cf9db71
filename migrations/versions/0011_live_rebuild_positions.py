"""Live updates across rebuilds: number every document, and find the unnumbered ones by index.

- Documents projected before 0009 (or written by a rebuild before this revision) have no position:
  a client resuming with `Last-Event-ID` never got them replayed, and a rebuild's switch could not
  tell them from its own new rows. The upgrade numbers each of them once (under the live lock, so
  positions stay visible in ascending order), and notifies the projection channel.
- `trip_views_unnumbered_idx`: the rows without a position, which are few (a batch's documents
  between its refresh and its last statement; a rebuild's copy rows that differ from the live
  ones). The switch numbers them under its exclusive lock (`projections.live.number_incoming`)
  without visiting every row. The rebuild copies the index with the others (`shadow.PREPARE`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

LIVE_LOCK = 0x4C495645_0000_0001  # projections.live.LIVE_LOCK (a migration does not import the app)

UPGRADE = f"""
CREATE INDEX trip_views_unnumbered_idx ON trip_views (trip_id) WHERE position IS NULL;
SELECT pg_advisory_xact_lock({LIVE_LOCK});
WITH numbered AS (
  UPDATE trip_views SET position = nextval('tripsage.live_positions') WHERE position IS NULL RETURNING position
)
SELECT pg_notify('tripsage_projection', CAST(coalesce(max(position), 0) AS text)) FROM numbered;
"""

DOWNGRADE = "DROP INDEX IF EXISTS trip_views_unnumbered_idx;"


def upgrade() -> None:
    """Number the unnumbered documents and index the rows without a position."""
    execute_script(UPGRADE)


def downgrade() -> None:
    """Drop the index (positions stay: 0009 numbers documents too)."""
    execute_script(DOWNGRADE)
