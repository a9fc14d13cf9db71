"""Per-trip serialization of projection work with transaction-scoped advisory locks.

Every writer of a trip's read rows (the feed worker, the retry sweep, a rebuild) takes the trip's
lock before it builds, in ascending key order, so two workers can never deadlock on each other and
never write the same document at once. The locks end with the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

LOCK_NAMESPACE = 0x54524950  # "TRIP": the first key of the two-key advisory lock space

LOCK_TRIPS = text(
    """
    SELECT count(pg_advisory_xact_lock(:namespace, k.key))
    FROM (SELECT key FROM unnest(CAST(:keys AS integer[])) AS u(key) ORDER BY key) AS k
    """
)
"""Take the trips' advisory locks one by one in ascending order (the sorted subquery is not
flattened, so the volatile lock calls run in its order)."""


def lock_key(trip_id: uuid.UUID) -> int:
    """The signed 32-bit advisory-lock key of a trip (collisions only serialize two trips)."""
    return int.from_bytes(trip_id.bytes[:4], "big", signed=True)


def lock_keys(trip_ids: Iterable[uuid.UUID]) -> list[int]:
    """The distinct lock keys of some trips, in the order every worker takes them."""
    return sorted({lock_key(trip_id) for trip_id in trip_ids})


async def lock_trips(conn: AsyncConnection, trip_ids: Iterable[uuid.UUID]) -> None:
    """Block until this transaction holds the advisory locks of all `trip_ids`.

    Args:
        conn: A connection inside the transaction that will rebuild the trips.
        trip_ids: The trips about to be rebuilt.
    """
    keys = lock_keys(trip_ids)
    if keys:
        await conn.execute(LOCK_TRIPS, {"namespace": LOCK_NAMESPACE, "keys": keys})
