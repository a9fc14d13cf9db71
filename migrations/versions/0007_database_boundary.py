"""The database boundary: the service's own role, no privileges for Supabase's API roles, guarded trips.

On a Supabase project the same tokens reach the database through the Data API (PostgREST logs in as
`authenticator`, switches to `anon` or `authenticated` and sets the claims) and GraphQL. Before this
revision the service's requests ran as `authenticated`, so every grant and policy the service needed
was also a door for those paths. From here on:

- Requests run as **`tripsage_api`**: NOLOGIN, no BYPASSRLS, granted to the migrating login role and
  never to `authenticator` (the migration refuses to finish if it is). Every policy on the service's
  tables names `tripsage_api`; the table grants go to it alone. `anon` and `authenticated` keep no
  privilege on any table, sequence, schema or function of the service's (Supabase's default
  privileges in `public` had given them ALL, TRUNCATE included).
- `tripsage_api` reaches `auth.uid()` either by a direct grant on the `auth` schema (plain PostgreSQL,
  where the shim made it) or as a member of `authenticated` (a Supabase project, whose `auth` schema
  is not ours to grant on): membership gives it what `authenticated` has, never the reverse.
- The trip read functions of 0006 took the claims and the user id as separate parameters and were
  executable by PUBLIC: anyone who could call them could read anyone's trips. They are replaced by
  functions that derive the user from the claims they set, executable by `tripsage_api` only (its
  login members call them and switch to it inside), and that set the legacy
  `request.jwt.claim.sub`/`.role` too, for the database image's `auth.uid()`.
- A trigger keeps what no command changes unchanged: a trip's `id`, `owner_id` and `created_at`, and
  its `version` moves by 0 or exactly 1 per update, whoever writes.
- Migration bookkeeping leaves `public` (see `migrations/env.py`: `tripsage_meta.alembic_version`).
- Where the `auth` schema is not the migrating role's (Supabase's own), auth functions that 0001's
  shim created are dropped again: Supabase's Auth server creates and must own them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from core.migrate import execute_script, fetch_notices

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

SERVICE_ROLE = "tripsage_api"
WRITE_TABLES = (
    "profiles, user_preferences, trips, trip_collaborators, itineraries, activities, idempotency_keys,"
    " api_keys, memories, chat_sessions, chat_messages"
)
READ_TABLES = "trip_views, trip_view_members"
HELPERS = (
    "tripsage.trip_permission(uuid), tripsage.is_collaborator(uuid), tripsage.can_view_trip(uuid),"
    " tripsage.can_edit_trip(uuid), tripsage.can_manage_collaborators(uuid), tripsage.trip_owned_by(uuid, uuid),"
    " tripsage.leave_trip(uuid), tripsage.shares_trip_with(uuid)"
)
"""The permission helpers of 0001 that policies and commands call."""
OUR_TABLES = (
    "'profiles', 'user_preferences', 'trips', 'trip_collaborators', 'itineraries', 'activities',"
    " 'idempotency_keys', 'api_keys', 'memories', 'chat_sessions', 'chat_messages', 'trip_views',"
    " 'trip_view_members'"
)


def policies_to(role: str) -> str:
    """A block naming `role` in every policy on the service's tables, live and the rebuild/rollback copies."""
    return f"""
DO $$
DECLARE p record;
BEGIN
  FOR p IN SELECT schemaname, tablename, policyname FROM pg_policies
           WHERE schemaname IN ('public', 'tripsage_rebuild', 'tripsage_prev') AND tablename IN ({OUR_TABLES})
  LOOP
    EXECUTE format('ALTER POLICY %I ON %I.%I TO {role}', p.policyname, p.schemaname, p.tablename);
  END LOOP;
END $$;"""


ROLE = rf"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SERVICE_ROLE}') THEN
    BEGIN
      CREATE ROLE {SERVICE_ROLE} NOLOGIN INHERIT NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- a concurrent run made it
    END;
    RAISE NOTICE 'created role {SERVICE_ROLE}';
  END IF;
  -- The login that migrates is the one that serves (README: another login needs the same grant).
  -- On PostgreSQL 16+ the creator of a role is already its member, but without the SET option.
  IF current_setting('server_version_num')::int >= 160000 THEN
    EXECUTE format('GRANT {SERVICE_ROLE} TO %I WITH INHERIT TRUE, SET TRUE', current_user);
  ELSE
    EXECUTE format('GRANT {SERVICE_ROLE} TO %I', current_user);
  END IF;
  -- auth.uid() for the service's role: a direct grant where the auth schema is ours to grant on,
  -- else membership of authenticated (which Supabase grants USAGE on auth).
  IF NOT has_schema_privilege('{SERVICE_ROLE}', 'auth', 'USAGE') THEN
    GRANT USAGE ON SCHEMA auth TO {SERVICE_ROLE};  -- a WARNING, not an error, without the grant option
  END IF;
  IF NOT has_schema_privilege('{SERVICE_ROLE}', 'auth', 'USAGE') THEN
    BEGIN
      GRANT authenticated TO {SERVICE_ROLE};
      RAISE NOTICE '{SERVICE_ROLE} reaches auth.uid() as a member of authenticated';
    EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN NULL;
    END;
  END IF;
  IF NOT has_function_privilege('{SERVICE_ROLE}', 'auth.uid()', 'EXECUTE') THEN
    RAISE EXCEPTION '{SERVICE_ROLE} cannot call auth.uid()'
      USING HINT = 'as a superuser: GRANT USAGE ON SCHEMA auth TO {SERVICE_ROLE}; then migrate again';
  END IF;
END $$;
"""

GRANTS = rf"""
REVOKE ALL ON {WRITE_TABLES}, {READ_TABLES} FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON {WRITE_TABLES} TO {SERVICE_ROLE};
GRANT SELECT ON {READ_TABLES} TO {SERVICE_ROLE};
REVOKE ALL ON SEQUENCE chat_messages_seq_seq FROM PUBLIC, anon, authenticated;
REVOKE ALL ON SCHEMA tripsage, tripsage_rebuild, tripsage_prev FROM PUBLIC, anon, authenticated;
GRANT USAGE ON SCHEMA tripsage TO {SERVICE_ROLE};
REVOKE ALL ON ALL TABLES IN SCHEMA tripsage FROM PUBLIC, anon, authenticated;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tripsage FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION {HELPERS} TO {SERVICE_ROLE};
-- Every policy on the service's tables (live, a rebuild's shadow copy, the copy kept for rollback)
-- names the service's role instead of authenticated; so do the grants of those copies.
{policies_to(SERVICE_ROLE)}
DO $$
DECLARE p record;
BEGIN
  FOR p IN SELECT n.nspname AS schemaname, c.relname AS tablename FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN ('tripsage_rebuild', 'tripsage_prev') AND c.relkind IN ('r', 'p')
  LOOP
    EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC, anon, authenticated', p.schemaname, p.tablename);
    IF p.tablename IN ({OUR_TABLES}) THEN
      EXECUTE format('GRANT SELECT ON %I.%I TO {SERVICE_ROLE}', p.schemaname, p.tablename);
    END IF;
  END LOOP;
END $$;
"""

# Whoever writes (a command, a script, a misconfigured grant): the identity and history of a trip
# stay as the commands made them, and its version moves by at most one per update (a jump or a
# rollback would freeze its document behind the projection's monotonic guard).
TRIP_GUARD = r"""
CREATE FUNCTION tripsage.guard_trip_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  IF NEW.id <> OLD.id OR NEW.owner_id <> OLD.owner_id OR NEW.created_at <> OLD.created_at THEN
    RAISE EXCEPTION 'a trip''s id, owner_id and created_at cannot change'
      USING ERRCODE = 'check_violation', TABLE = 'trips';
  END IF;
  IF NEW.version <> OLD.version AND NEW.version <> OLD.version + 1 THEN
    RAISE EXCEPTION 'a trip''s version moves by exactly one per change'
      USING ERRCODE = 'check_violation', TABLE = 'trips';
  END IF;
  RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION tripsage.guard_trip_update() FROM PUBLIC;
CREATE TRIGGER trips_guard BEFORE UPDATE ON trips FOR EACH ROW EXECUTE FUNCTION tripsage.guard_trip_update();
"""

# `POST /api/trips/{id}/collaborators` by email: a profile the caller cannot read (RLS shows only the
# people one already shares a trip with) is found by its email, but only by someone who may manage
# the trip's collaborators, and only its id is returned.
INVITE_LOOKUP = rf"""
CREATE INDEX IF NOT EXISTS profiles_email_lower_idx ON profiles (lower(email));
CREATE FUNCTION tripsage.collaborator_by_email(p_trip uuid, p_email text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT p.id FROM public.profiles p
  WHERE tripsage.can_manage_collaborators(p_trip) AND lower(p.email) = lower(p_email)
  ORDER BY p.created_at, p.id LIMIT 1
$$;
REVOKE ALL ON FUNCTION tripsage.collaborator_by_email(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tripsage.collaborator_by_email(uuid, text) TO {SERVICE_ROLE};
"""

READ_FUNCTIONS = rf"""
DROP FUNCTION IF EXISTS tripsage.trip_view_get(text, uuid, uuid, text[]);
DROP FUNCTION IF EXISTS tripsage.trip_view_page(text, uuid, integer, text, text, text, timestamptz, uuid);

-- One trip's ETag and, unless the client's If-None-Match already names that ETag, its document.
-- The user is the claims' `sub` (read back through auth.uid() after the switch), never a parameter.
CREATE FUNCTION tripsage.trip_view_get(p_claims text, p_trip_id uuid, p_if_none_match text[])
RETURNS TABLE (etag text, doc bytea)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('role', '{SERVICE_ROLE}', true), set_config('request.jwt.claims', p_claims, true),
    set_config('request.jwt.claim.sub', coalesce(p_claims::jsonb ->> 'sub', ''), true),
    set_config('request.jwt.claim.role', coalesce(p_claims::jsonb ->> 'role', ''), true);
  RETURN QUERY
    SELECT v.etag, CASE WHEN v.etag = ANY (p_if_none_match) THEN NULL ELSE v.doc END
    FROM public.trip_views v
    WHERE v.trip_id = p_trip_id AND (SELECT auth.uid()) = ANY (v.member_ids);
END
$$;

-- A page of the caller's trips, newest first, after the keyset cursor (updated_at, trip_id); NULL
-- status/role/q: no filter. The caller passes bounds after every row when there is no cursor, so
-- the row comparison stays an index condition of trip_view_members_list_idx (see 0006).
CREATE FUNCTION tripsage.trip_view_page(
  p_claims text, p_limit integer, p_status text, p_role text, p_q text, p_after_ts timestamptz, p_after_id uuid
)
RETURNS TABLE (updated_at timestamptz, trip_id uuid, doc bytea)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('role', '{SERVICE_ROLE}', true), set_config('request.jwt.claims', p_claims, true),
    set_config('request.jwt.claim.sub', coalesce(p_claims::jsonb ->> 'sub', ''), true),
    set_config('request.jwt.claim.role', coalesce(p_claims::jsonb ->> 'role', ''), true);
  RETURN QUERY
    SELECT m.updated_at, m.trip_id, v.doc
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
REVOKE ALL ON FUNCTION tripsage.trip_view_get(text, uuid, text[]),
  tripsage.trip_view_page(text, integer, text, text, text, timestamptz, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tripsage.trip_view_get(text, uuid, text[]),
  tripsage.trip_view_page(text, integer, text, text, text, timestamptz, uuid) TO {SERVICE_ROLE};
"""

# Supabase's Auth server creates auth.jwt() (and owns auth.role()): where the auth schema is not the
# migrating role's, functions the 0001 shim created there would make its migrations fail.
AUTH_SHIM_CLEANUP = r"""
DO $$
DECLARE f record;
BEGIN
  IF (SELECT nspowner FROM pg_namespace WHERE nspname = 'auth') <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
  THEN
    FOR f IN SELECT p.oid::regprocedure::text AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'auth' AND p.proname IN ('jwt', 'role') AND p.pronargs = 0
               AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refobjid = p.oid AND d.deptype = 'n')
    LOOP
      EXECUTE format('DROP FUNCTION %s', f.sig);
      RAISE NOTICE 'dropped % (made by the 0001 shim; the auth schema is Supabase''s, whose Auth server creates it)', f.sig;
    END LOOP;
  END IF;
END $$;
"""

# Fails the migration rather than leave the Data API a way into the service's role.
NO_API_MEMBERS = rf"""
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['authenticator', 'anon', 'authenticated', 'service_role'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) AND pg_has_role(r, '{SERVICE_ROLE}', 'MEMBER') THEN
      RAISE EXCEPTION 'role % can switch to {SERVICE_ROLE}: REVOKE {SERVICE_ROLE} FROM %', r, r;
    END IF;
  END LOOP;
END $$;
"""


def upgrade() -> None:
    """Move requests to the service's own role and close every other door."""
    for script in (ROLE, GRANTS, TRIP_GUARD, INVITE_LOOKUP, READ_FUNCTIONS, AUTH_SHIM_CLEANUP, NO_API_MEMBERS):
        for notice in fetch_notices(script):
            log.info("0007: %s", notice)


DOWNGRADE = rf"""
DROP FUNCTION IF EXISTS tripsage.collaborator_by_email(uuid, text);
DROP INDEX IF EXISTS profiles_email_lower_idx;
DROP TRIGGER IF EXISTS trips_guard ON trips;
DROP FUNCTION IF EXISTS tripsage.guard_trip_update();
DROP FUNCTION IF EXISTS tripsage.trip_view_get(text, uuid, text[]);
DROP FUNCTION IF EXISTS tripsage.trip_view_page(text, integer, text, text, text, timestamptz, uuid);
{policies_to("authenticated")}
GRANT SELECT, INSERT, UPDATE, DELETE ON {WRITE_TABLES} TO authenticated;
GRANT SELECT ON {READ_TABLES} TO authenticated;
GRANT USAGE ON SCHEMA tripsage TO authenticated;
GRANT EXECUTE ON FUNCTION {HELPERS} TO authenticated;
REVOKE ALL ON {WRITE_TABLES}, {READ_TABLES} FROM {SERVICE_ROLE};
REVOKE ALL ON SCHEMA tripsage FROM {SERVICE_ROLE};
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tripsage FROM {SERVICE_ROLE};
"""


def downgrade() -> None:
    """Back to requests as `authenticated` (the 0006 read functions come back with 0006's downgrade/upgrade)."""
    execute_script(DOWNGRADE)
    spec = importlib.util.spec_from_file_location("_rev0006", Path(__file__).with_name("0006_read_functions.py"))
    assert spec is not None and spec.loader is not None
    rev0006 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rev0006)
    execute_script(rev0006.READ_FUNCTIONS)
