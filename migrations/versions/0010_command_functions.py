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
REVOKE ALL ON FUNCTION tripsage.act_as(text), tripsage.create_trip({CREATE_TRIP_ARGS})
  FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION tripsage.act_as(text), tripsage.create_trip({CREATE_TRIP_ARGS}) TO {SERVICE_ROLE};
"""

DROP = f"""
DROP FUNCTION IF EXISTS tripsage.create_trip({CREATE_TRIP_ARGS});
DROP FUNCTION IF EXISTS tripsage.act_as(text);
"""


def upgrade() -> None:
    """Create the command functions."""
    execute_script(FUNCTIONS)


def downgrade() -> None:
    """Drop the command functions."""
    execute_script(DROP)
