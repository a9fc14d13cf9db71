"""The shadow read tables of a rebuild: cloning, change capture, filling, and the atomic swaps.

A rebuild builds complete copies of `trip_views` and `trip_view_members` in the schema
`tripsage_rebuild`, under the same names. Filling them reuses the worker's own statement
(`trip_view.refresh_trips`): with `search_path = tripsage_rebuild, public` for one transaction, its
unqualified `trip_views`/`trip_view_members` are the copies, while the write model still resolves
to `public`. One builder, whatever table it fills.

Swapping moves tables between schemas (`ALTER TABLE … SET SCHEMA`): index, constraint and policy
names are per schema, so every name stays what the migrations created, and foreign keys, grants
and RLS policies travel with their tables. Prepared statements of the API and the worker name the
tables unqualified and are re-resolved by PostgreSQL after the swap (a waiting statement re-checks
the name once it gets its lock), so they read and write the new tables at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.live import forget_unnumbered_removals
from projections.trip_view import refresh_trips

SHADOW = "tripsage_rebuild"
PREVIOUS = "tripsage_prev"
TABLES = ("trip_views", "trip_view_members")
"""The read tables of the trip projection, parents first."""

PREPARE = r"""
DO $prepare$
DECLARE
  stmts text[] := '{}';
  stmt text;
  saved_path text := current_setting('search_path');
  live regclass[] := ARRAY['public.trip_views'::regclass, 'public.trip_view_members'::regclass];
BEGIN
  DROP TABLE IF EXISTS tripsage_rebuild.trip_view_members, tripsage_rebuild.trip_views;
  -- Definitions are rendered with only public on the path, so the read tables print unqualified
  -- and resolve to the copies when run with tripsage_rebuild first.
  PERFORM set_config('search_path', 'public, pg_catalog', true);
  stmts := stmts || ARRAY(
    SELECT format('CREATE TABLE tripsage_rebuild.%I (LIKE public.%I INCLUDING ALL EXCLUDING INDEXES)', c.relname, c.relname)
      || CASE WHEN c.reloptions IS NULL THEN '' ELSE format(' WITH (%s)', array_to_string(c.reloptions, ', ')) END
    FROM unnest(live) WITH ORDINALITY AS l(oid, n) JOIN pg_class c ON c.oid = l.oid ORDER BY l.n);
  -- Keys (named as in public), then foreign keys; CHECK and NOT NULL come with LIKE.
  stmts := stmts || ARRAY(
    SELECT format('ALTER TABLE tripsage_rebuild.%I ADD CONSTRAINT %I %s', r.relname, k.conname, pg_get_constraintdef(k.oid))
    FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid
    WHERE k.conrelid = ANY (live) AND k.contype IN ('p', 'u', 'x', 'f')
    ORDER BY k.contype = 'f', k.conname);
  stmts := stmts || ARRAY(
    SELECT regexp_replace(pg_get_indexdef(i.indexrelid), ' ON (ONLY )?public\.', ' ON \1tripsage_rebuild.')
    FROM pg_index i
    WHERE i.indrelid = ANY (live)
      AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
    ORDER BY i.indexrelid);
  stmts := stmts || ARRAY(
    SELECT format('ALTER TABLE tripsage_rebuild.%I ENABLE ROW LEVEL SECURITY', c.relname)
    FROM pg_class c WHERE c.oid = ANY (live) AND c.relrowsecurity);
  stmts := stmts || ARRAY(
    SELECT format('ALTER TABLE tripsage_rebuild.%I FORCE ROW LEVEL SECURITY', c.relname)
    FROM pg_class c WHERE c.oid = ANY (live) AND c.relforcerowsecurity);
  stmts := stmts || ARRAY(
    SELECT format('CREATE POLICY %I ON tripsage_rebuild.%I AS %s FOR %s TO %s%s%s', p.policyname, p.tablename,
                  p.permissive, p.cmd,
                  (SELECT string_agg(CASE WHEN r = 'public' THEN 'PUBLIC' ELSE quote_ident(r) END, ', ')
                   FROM unnest(p.roles) AS u(r)),
                  coalesce(' USING (' || p.qual || ')', ''), coalesce(' WITH CHECK (' || p.with_check || ')', ''))
    FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename IN ('trip_views', 'trip_view_members'));
  stmts := stmts || ARRAY(
    SELECT format('GRANT %s ON tripsage_rebuild.%I TO %s%s', a.privilege_type, c.relname,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                  CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
    WHERE c.oid = ANY (live) AND a.grantee <> c.relowner);
  PERFORM set_config('search_path', 'tripsage_rebuild, public, pg_catalog', true);
  FOREACH stmt IN ARRAY stmts LOOP
    EXECUTE stmt;
  END LOOP;
  PERFORM set_config('search_path', saved_path, true);
END
$prepare$
"""
"""Create empty shadow copies of the live read tables: columns, defaults, storage, CHECKs, keys and
indexes under their own names, the foreign key between the copies, RLS with the same policies, and
the same grants. Derived from the catalog, so a later migration's index or policy is copied too."""

CAPTURE_ON = text(
    """
CREATE OR REPLACE TRIGGER changes_rebuild_capture AFTER INSERT ON tripsage.changes
REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION tripsage.capture_rebuild_dirty()
"""
)
"""Record every trip that changes from now on in `tripsage.rebuild_dirty`. Creating the trigger
waits for the transactions writing the feed at that moment: each change either committed before the
capture began (so every batch built afterwards sees it) or is captured."""

CAPTURE_OFF = text("DROP TRIGGER IF EXISTS changes_rebuild_capture ON tripsage.changes")
CAPTURING = text(
    "SELECT EXISTS (SELECT 1 FROM pg_trigger"
    " WHERE tgrelid = 'tripsage.changes'::regclass AND tgname = 'changes_rebuild_capture')"
)
CLEAR_DIRTY = text("DELETE FROM tripsage.rebuild_dirty")
COUNT_DIRTY = text("SELECT count(*) FROM tripsage.rebuild_dirty")

CLAIM_DIRTY = text(
    """
WITH claimed AS (
  DELETE FROM tripsage.rebuild_dirty
  WHERE id IN (SELECT id FROM tripsage.rebuild_dirty ORDER BY id LIMIT :limit)
  RETURNING trip_id
)
SELECT DISTINCT trip_id FROM claimed ORDER BY trip_id
"""
)
"""Take up to :limit captured changes; the trips they name, each once."""

NEXT_IDS = text("SELECT id FROM trips WHERE id BETWEEN :lo AND :hi ORDER BY id LIMIT :limit")
"""The next keyset batch of one part's range."""

SHADOW_PATH = text("SELECT set_config('search_path', 'tripsage_rebuild, public', true)")
LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :timeout, true)")
LOCK_MEMBERS = text("LOCK TABLE public.trip_view_members IN ACCESS EXCLUSIVE MODE")
LOCK_VIEWS = text("LOCK TABLE public.trip_views IN ACCESS EXCLUSIVE MODE")
SHORT_LOCK_TIMEOUT = text(
    "SELECT set_config('lock_timeout',"
    " least(CAST(:ms AS integer), extract(epoch FROM CAST(current_setting('deadlock_timeout') AS interval)) * 400)::int"
    " || 'ms', true)"
)
"""While holding one read table, wait for the other less than the deadlock timeout (see `lock_live`)."""
HAS_PREVIOUS = text("SELECT to_regclass('tripsage_prev.trip_views') IS NOT NULL")
DROP_SHADOW = text("DROP TABLE IF EXISTS tripsage_rebuild.trip_view_members, tripsage_rebuild.trip_views")
SHADOW_ROWS = text("SELECT count(*) FROM tripsage_rebuild.trip_views")


SHAPE = text(
    r"""
SELECT coalesce(md5(string_agg(item, E'\n' ORDER BY item)), '')
FROM (
  SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END || ' ' || a.attstorage::text
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relname IN ('trip_views', 'trip_view_members')
    AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'index ' || i.relname || ' ' || regexp_replace(pg_get_indexdef(i.oid), ' ON (ONLY )?\S+\.', ' ON ')
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
  WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relname IN ('trip_views', 'trip_view_members')
  UNION ALL
  SELECT 'constraint ' || c.relname || '.' || k.conname || ' '
         || regexp_replace(pg_get_constraintdef(k.oid), '\m(public|tripsage_rebuild)\.', '', 'g')
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
  WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relname IN ('trip_views', 'trip_view_members')
  UNION ALL
  SELECT 'policy ' || c.relname || '.' || p.polname || ' ' || p.polcmd::text || ' ' || p.polroles::text || ' '
         || regexp_replace(coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' '
                           || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''), '\m(public|tripsage_rebuild)\.', '', 'g')
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
  WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relname IN ('trip_views', 'trip_view_members')
  UNION ALL
  SELECT 'table ' || c.relname || ' ' || c.relrowsecurity || c.relforcerowsecurity || ' '
         || coalesce((SELECT string_agg(acl::text, ',' ORDER BY acl::text) FROM unnest(c.relacl) AS acl), '')
  FROM pg_class c
  WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relname IN ('trip_views', 'trip_view_members')
) shape(item)
"""
)
"""A fingerprint of the read tables' definition in :schema (columns, indexes, constraints, policies,
RLS, grants): equal for the live tables and their copy unless a migration changed the live ones.
Schema prefixes are stripped: how a reference prints depends on the search path of the moment."""


def _moves(moves: Sequence[tuple[str, str]]) -> list[str]:
    """`ALTER TABLE … SET SCHEMA` for both read tables per (from, to) step, children first."""
    return [f"ALTER TABLE {src}.{table} SET SCHEMA {dst}" for src, dst in moves for table in reversed(TABLES)]


SWITCH = [
    f"DROP TABLE IF EXISTS {PREVIOUS}.trip_view_members, {PREVIOUS}.trip_views",
    *_moves([("public", PREVIOUS), (SHADOW, "public")]),
]
"""Keep the live tables as the previous version (dropping the one before) and put the copies live."""

SWAP_BACK = _moves([("public", SHADOW), (PREVIOUS, "public"), (SHADOW, PREVIOUS)])
"""Exchange the live tables and the previous version (the shadow schema is empty at that point)."""


async def lock_live(conn: AsyncConnection, timeout_ms: int) -> None:
    """Lock both live read tables exclusively (queries and the worker wait until the commit).

    Readers and the worker lock the two tables in different orders (the list query members first,
    the worker's upsert views first), so no order is safe from a deadlock. The members table is
    taken first (the list query is the most frequent); the second lock waits less than
    PostgreSQL's `deadlock_timeout`, so if a waiter is stuck behind us it is our attempt that gives
    up (55P03, retried by the caller) before the deadlock detector would kill a query.

    Args:
        conn: The switch or rollback transaction (the first statements that touch the read tables).
        timeout_ms: How long to wait for the first table.
    """
    await conn.execute(LOCK_TIMEOUT, {"timeout": f"{timeout_ms}ms"})
    await conn.execute(LOCK_MEMBERS)
    await conn.execute(SHORT_LOCK_TIMEOUT, {"ms": timeout_ms})
    await conn.execute(LOCK_VIEWS)


async def refresh_shadow(conn: AsyncConnection, trip_ids: Sequence[uuid.UUID]) -> int:
    """Build `trip_ids` into the shadow tables with the worker's own statement (caller's transaction).

    Args:
        conn: The login role inside a transaction; its search path points at the shadow until the end.
        trip_ids: The trips to (re)build; ids of deleted trips remove their shadow rows.

    Returns:
        Documents written or deleted.
    """
    await conn.execute(SHADOW_PATH)
    written = await refresh_trips(conn, trip_ids)
    await forget_unnumbered_removals(conn, trip_ids)  # relative to the copy: no subscriber saw it
    return written


async def run_statements(conn: AsyncConnection, statements: Sequence[str]) -> None:
    """Run DDL through the driver's simple-query path (one message, no server-side prepare)."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None and driver.is_in_transaction(), "run DDL inside the caller's transaction"
    for statement in statements:
        await driver.execute(statement)
