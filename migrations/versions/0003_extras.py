"""API keys, memories and chat: no schema change is needed (0001 holds the tables); documents them.

The tables, indexes and RLS policies of these resources were created by 0001. This revision only
records, as column comments visible in `psql \\d+` and Supabase's table editor, the contracts the
application relies on, so a DBA knows what the bytes are before touching them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COMMENTS = r"""
COMMENT ON COLUMN api_keys.ciphertext IS
  'Fernet token (cryptography MultiFernet) of the key; keys from TRIPSAGE_ENCRYPTION_KEYS, re-encrypt with `tripsage keys rotate`';
COMMENT ON COLUMN api_keys.last4 IS 'The last 4 characters of the key: the only part ever shown';
COMMENT ON COLUMN memories.search IS 'Full-text vector (simple config) for websearch_to_tsquery/ts_rank';
COMMENT ON COLUMN chat_messages.seq IS 'Insertion order of messages within a session';
"""

UNCOMMENT = r"""
COMMENT ON COLUMN api_keys.ciphertext IS NULL;
COMMENT ON COLUMN api_keys.last4 IS NULL;
COMMENT ON COLUMN memories.search IS NULL;
COMMENT ON COLUMN chat_messages.seq IS NULL;
"""


def upgrade() -> None:
    """Comment the columns whose meaning the application defines."""
    execute_script(COMMENTS)


def downgrade() -> None:
    """Remove the comments."""
    execute_script(UNCOMMENT)
