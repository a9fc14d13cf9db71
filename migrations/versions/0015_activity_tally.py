"""The activity caps read kept counts instead of scanning the trip's activities.

Adding an activity checks two caps (`MAX_ACTIVITIES_PER_ITINERARY`, `MAX_ACTIVITIES_PER_TRIP`).
Since 0008/0013 `tripsage.activity_counts` and `tripsage.count_activities` counted them by reading
every activity of the trip: one heap page per activity for a trip filled over time, so the call
grew with the trip (`uv run python -m bench.activity_scale --rounds 7`: 1.10 ms of PostgreSQL CPU
per call at 0 activities, 1.90 ms at 1,900; 1.10 ms at both with the tally).

Now `tripsage.activity_tally` holds, per (itinerary, trip) pair of `public.activities`, how many
activities it has; triggers on `public.activities` keep it in the writer's transaction (insert,
delete, a row moved to another itinerary or trip). Both functions read it instead: the
itinerary's row and the sum of the trip's rows (one per itinerary holding activities, at most
`MAX_ITINERARIES_PER_TRIP`). Same signatures, same answers, same privileges, same NULL for a caller
who may not edit the trip. Every writer of an activity holds its trip's row lock, so a count read
after the claim is exact, as before.

Rows removed by a cascade (an itinerary or trip deleted) do not fire the triggers: their tally
rows go with the itinerary (a foreign key with ON DELETE CASCADE). The table is internal (schema
`tripsage`, no grants beyond the schema's defaults, RLS on without policies). The upgrade creates
the triggers first (their lock holds writers of activities off until the migration commits), then
counts the activities already stored. No other data changes. On the read bench's database
(2,000,000 activities in 250,000 itineraries) the upgrade took 6.5 s; commands that write
itineraries or activities (deleting a trip too) meanwhile wait, and past the request lock timeout
(2 s) answer 503 with `Retry-After`. Reads and the other commands go on.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from core.migrate import execute_script

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE tripsage.activity_tally (
  itinerary_id uuid NOT NULL REFERENCES public.itineraries (id) ON DELETE CASCADE,
  trip_id uuid NOT NULL,
  activities integer NOT NULL CHECK (activities >= 0),
  PRIMARY KEY (itinerary_id, trip_id)
);
CREATE INDEX activity_tally_trip_idx ON tripsage.activity_tally (trip_id);
ALTER TABLE tripsage.activity_tally ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON tripsage.activity_tally FROM PUBLIC, anon, authenticated;

-- One activity more or less for its (itinerary, trip) pair.
CREATE FUNCTION tripsage.tally_activity() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    UPDATE tripsage.activity_tally t SET activities = t.activities - 1
     WHERE t.itinerary_id = OLD.itinerary_id AND t.trip_id = OLD.trip_id;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO tripsage.activity_tally AS t (itinerary_id, trip_id, activities)
    VALUES (NEW.itinerary_id, NEW.trip_id, 1)
    ON CONFLICT (itinerary_id, trip_id) DO UPDATE SET activities = t.activities + 1;
  END IF;
  RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION tripsage.tally_activity() FROM PUBLIC, anon, authenticated;

-- Rows deleted by a cascade (trigger depth > 0) leave with their itinerary's tally row.
CREATE TRIGGER activities_tally AFTER INSERT OR DELETE ON public.activities
  FOR EACH ROW WHEN (pg_trigger_depth() < 1) EXECUTE FUNCTION tripsage.tally_activity();
CREATE TRIGGER activities_tally_move AFTER UPDATE OF itinerary_id, trip_id ON public.activities
  FOR EACH ROW WHEN (OLD.itinerary_id IS DISTINCT FROM NEW.itinerary_id OR OLD.trip_id IS DISTINCT FROM NEW.trip_id)
  EXECUTE FUNCTION tripsage.tally_activity();

-- What is stored already (writers are held off by the triggers' lock until the migration commits).
INSERT INTO tripsage.activity_tally (itinerary_id, trip_id, activities)
SELECT a.itinerary_id, a.trip_id, count(*) FROM public.activities a GROUP BY a.itinerary_id, a.trip_id;

CREATE OR REPLACE FUNCTION tripsage.activity_counts(p_trip uuid, p_itinerary uuid, OUT in_itinerary bigint, OUT in_trip bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF NOT tripsage.can_edit_trip(p_trip) THEN
    RETURN;
  END IF;
  SELECT coalesce(sum(t.activities) FILTER (WHERE t.itinerary_id = p_itinerary), 0), coalesce(sum(t.activities), 0)
  INTO in_itinerary, in_trip
  FROM tripsage.activity_tally t WHERE t.trip_id = p_trip;
END
$$;

CREATE OR REPLACE FUNCTION tripsage.count_activities(p_trip uuid, p_itinerary uuid) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF NOT tripsage.can_edit_trip(p_trip) THEN
    RETURN NULL;
  END IF;
  RETURN (SELECT coalesce(sum(t.activities), 0) FROM tripsage.activity_tally t
          WHERE t.trip_id = p_trip AND (p_itinerary IS NULL OR t.itinerary_id = p_itinerary));
END
$$;
"""

DOWNGRADE = r"""
CREATE OR REPLACE FUNCTION tripsage.activity_counts(p_trip uuid, p_itinerary uuid, OUT in_itinerary bigint, OUT in_trip bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF NOT tripsage.can_edit_trip(p_trip) THEN
    RETURN;
  END IF;
  SELECT count(*) FILTER (WHERE a.itinerary_id = p_itinerary), count(*) INTO in_itinerary, in_trip
  FROM public.activities a WHERE a.trip_id = p_trip;
END
$$;

CREATE OR REPLACE FUNCTION tripsage.count_activities(p_trip uuid, p_itinerary uuid) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF NOT tripsage.can_edit_trip(p_trip) THEN
    RETURN NULL;
  END IF;
  RETURN (SELECT count(*) FROM public.activities
          WHERE trip_id = p_trip AND (p_itinerary IS NULL OR itinerary_id = p_itinerary));
END
$$;

DROP TRIGGER activities_tally ON public.activities;
DROP TRIGGER activities_tally_move ON public.activities;
DROP FUNCTION tripsage.tally_activity();
DROP TABLE tripsage.activity_tally;
"""


def upgrade() -> None:
    """Keep the activity counts in `tripsage.activity_tally`; the caps' functions read them."""
    execute_script(UPGRADE)


def downgrade() -> None:
    """Count by scanning again (0013's and 0012's bodies); drop the tally, its triggers and function."""
    execute_script(DOWNGRADE)
