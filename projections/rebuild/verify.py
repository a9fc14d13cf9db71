"""Verify the live trip read model against a fresh build from the write model.

Every trip is checked in keyset batches. A batch is one REPEATABLE READ, read-only transaction that
builds the batch's documents with the projection's own builder (`trip_view`'s build statement, the
one `build_documents` and the worker run) and compares them with the live rows in SQL, so only
differing documents travel to Python. Checked per trip: a missing or extra document, the document
bytes (reported with the first differing JSON path), the row's derived columns (owner, members,
status, search text, `updated_at`, version), the ETag, and the member rows.

**Pending changes.** In the same snapshot the batch reads which of its trips still have rows in the
change feed (their own, or a profile change of a person they show) or a dead letter awaiting retry.
Those may legitimately differ: the worker has not applied them yet. They are re-checked every
0.2 s until they match or stop being pending, for up to `settle_s` seconds (with `drain=True` the
feed is first applied here, as a worker would); whatever still differs is reported, pending or not.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.apply import drain as drain_feed
from projections.trip_view import BUILD_SELECT

CHECK = text(
    f"""
WITH fresh AS MATERIALIZED ({BUILD_SELECT}),
live AS MATERIALIZED (SELECT * FROM trip_views WHERE trip_id = ANY(CAST(:trip_ids AS uuid[]))),
compared AS (
  SELECT coalesce(f.trip_id, v.trip_id) AS trip_id,
    CASE
      WHEN v.trip_id IS NULL THEN 'missing'
      WHEN f.trip_id IS NULL THEN 'extra'
      WHEN v.doc <> f.doc THEN 'differs'
      WHEN (v.owner_id, v.member_ids, v.status, v.search_text, v.updated_at, v.version)
           IS DISTINCT FROM (f.owner_id, f.member_ids, f.status, f.search_text, f.updated_at, f.version) THEN 'columns'
      WHEN v.etag <> '"' || v.version || '-' || left(md5(v.doc), 16) || '"' THEN 'etag'
      WHEN EXISTS (
        (SELECT m.user_id, m.role, m.status, m.updated_at FROM trip_view_members m WHERE m.trip_id = f.trip_id
         EXCEPT
         SELECT e.user_id, e.role, f.status, f.updated_at
         FROM (SELECT f.owner_id, 'owner' UNION ALL SELECT s, 'shared' FROM unnest(f.shared_ids) AS s) AS e(user_id, role))
        UNION ALL
        (SELECT e.user_id, e.role, f.status, f.updated_at
         FROM (SELECT f.owner_id, 'owner' UNION ALL SELECT s, 'shared' FROM unnest(f.shared_ids) AS s) AS e(user_id, role)
         EXCEPT
         SELECT m.user_id, m.role, m.status, m.updated_at FROM trip_view_members m WHERE m.trip_id = f.trip_id)
      ) THEN 'members'
    END AS kind,
    CASE WHEN v.doc <> f.doc THEN v.doc END AS live_doc,
    CASE WHEN v.doc <> f.doc THEN f.doc END AS fresh_doc
  FROM fresh f
  FULL JOIN live v ON v.trip_id = f.trip_id
)
SELECT trip_id, kind, live_doc, fresh_doc FROM compared WHERE kind IS NOT NULL ORDER BY trip_id
"""
)
"""Differences between the live rows of :trip_ids and a fresh build (only differing documents are sent)."""

PENDING = text(
    """
SELECT c.trip_id FROM tripsage.changes c WHERE c.trip_id = ANY(CAST(:trip_ids AS uuid[]))
UNION
SELECT t.id FROM tripsage.changes c JOIN trips t ON t.owner_id = c.profile_id WHERE t.id = ANY(CAST(:trip_ids AS uuid[]))
UNION
SELECT tc.trip_id FROM tripsage.changes c JOIN trip_collaborators tc ON tc.user_id = c.profile_id
WHERE tc.trip_id = ANY(CAST(:trip_ids AS uuid[]))
UNION
SELECT d.trip_id FROM tripsage.dead_letters d WHERE d.trip_id = ANY(CAST(:trip_ids AS uuid[])) AND d.retry_at IS NOT NULL
"""
)
"""Trips among :trip_ids with changes the worker has not applied yet (feed rows or a due retry)."""

NEXT_IDS = text("SELECT id FROM trips WHERE id > :after ORDER BY id LIMIT :limit")
EXTRA_IDS = text("SELECT v.trip_id FROM trip_views v WHERE NOT EXISTS (SELECT 1 FROM trips t WHERE t.id = v.trip_id)")
COUNT_TRIPS = text("SELECT count(*) FROM trips")

ProgressHook = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Difference:
    """One trip whose live rows differ from a fresh build."""

    trip_id: uuid.UUID
    kind: str
    path: str | None = None
    pending: bool = False

    def __str__(self) -> str:
        """`differs  <id>  at $.itineraries[0].title  (pending changes)`."""
        where = f"  at {self.path}" if self.path else ""
        note = "  (changes still pending in the feed)" if self.pending else ""
        return f"{self.kind:<8} {self.trip_id}{where}{note}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What `verify` found."""

    checked: int
    differences: list[Difference]

    @property
    def clean(self) -> bool:
        """No differences."""
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "checked": self.checked,
            "differences": [
                {"trip_id": str(d.trip_id), "kind": d.kind, "path": d.path, "pending": d.pending}
                for d in self.differences
            ],
        }


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{orjson.dumps(key).decode()}]"


def _walk_dict(live: dict[str, Any], fresh: dict[str, Any], path: str) -> str | None:
    for key, value in fresh.items():
        if key not in live:
            return f"{_key(path, key)} (missing)"
        found = _walk(live[key], value, _key(path, key))
        if found:
            return found
    extra = next((key for key in live if key not in fresh), None)
    if extra is not None:
        return f"{_key(path, extra)} (unexpected)"
    return None if list(live) == list(fresh) else f"{path} (key order)"


def _walk_list(live: list[Any], fresh: list[Any], path: str) -> str | None:
    for index, (a, b) in enumerate(zip(live, fresh, strict=False)):
        found = _walk(a, b, f"{path}[{index}]")
        if found:
            return found
    if len(live) != len(fresh):
        return f"{path}[{min(len(live), len(fresh))}] (length {len(live)}, expected {len(fresh)})"
    return None


def _walk(live: Any, fresh: Any, path: str) -> str | None:
    """The first path where `live` and `fresh` differ, depth first in the fresh document's order."""
    if isinstance(live, dict) and isinstance(fresh, dict):
        return _walk_dict(live, fresh, path)
    if isinstance(live, list) and isinstance(fresh, list):
        return _walk_list(live, fresh, path)
    return None if type(live) is type(fresh) and live == fresh else path


def first_difference(live: bytes, fresh: bytes) -> str:
    """The JSON path of the first difference between a live and a fresh document.

    Args:
        live: The stored document bytes.
        fresh: The freshly built document bytes.

    Returns:
        A path like `$.itineraries[0].activities[2].title`, or `$ (…)` when only the bytes differ.
    """
    try:
        parsed = orjson.loads(live)
    except orjson.JSONDecodeError:
        return "$ (not valid JSON)"
    return _walk(parsed, orjson.loads(fresh), "$") or "$ (same JSON, different bytes)"


async def _check(conn: AsyncConnection, trip_ids: Sequence[uuid.UUID]) -> list[Difference]:
    """Compare `trip_ids` inside the caller's snapshot; mark those with pending changes."""
    rows = (await conn.execute(CHECK, {"trip_ids": list(trip_ids)})).all()
    if not rows:
        return []
    pending = set((await conn.scalars(PENDING, {"trip_ids": [row.trip_id for row in rows]})).all())
    return [
        Difference(
            row.trip_id,
            row.kind,
            first_difference(bytes(row.live_doc), bytes(row.fresh_doc)) if row.kind == "differs" else None,
            row.trip_id in pending,
        )
        for row in rows
    ]


async def _snapshot(
    engine: AsyncEngine, trip_ids: Sequence[uuid.UUID] | None, after: uuid.UUID, limit: int
) -> tuple[list[uuid.UUID], list[Difference]]:
    """One read-only REPEATABLE READ transaction: the next keyset batch (or `trip_ids`) and its differences."""
    async with engine.connect() as base:
        conn = await base.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        async with conn.begin():
            ids = (
                list(trip_ids)
                if trip_ids is not None
                else list((await conn.scalars(NEXT_IDS, {"after": after, "limit": limit})).all())
            )
            if trip_ids is None and not ids:
                ids = list((await conn.scalars(EXTRA_IDS)).all())
                return [], await _check(conn, ids) if ids else []
            return ids, await _check(conn, ids) if ids else []


async def verify(
    engine: AsyncEngine,
    *,
    batch_size: int = 500,
    settle_s: float = 5.0,
    drain: bool = False,
    on_progress: ProgressHook | None = None,
) -> VerifyReport:
    """Compare every live document with a fresh build from the write model.

    Args:
        engine: The database as the login role.
        batch_size: Trips per comparison (one transaction each).
        settle_s: How long differences with pending changes are re-checked before being reported.
        drain: Apply the change feed first (as a worker would), for when no worker runs.
        on_progress: Progress callback `("verify", checked, total)`.

    Returns:
        The number of trips checked and every difference, ordered by trip id.
    """
    if drain:
        await drain_feed(engine)
    async with engine.connect() as conn:
        total = int(await conn.scalar(COUNT_TRIPS) or 0)
    found: dict[uuid.UUID, Difference] = {}
    checked, after = 0, uuid.UUID(int=0)
    while True:
        ids, differences = await _snapshot(engine, None, after, batch_size)
        found.update((d.trip_id, d) for d in differences)
        if not ids:
            break
        checked, after = checked + len(ids), ids[-1]
        if on_progress is not None:
            on_progress("verify", checked, max(total, checked))
    deadline = time.monotonic() + settle_s
    while any(d.pending for d in found.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        again = [d.trip_id for d in found.values() if d.pending]
        _, differences = await _snapshot(engine, again, after, batch_size)
        for trip_id in again:
            del found[trip_id]
        found.update((d.trip_id, d) for d in differences)
    return VerifyReport(checked, [found[trip_id] for trip_id in sorted(found)])
