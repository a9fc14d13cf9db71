"""Command functions: a command that is one statement runs as one call, in one round trip.

A command transaction costs at least three round trips from asyncpg (its opening message with the
role and claims, the statement, `COMMIT`): the role must be in force before a statement is planned,
or Row Level Security does not apply to it. A function can switch first and then run its statement,
and a call sent outside a transaction commits on its own. Like the read functions of 0007:

- `tripsage.act_as(claims)` switches the current transaction to `tripsage_api` with the caller's
  claims (both forms, for either definition of `auth.uid()`). Transaction-local, so the switch ends
  with the call's own transaction.
- `tripsage.create_trip(claims, fields…)` inserts a trip owned by the claims' user (`auth.uid()`,
  never a parameter) as `tripsage_api`, under the INSERT policy, and returns the row. The change
  feed's trigger records it in the same transaction, as for any insert.
- `tripsage.add_activity(claims, trip, itinerary, If-Match version, caps, fields…)` is the happy
  path of adding an activity, in the order the service's transaction takes it: the trip row locked
  for a writer, its version checked, the itinerary locked after it, the size caps counted after the
  lock (each statement of a volatile function reads with a fresh snapshot), the insert and the
  trip's version bump. When any of it fails it returns no row and has changed nothing: the service
  then runs the command's full path, which answers with the exact error (404, 403, 412, 413).

Executable by `tripsage_api` only (its login members call them and switch to it inside), never by
`anon` or `authenticated`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SERVICE_ROLE = "tripsage_api"

CREATE_TRIP_ARGS = "text, text, text, text, date, date, numeric, text, integer, text, text, text[]"
ADD_ACTIVITY_ARGS = (
    "text, uuid, uuid, bigint, bigint, bigint, text, text, timestamptz, timestamptz, text, numeric, text, text, text,"
    " integer"
)

FUNCTIONS = rf"""
CREATE FUNCTION tripsage.act_as(p_claims text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM set_config('role', '{SERVICE_ROLE}', true), set_config('request.jwt.claims', p_claims, true),
    set_config('request.jwt.claim.sub', coalesce(p_claims::jsonb ->> 'sub', ''), true),
    set_config('request.jwt.claim.role', coalesce(p_claims::jsonb ->> 'role', ''), true);
END
$$;

-- `POST /api/trips` in one statement: the trip, owned by the caller, as the caller.
CREATE FUNCTION tripsage.create_trip(
  p_claims text, p_title text, p_description text, p_destination text, p_start_date date, p_end_date date,
  p_budget numeric, p_currency text, p_travelers integer, p_status text, p_trip_type text, p_tags text[]
)
RETURNS SETOF public.trips
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM tripsage.act_as(p_claims);
  RETURN QUERY
    INSERT INTO public.trips (owner_id, title, description, destination, start_date, end_date, budget, currency,
                              travelers, status, trip_type, tags)
    VALUES ((SELECT auth.uid()), p_title, p_description, p_destination, p_start_date, p_end_date, p_budget,
            p_currency, p_travelers, p_status, p_trip_type, p_tags)
    RETURNING *;
END
$$;

CREATE FUNCTION tripsage.add_activity(
  p_claims text, p_trip uuid, p_itinerary uuid, p_expected_version bigint, p_per_itinerary bigint,
  p_per_trip bigint, p_title text, p_item_type text, p_starts_at timestamptz, p_ends_at timestamptz,
  p_location text, p_price numeric, p_currency text, p_booking_status text, p_notes text, p_position integer
)
RETURNS TABLE (
  id uuid, itinerary_id uuid, trip_id uuid, title text, item_type text, starts_at timestamptz,
  ends_at timestamptz, location text, price numeric, currency bpchar, booking_status text, notes text,
  "position" integer, created_at timestamptz, updated_at timestamptz, trip_version bigint
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  v_version bigint;
  v_currency text;
BEGIN
  PERFORM tripsage.act_as(p_claims);
  IF coalesce(tripsage.trip_permission(p_trip), '') NOT IN ('owner', 'admin', 'edit') THEN
    RETURN;
  END IF;
  SELECT t.version, t.currency INTO v_version, v_currency FROM public.trips t WHERE t.id = p_trip FOR UPDATE;
  IF NOT FOUND OR v_version <> coalesce(p_expected_version, v_version) THEN
    RETURN;
  END IF;
  PERFORM 1 FROM public.itineraries i WHERE i.id = p_itinerary AND i.trip_id = p_trip FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF coalesce(tripsage.count_activities(p_trip, p_itinerary), p_per_itinerary) >= p_per_itinerary
     OR coalesce(tripsage.count_activities(p_trip, NULL), p_per_trip) >= p_per_trip THEN
    RETURN;
  END IF;
  RETURN QUERY
    WITH a AS (
      INSERT INTO public.activities AS x (itinerary_id, trip_id, title, item_type, starts_at, ends_at, location,
                                          price, currency, booking_status, notes, "position")
      VALUES (p_itinerary, p_trip, p_title, p_item_type, p_starts_at, p_ends_at, p_location, p_price,
              coalesce(p_currency, v_currency), p_booking_status, p_notes, p_position)
      RETURNING x.*
    ), b AS (
      UPDATE public.trips AS t SET version = t.version + 1, updated_at = now() WHERE t.id = p_trip
      RETURNING t.version
    )
    SELECT a.*, b.version FROM a CROSS JOIN b;
END
$$;
REVOKE ALL ON FUNCTION tripsage.act_as(text), tripsage.create_trip({CREATE_TRIP_ARGS}),
  tripsage.add_activity({ADD_ACTIVITY_ARGS}) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION tripsage.act_as(text), tripsage.create_trip({CREATE_TRIP_ARGS}),
  tripsage.add_activity({ADD_ACTIVITY_ARGS}) TO {SERVICE_ROLE};
"""

DROP = f"""
DROP FUNCTION IF EXISTS tripsage.add_activity({ADD_ACTIVITY_ARGS});
DROP FUNCTION IF EXISTS tripsage.create_trip({CREATE_TRIP_ARGS});
DROP FUNCTION IF EXISTS tripsage.act_as(text);
"""


def upgrade() -> None:
    """Create the command functions."""
    execute_script(FUNCTIONS)


def downgrade() -> None:
    """Drop the command functions."""
    execute_script(DROP)
