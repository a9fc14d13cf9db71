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
- `tripsage.claim_for_write(claims, trip, If-Match version)`: `act_as`, then the trip row locked
  for a caller who may write it, at the version `If-Match` names (if any); else NULL.
- `tripsage.add_activity(claims, trip, itinerary, If-Match version, caps, fields…)` is the happy
  path of adding an activity, in the order the service's transaction takes it: the trip row locked
  for a writer, its version checked, the itinerary locked after it, the size caps counted after the
  lock (each statement of a volatile function reads with a fresh snapshot), the insert and the
  trip's version bump. When any of it fails it returns no row and has changed nothing: the service
  then runs the command's full path, which answers with the exact error (404, 403, 412, 413).
- `tripsage.update_trip(claims, trip, If-Match version, fields given, values…)` is the happy path of
  `PATCH /api/trips/{id}`: the trip locked for a writer, its version checked, the fields given
  compared with the stored ones; nothing different: the stored row, `changed` false, no write (the
  version and `updated_at` stay); else the merged dates checked (ordered, no itinerary left outside)
  and the row updated with version + 1. A refusal returns no row, like `add_activity`.

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
UPDATE_TRIP_ARGS = (
    "text, uuid, bigint, text[], text, text, text, date, date, numeric, text, integer, text, text, text[]"
)
TRIP_FIELDS = (
    "title", "description", "destination", "start_date", "end_date", "budget", "currency", "travelers", "status",
    "trip_type", "tags",
)  # fmt: skip
"""What `PATCH /api/trips/{id}` may change, frozen here as this revision had it."""
TRIP_CHANGED = " OR ".join(f"('{f}' = ANY (p_given) AND r.{f} IS DISTINCT FROM p_{f})" for f in TRIP_FIELDS)
"""A field given with a value other than the stored one."""
TRIP_MERGED = ", ".join(f"{f} = CASE WHEN '{f}' = ANY (p_given) THEN p_{f} ELSE t.{f} END" for f in TRIP_FIELDS)
"""Each field: the given value, else the stored one."""
ALL_FUNCTIONS = (
    f"tripsage.act_as(text), tripsage.claim_for_write(text, uuid, bigint), tripsage.create_trip({CREATE_TRIP_ARGS}),"
    f" tripsage.add_activity({ADD_ACTIVITY_ARGS}), tripsage.update_trip({UPDATE_TRIP_ARGS})"
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

-- The claim of a command on an existing trip, as the caller: the trip row locked when the caller
-- may write it and the If-Match version (if any) is current, else NULL (nothing locked but what
-- the caller could not have written anyway).
CREATE FUNCTION tripsage.claim_for_write(p_claims text, p_trip uuid, p_expected_version bigint)
RETURNS public.trips
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r public.trips;
BEGIN
  PERFORM tripsage.act_as(p_claims);
  IF coalesce(tripsage.trip_permission(p_trip), '') NOT IN ('owner', 'admin', 'edit') THEN
    RETURN NULL;
  END IF;
  SELECT * INTO r FROM public.trips t WHERE t.id = p_trip FOR UPDATE;
  IF NOT FOUND OR r.version <> coalesce(p_expected_version, r.version) THEN
    RETURN NULL;
  END IF;
  RETURN r;
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
  r public.trips := tripsage.claim_for_write(p_claims, p_trip, p_expected_version);
BEGIN
  IF r.id IS NULL THEN
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
              coalesce(p_currency, r.currency), p_booking_status, p_notes, p_position)
      RETURNING x.*
    ), b AS (
      UPDATE public.trips AS t SET version = t.version + 1, updated_at = now() WHERE t.id = p_trip
      RETURNING t.version
    )
    SELECT a.*, b.version FROM a CROSS JOIN b;
END
$$;

CREATE FUNCTION tripsage.update_trip(
  p_claims text, p_trip uuid, p_expected_version bigint, p_given text[], p_title text, p_description text,
  p_destination text, p_start_date date, p_end_date date, p_budget numeric, p_currency text, p_travelers integer,
  p_status text, p_trip_type text, p_tags text[]
)
RETURNS TABLE (
  id uuid, owner_id uuid, title text, description text, destination text, start_date date, end_date date,
  budget numeric, currency bpchar, travelers integer, status text, trip_type text, tags text[], version bigint,
  created_at timestamptz, updated_at timestamptz, changed boolean
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  r public.trips := tripsage.claim_for_write(p_claims, p_trip, p_expected_version);
  v_start date;
  v_end date;
BEGIN
  IF r.id IS NULL THEN
    RETURN;
  END IF;
  IF NOT ({TRIP_CHANGED}) THEN
    RETURN QUERY SELECT r.*, false;
    RETURN;
  END IF;
  v_start := CASE WHEN 'start_date' = ANY (p_given) THEN p_start_date ELSE r.start_date END;
  v_end := CASE WHEN 'end_date' = ANY (p_given) THEN p_end_date ELSE r.end_date END;
  IF v_end < v_start OR ((v_start, v_end) IS DISTINCT FROM (r.start_date, r.end_date) AND EXISTS (
       SELECT 1 FROM public.itineraries i WHERE i.trip_id = p_trip AND (i.day < v_start OR i.day > v_end))) THEN
    RETURN;
  END IF;
  RETURN QUERY
    UPDATE public.trips AS t SET {TRIP_MERGED}, version = t.version + 1, updated_at = now()
    WHERE t.id = p_trip
    RETURNING t.*, true;
END
$$;
REVOKE ALL ON FUNCTION {ALL_FUNCTIONS} FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION {ALL_FUNCTIONS} TO {SERVICE_ROLE};
"""

DROP = f"""
DROP FUNCTION IF EXISTS tripsage.update_trip({UPDATE_TRIP_ARGS});
DROP FUNCTION IF EXISTS tripsage.add_activity({ADD_ACTIVITY_ARGS});
DROP FUNCTION IF EXISTS tripsage.create_trip({CREATE_TRIP_ARGS});
DROP FUNCTION IF EXISTS tripsage.claim_for_write(text, uuid, bigint);
DROP FUNCTION IF EXISTS tripsage.act_as(text);
"""


def upgrade() -> None:
    """Create the command functions."""
    execute_script(FUNCTIONS)


def downgrade() -> None:
    """Drop the command functions."""
    execute_script(DROP)
