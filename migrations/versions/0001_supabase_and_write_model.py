"""Supabase shims (only where missing), the write model, its change feed and Row Level Security.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SUPABASE_SHIMS = r"""
CREATE SCHEMA IF NOT EXISTS auth;
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- created by a concurrent run
      END;
    END IF;
  END LOOP;
  -- Supabase's service_role bypasses RLS; the plain-PostgreSQL shim does the same.
  BEGIN
    ALTER ROLE service_role BYPASSRLS;
  EXCEPTION WHEN insufficient_privilege THEN NULL;
  END;
  -- Requests switch to these roles with set_config('role', ...): the login role must be a member.
  FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
      BEGIN
        EXECUTE format('GRANT %I TO %I', r, current_user);
      EXCEPTION WHEN insufficient_privilege THEN NULL;
      END;
    END IF;
  END LOOP;
  IF to_regprocedure('auth.uid()') IS NULL THEN
    CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
      SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $f$;
  END IF;
  IF to_regprocedure('auth.role()') IS NULL THEN
    CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
      SELECT coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
      )::text
    $f$;
  END IF;
  IF to_regprocedure('auth.jwt()') IS NULL THEN
    CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
      SELECT coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
      )::jsonb
    $f$;
  END IF;
END $$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.uid(), auth.role(), auth.jwt() TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
CREATE SCHEMA IF NOT EXISTS tripsage;
GRANT USAGE ON SCHEMA tripsage TO authenticated, service_role;
"""

WRITE_MODEL = r"""
CREATE TABLE profiles (
  id uuid PRIMARY KEY,
  email text CHECK (email IS NULL OR char_length(email) <= 320),
  display_name text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 100),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_preferences (
  user_id uuid PRIMARY KEY REFERENCES profiles (id) ON DELETE CASCADE,
  currency char(3) CHECK (currency ~ '^[A-Z]{3}$'),
  home_airport char(3) CHECK (home_airport ~ '^[A-Z]{3}$'),
  travel_style text CHECK (char_length(travel_style) <= 50),
  dietary_restrictions text[] NOT NULL DEFAULT '{}' CHECK (cardinality(dietary_restrictions) <= 50),
  accessibility_needs text[] NOT NULL DEFAULT '{}' CHECK (cardinality(accessibility_needs) <= 50),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trips (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
  title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
  description text CHECK (char_length(description) <= 2000),
  destination text NOT NULL CHECK (char_length(destination) BETWEEN 1 AND 200),
  start_date date NOT NULL,
  end_date date NOT NULL,
  budget numeric(14, 2) CHECK (budget >= 0),
  currency char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
  travelers integer NOT NULL DEFAULT 1 CHECK (travelers BETWEEN 1 AND 1000),
  status text NOT NULL DEFAULT 'planning'
    CHECK (status IN ('planning', 'booked', 'in_progress', 'completed', 'cancelled')),
  trip_type text NOT NULL DEFAULT 'leisure'
    CHECK (trip_type IN ('leisure', 'business', 'family', 'solo', 'other')),
  tags text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
  version bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT trips_dates_ordered CHECK (end_date >= start_date)
);
CREATE INDEX trips_owner_updated_idx ON trips (owner_id, updated_at DESC, id DESC);

CREATE TABLE trip_collaborators (
  trip_id uuid NOT NULL REFERENCES trips (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
  permission text NOT NULL CHECK (permission IN ('view', 'edit', 'admin')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (trip_id, user_id)
);
CREATE INDEX trip_collaborators_user_idx ON trip_collaborators (user_id, trip_id);

CREATE TABLE itineraries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  trip_id uuid NOT NULL REFERENCES trips (id) ON DELETE CASCADE,
  title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
  day date,
  position integer NOT NULL DEFAULT 0 CHECK (position BETWEEN 0 AND 100000),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX itineraries_trip_order_idx ON itineraries (trip_id, position, created_at, id);

CREATE TABLE activities (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  itinerary_id uuid NOT NULL REFERENCES itineraries (id) ON DELETE CASCADE,
  trip_id uuid NOT NULL REFERENCES trips (id) ON DELETE CASCADE,
  title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
  item_type text NOT NULL DEFAULT 'activity'
    CHECK (item_type IN ('activity', 'meal', 'transport', 'accommodation', 'event', 'other')),
  starts_at timestamptz,
  ends_at timestamptz,
  location text CHECK (char_length(location) <= 500),
  price numeric(14, 2) CHECK (price >= 0),
  currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  booking_status text NOT NULL DEFAULT 'planned'
    CHECK (booking_status IN ('planned', 'reserved', 'booked', 'completed', 'cancelled')),
  notes text CHECK (char_length(notes) <= 5000),
  position integer NOT NULL DEFAULT 0 CHECK (position BETWEEN 0 AND 100000),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT activities_times_ordered CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at >= starts_at)
);
CREATE INDEX activities_itinerary_order_idx ON activities (itinerary_id, position, created_at, id);
CREATE INDEX activities_trip_idx ON activities (trip_id);

-- Idempotency-Key records: the first response of a POST, replayed on retry.
CREATE TABLE idempotency_keys (
  user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
  key text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
  request_hash text NOT NULL,
  status_code integer,
  response_headers jsonb,
  response_body bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Bring-your-own API keys, encrypted at rest by the application.
CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
  service text NOT NULL CHECK (char_length(service) BETWEEN 1 AND 50),
  name text NOT NULL DEFAULT 'default' CHECK (char_length(name) BETWEEN 1 AND 100),
  ciphertext bytea NOT NULL,
  last4 text NOT NULL CHECK (char_length(last4) <= 4),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT api_keys_user_service_name_key UNIQUE (user_id, service, name)
);
CREATE INDEX api_keys_user_created_idx ON api_keys (user_id, created_at DESC, id DESC);

CREATE TABLE memories (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
  content text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 32768),
  memory_type text NOT NULL DEFAULT 'note' CHECK (char_length(memory_type) BETWEEN 1 AND 50),
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  search tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, content)) STORED,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX memories_search_idx ON memories USING gin (search);
CREATE INDEX memories_user_created_idx ON memories (user_id, created_at DESC, id DESC);

CREATE TABLE chat_sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
  trip_id uuid REFERENCES trips (id) ON DELETE SET NULL,
  title text CHECK (char_length(title) <= 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_sessions_user_updated_idx ON chat_sessions (user_id, updated_at DESC, id DESC);

CREATE TABLE chat_messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seq bigint GENERATED ALWAYS AS IDENTITY,
  session_id uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
  content text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 32768),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_messages_session_seq_idx ON chat_messages (session_id, seq);
"""

# Permission helpers. SECURITY DEFINER so a policy on one table can consult another without the
# policies recursing into each other; each looks only at the caller (auth.uid()).
HELPERS = r"""
CREATE FUNCTION tripsage.trip_permission(p_trip uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT CASE WHEN t.owner_id = auth.uid() THEN 'owner'
              ELSE (SELECT c.permission FROM public.trip_collaborators c
                    WHERE c.trip_id = t.id AND c.user_id = auth.uid()) END
  FROM public.trips t WHERE t.id = p_trip
$$;
CREATE FUNCTION tripsage.is_collaborator(p_trip uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT EXISTS (SELECT 1 FROM public.trip_collaborators c WHERE c.trip_id = p_trip AND c.user_id = auth.uid())
$$;
CREATE FUNCTION tripsage.can_view_trip(p_trip uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(tripsage.trip_permission(p_trip) IS NOT NULL, false)
$$;
CREATE FUNCTION tripsage.can_edit_trip(p_trip uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(tripsage.trip_permission(p_trip) IN ('owner', 'edit', 'admin'), false)
$$;
CREATE FUNCTION tripsage.can_manage_collaborators(p_trip uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(tripsage.trip_permission(p_trip) IN ('owner', 'admin'), false)
$$;
-- WITH CHECK of trips_update: the stored owner (the statement's snapshot sees the old row) is
-- still the row's owner, i.e. nobody, editors included, can hand a trip to someone else.
CREATE FUNCTION tripsage.trip_owned_by(p_trip uuid, p_owner uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT EXISTS (SELECT 1 FROM public.trips t WHERE t.id = p_trip AND t.owner_id = p_owner)
     AND tripsage.can_view_trip(p_trip)
$$;
-- A collaborator leaving: any collaborator may delete their own row, but a `view` collaborator may
-- not write the trip row, whose version must still rise in the same transaction. This function does
-- exactly both, for the caller only, and nothing else.
CREATE FUNCTION tripsage.leave_trip(p_trip uuid) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  WITH gone AS (
    DELETE FROM public.trip_collaborators WHERE trip_id = p_trip AND user_id = auth.uid() RETURNING trip_id
  )
  UPDATE public.trips t SET version = t.version + 1, updated_at = now()
  FROM gone WHERE t.id = gone.trip_id
  RETURNING t.version
$$;
CREATE FUNCTION tripsage.shares_trip_with(p_user uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT EXISTS (
    SELECT 1 FROM public.trips t
    WHERE (t.owner_id = p_user OR EXISTS (SELECT 1 FROM public.trip_collaborators a
                                            WHERE a.trip_id = t.id AND a.user_id = p_user))
      AND (t.owner_id = auth.uid() OR EXISTS (SELECT 1 FROM public.trip_collaborators b
                                               WHERE b.trip_id = t.id AND b.user_id = auth.uid()))
  )
$$;
REVOKE ALL ON FUNCTION tripsage.trip_permission(uuid), tripsage.is_collaborator(uuid),
  tripsage.can_view_trip(uuid), tripsage.can_edit_trip(uuid), tripsage.can_manage_collaborators(uuid),
  tripsage.trip_owned_by(uuid, uuid), tripsage.leave_trip(uuid), tripsage.shares_trip_with(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tripsage.trip_permission(uuid), tripsage.is_collaborator(uuid),
  tripsage.can_view_trip(uuid), tripsage.can_edit_trip(uuid), tripsage.can_manage_collaborators(uuid),
  tripsage.trip_owned_by(uuid, uuid), tripsage.leave_trip(uuid), tripsage.shares_trip_with(uuid) TO authenticated, service_role;
"""

POLICIES = r"""
ALTER TABLE profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY profiles_select ON profiles FOR SELECT TO authenticated
  USING (id = (SELECT auth.uid()) OR tripsage.shares_trip_with(id));
CREATE POLICY profiles_insert ON profiles FOR INSERT TO authenticated WITH CHECK (id = (SELECT auth.uid()));
CREATE POLICY profiles_update ON profiles FOR UPDATE TO authenticated
  USING (id = (SELECT auth.uid())) WITH CHECK (id = (SELECT auth.uid()));

ALTER TABLE user_preferences ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_preferences_select ON user_preferences FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()) OR tripsage.shares_trip_with(user_id));
CREATE POLICY user_preferences_insert ON user_preferences FOR INSERT TO authenticated
  WITH CHECK (user_id = (SELECT auth.uid()));
CREATE POLICY user_preferences_update ON user_preferences FOR UPDATE TO authenticated
  USING (user_id = (SELECT auth.uid())) WITH CHECK (user_id = (SELECT auth.uid()));

ALTER TABLE trips ENABLE ROW LEVEL SECURITY;
CREATE POLICY trips_select ON trips FOR SELECT TO authenticated
  USING (owner_id = (SELECT auth.uid()) OR tripsage.is_collaborator(id));
CREATE POLICY trips_insert ON trips FOR INSERT TO authenticated WITH CHECK (owner_id = (SELECT auth.uid()));
CREATE POLICY trips_update ON trips FOR UPDATE TO authenticated
  USING (tripsage.can_edit_trip(id)) WITH CHECK (tripsage.can_edit_trip(id) AND tripsage.trip_owned_by(id, owner_id));
CREATE POLICY trips_delete ON trips FOR DELETE TO authenticated USING (owner_id = (SELECT auth.uid()));

ALTER TABLE trip_collaborators ENABLE ROW LEVEL SECURITY;
CREATE POLICY trip_collaborators_select ON trip_collaborators FOR SELECT TO authenticated
  USING (tripsage.can_view_trip(trip_id));
CREATE POLICY trip_collaborators_insert ON trip_collaborators FOR INSERT TO authenticated
  WITH CHECK (tripsage.can_manage_collaborators(trip_id));
CREATE POLICY trip_collaborators_update ON trip_collaborators FOR UPDATE TO authenticated
  USING (tripsage.can_manage_collaborators(trip_id)) WITH CHECK (tripsage.can_manage_collaborators(trip_id));
CREATE POLICY trip_collaborators_delete ON trip_collaborators FOR DELETE TO authenticated
  USING (tripsage.can_manage_collaborators(trip_id) OR user_id = (SELECT auth.uid()));

ALTER TABLE itineraries ENABLE ROW LEVEL SECURITY;
CREATE POLICY itineraries_select ON itineraries FOR SELECT TO authenticated USING (tripsage.can_view_trip(trip_id));
CREATE POLICY itineraries_insert ON itineraries FOR INSERT TO authenticated WITH CHECK (tripsage.can_edit_trip(trip_id));
CREATE POLICY itineraries_update ON itineraries FOR UPDATE TO authenticated
  USING (tripsage.can_edit_trip(trip_id)) WITH CHECK (tripsage.can_edit_trip(trip_id));
CREATE POLICY itineraries_delete ON itineraries FOR DELETE TO authenticated USING (tripsage.can_edit_trip(trip_id));

ALTER TABLE activities ENABLE ROW LEVEL SECURITY;
CREATE POLICY activities_select ON activities FOR SELECT TO authenticated USING (tripsage.can_view_trip(trip_id));
-- An activity's itinerary must belong to the activity's trip (the foreign keys alone would let an
-- editor of one trip attach activities to an itinerary of a trip they cannot even see).
CREATE POLICY activities_insert ON activities FOR INSERT TO authenticated
  WITH CHECK (tripsage.can_edit_trip(trip_id) AND EXISTS (
    SELECT 1 FROM public.itineraries i WHERE i.id = activities.itinerary_id AND i.trip_id = activities.trip_id));
CREATE POLICY activities_update ON activities FOR UPDATE TO authenticated
  USING (tripsage.can_edit_trip(trip_id))
  WITH CHECK (tripsage.can_edit_trip(trip_id) AND EXISTS (
    SELECT 1 FROM public.itineraries i WHERE i.id = activities.itinerary_id AND i.trip_id = activities.trip_id));
CREATE POLICY activities_delete ON activities FOR DELETE TO authenticated USING (tripsage.can_edit_trip(trip_id));

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_own ON idempotency_keys FOR ALL TO authenticated
  USING (user_id = (SELECT auth.uid())) WITH CHECK (user_id = (SELECT auth.uid()));

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_keys_own ON api_keys FOR ALL TO authenticated
  USING (user_id = (SELECT auth.uid())) WITH CHECK (user_id = (SELECT auth.uid()));

ALTER TABLE memories ENABLE ROW LEVEL SECURITY;
CREATE POLICY memories_own ON memories FOR ALL TO authenticated
  USING (user_id = (SELECT auth.uid())) WITH CHECK (user_id = (SELECT auth.uid()));

ALTER TABLE chat_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY chat_sessions_own ON chat_sessions FOR ALL TO authenticated
  USING (user_id = (SELECT auth.uid()))
  WITH CHECK (user_id = (SELECT auth.uid()) AND (trip_id IS NULL OR tripsage.can_view_trip(trip_id)));

ALTER TABLE chat_messages ENABLE ROW LEVEL SECURITY;
-- A message goes only into one of the caller's own sessions (chat_sessions' policy filters the EXISTS).
CREATE POLICY chat_messages_own ON chat_messages FOR ALL TO authenticated
  USING (user_id = (SELECT auth.uid()))
  WITH CHECK (user_id = (SELECT auth.uid())
              AND EXISTS (SELECT 1 FROM public.chat_sessions s WHERE s.id = chat_messages.session_id));

GRANT SELECT, INSERT, UPDATE, DELETE ON profiles, user_preferences, trips, trip_collaborators, itineraries,
  activities, idempotency_keys, api_keys, memories, chat_sessions, chat_messages TO authenticated, service_role;
"""

# The change feed: every write to a trip (or anything under it) and every profile change that a
# trip document shows is recorded by trigger in the writer's own transaction, stamped with the
# writer's transaction id so the projector can read only below the oldest open transaction
# (gap-proof: a transaction that started earlier but commits later is never stepped over).
CHANGE_FEED = r"""
CREATE TABLE tripsage.changes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  trip_id uuid,
  profile_id uuid,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  CONSTRAINT changes_one_subject CHECK (num_nonnulls(trip_id, profile_id) = 1)
);
CREATE INDEX changes_xid_idx ON tripsage.changes (xid, id);

CREATE FUNCTION tripsage.capture_trip_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  subject uuid;
BEGIN
  -- Rows removed by ON DELETE CASCADE (depth > 1) are covered by the change to their parent.
  IF pg_trigger_depth() > 1 THEN
    RETURN NULL;
  END IF;
  IF TG_TABLE_NAME = 'trips' THEN
    subject := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
  ELSE
    subject := CASE WHEN TG_OP = 'DELETE' THEN OLD.trip_id ELSE NEW.trip_id END;
  END IF;
  INSERT INTO tripsage.changes (trip_id) VALUES (subject);
  -- A row moved to another trip (not done by the API, but possible in SQL) changes both.
  -- Nested: PL/pgSQL plans a whole condition, and trips rows have no trip_id field.
  IF TG_OP = 'UPDATE' AND TG_TABLE_NAME <> 'trips' THEN
    IF OLD.trip_id IS DISTINCT FROM NEW.trip_id THEN
      INSERT INTO tripsage.changes (trip_id) VALUES (OLD.trip_id);
    END IF;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION tripsage.capture_profile_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF pg_trigger_depth() > 1 THEN
    RETURN NULL;
  END IF;
  -- Two statements, not one CASE: PL/pgSQL plans a whole expression, and NEW.id does not exist
  -- on user_preferences (nor NEW.user_id on profiles).
  IF TG_TABLE_NAME = 'profiles' THEN
    INSERT INTO tripsage.changes (profile_id) VALUES (NEW.id);
  ELSE
    INSERT INTO tripsage.changes (profile_id) VALUES (NEW.user_id);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER trips_capture AFTER INSERT OR UPDATE OR DELETE ON trips
  FOR EACH ROW EXECUTE FUNCTION tripsage.capture_trip_change();
CREATE TRIGGER trip_collaborators_capture AFTER INSERT OR UPDATE OR DELETE ON trip_collaborators
  FOR EACH ROW EXECUTE FUNCTION tripsage.capture_trip_change();
CREATE TRIGGER itineraries_capture AFTER INSERT OR UPDATE OR DELETE ON itineraries
  FOR EACH ROW EXECUTE FUNCTION tripsage.capture_trip_change();
CREATE TRIGGER activities_capture AFTER INSERT OR UPDATE OR DELETE ON activities
  FOR EACH ROW EXECUTE FUNCTION tripsage.capture_trip_change();
CREATE TRIGGER profiles_capture AFTER UPDATE OF display_name ON profiles
  FOR EACH ROW WHEN (OLD.display_name IS DISTINCT FROM NEW.display_name)
  EXECUTE FUNCTION tripsage.capture_profile_change();
CREATE TRIGGER user_preferences_capture AFTER INSERT OR UPDATE ON user_preferences
  FOR EACH ROW EXECUTE FUNCTION tripsage.capture_profile_change();
"""


def upgrade() -> None:
    """Create the Supabase shims, the write model, RLS and the change feed."""
    execute_script(SUPABASE_SHIMS)
    execute_script(WRITE_MODEL)
    execute_script(HELPERS)
    execute_script(POLICIES)
    execute_script(CHANGE_FEED)


def downgrade() -> None:
    """Drop what upgrade created (the Supabase shims stay: they may be Supabase's own)."""
    execute_script(
        "DROP TABLE IF EXISTS chat_messages, chat_sessions, memories, api_keys, idempotency_keys, activities,"
        " itineraries, trip_collaborators, trips, user_preferences, profiles CASCADE;"
        " DROP SCHEMA IF EXISTS tripsage CASCADE;"
    )
