"""Projection health in one statement: lag, backlog, dead letters, heartbeat, the feed horizon's holder.

Lag is in positions and seconds; every dead letter is a stale document (its access still follows
the write model, see `projections.access`). The same figures feed `tripsage projections status`, `GET /api/admin/projections`, the Prometheus
gauges and the worker check of `/readyz`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import UtcDatetime
from projections import trip_view
from projections.dead_letters import DeadLetter, list_dead_letters
from projections.horizon import OLDEST_HOLDER, holder_from
from projections.rebuild.status import read_rebuild_status

STATUS = text(
    f"""
SELECT
  (SELECT count(*) FROM tripsage.changes) AS lag_positions,
  (SELECT count(DISTINCT coalesce(trip_id, profile_id)) FROM tripsage.changes) AS backlog,
  coalesce((SELECT extract(epoch FROM clock_timestamp() - min(created_at)) FROM tripsage.changes), 0)::float8
    AS lag_seconds,
  (SELECT count(*) FROM tripsage.dead_letters WHERE retry_at IS NULL) AS dead_letters,
  (SELECT count(*) FROM tripsage.dead_letters WHERE retry_at IS NOT NULL) AS retrying,
  (SELECT max(beat_at) FROM tripsage.worker_heartbeats) AS last_heartbeat,
  (SELECT extract(epoch FROM clock_timestamp() - max(beat_at)) FROM tripsage.worker_heartbeats)::float8
    AS heartbeat_age_seconds,
  (SELECT count(*) FROM tripsage.worker_heartbeats WHERE beat_at > now() - interval '15 seconds') AS workers,
  (SELECT count(*) FROM tripsage.dead_letters) AS stale_documents,
  h.pid AS horizon_pid, h.state AS horizon_state, h.application_name AS horizon_application,
  h.age_seconds AS horizon_age_seconds
FROM (SELECT 1) AS one
LEFT JOIN LATERAL ({OLDEST_HOLDER}) h ON true
"""
)
"""Pending feed rows (lag in positions), distinct subjects pending (backlog), age of the oldest
pending change (lag in seconds), parked and retrying trips, the newest worker heartbeat, documents
left stale by failed projections (every dead letter), and the oldest transaction holding the
feed horizon (`projections.horizon`)."""

HEARTBEAT_AGE = text(
    "SELECT extract(epoch FROM clock_timestamp() - max(beat_at))::float8 FROM tripsage.worker_heartbeats"
)


@dataclass(frozen=True, slots=True)
class ProjectionStatus:  # pylint: disable=too-many-instance-attributes  # one field per reported figure
    """The health of one projection."""

    name: str
    version: int
    lag_positions: int
    backlog: int
    lag_seconds: float
    dead_letters: int
    retrying: int
    last_heartbeat: datetime | None
    heartbeat_age_seconds: float | None
    workers: int
    stale_documents: int = 0  # dead-lettered trips: document stale, access narrowed to the write model
    horizon_age_seconds: float = 0.0  # age of the oldest transaction holding the feed horizon (0: none)
    horizon_holder: dict[str, Any] | None = None  # that transaction, once older than REPORT_AFTER_S
    rebuild: dict[str, Any] = field(default_factory=dict)  # definition versions and rebuilds


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Every projection's status, plus the most recent dead letters."""

    projections: list[ProjectionStatus]
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (timestamps in UTC, `...Z`)."""
        return {
            "projections": [_jsonable(asdict(p)) for p in self.projections],
            "dead_letters": [
                {
                    "trip_id": str(d.trip_id),
                    "attempts": d.attempts,
                    "error": d.error,
                    "parked": d.parked,
                    "document": "stale",
                    "first_failed_at": _ts(d.first_failed_at),
                    "last_failed_at": _ts(d.last_failed_at),
                    "retry_at": _ts(d.retry_at),
                }
                for d in self.dead_letters
            ],
        }


_UTC = TypeAdapter(UtcDatetime)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else str(_UTC.dump_python(value, mode="json"))


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _ts(value) if isinstance(value, datetime) else value for key, value in values.items()}


async def read_status(conn: AsyncConnection) -> ProjectionStatus:
    """The trip projection's status: health in one statement, then its definition versions and rebuilds.

    Args:
        conn: The login role or `service_role` (both may read the projection state).

    Returns:
        The status.
    """
    row = (await conn.execute(STATUS)).one()
    holder = holder_from(row.horizon_pid, row.horizon_state, row.horizon_application, row.horizon_age_seconds)
    return ProjectionStatus(
        name=trip_view.NAME,
        version=trip_view.VERSION,
        lag_positions=int(row.lag_positions),
        backlog=int(row.backlog),
        lag_seconds=float(row.lag_seconds),
        dead_letters=int(row.dead_letters),
        retrying=int(row.retrying),
        last_heartbeat=row.last_heartbeat,
        heartbeat_age_seconds=None if row.heartbeat_age_seconds is None else float(row.heartbeat_age_seconds),
        workers=int(row.workers),
        stale_documents=int(row.stale_documents),
        horizon_age_seconds=0.0 if holder is None else holder.age_seconds,
        horizon_holder=holder.to_json() if holder is not None and holder.reportable else None,
        rebuild=(await read_rebuild_status(conn)).to_json(),
    )


async def read_report(conn: AsyncConnection, *, dead_letter_limit: int = 50) -> StatusReport:
    """Status plus the most recent dead letters (CLI and admin endpoint).

    Args:
        conn: The login role or `service_role`.
        dead_letter_limit: At most this many dead letters listed.

    Returns:
        The report.
    """
    status = await read_status(conn)
    return StatusReport([status], await list_dead_letters(conn, limit=dead_letter_limit))


async def heartbeat_age(conn: AsyncConnection) -> float | None:
    """Seconds since the newest worker heartbeat; None when no worker has registered."""
    age = await conn.scalar(HEARTBEAT_AGE)
    return None if age is None else float(age)
