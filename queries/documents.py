"""The trip documents this API process has served, so that PostgreSQL need not send them again.

A read names the documents it holds for the trips it expects to see (`trip_id` + ETag) and the read
function answers NULL in place of each one that is still current (migrations 0007 and 0014): the
database checks visibility and currency in the same statement, and the process fills in the bytes
it already has. Nothing here is ever served without that check, so there is nothing to invalidate:
a changed document has a new ETag (its version and the MD5 of its bytes) and comes from the
database. What is kept is bounded: documents by their total size (`READ_CACHE_MB`, least recently
used out first; 0 keeps none) and the trips each recent list page held, by count.

A document is ~10-20 KiB, a page of 50 ~700 KiB: sending that page from PostgreSQL cost it about as
much CPU as everything else in the request (`docs/performance-history.md`, sessions 7-8).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterable

from prometheus_client import Counter, Gauge

PAGES_KEPT = 4096
"""List pages remembered (their trip ids only): a page key is the caller and the query's parameters."""

SERVED = Counter(
    "tripsage_read_documents_served",
    "Trip documents the trip queries read, by where their bytes came from (`held`: kept by this process)",
    ["source"],
)
FROM_HELD, FROM_DATABASE = SERVED.labels(source="held"), SERVED.labels(source="database")
HELD_BYTES = Gauge("tripsage_read_documents_held_bytes", "Bytes of trip documents kept by this process")


class DocumentCache:
    """Documents by trip id with their ETags, least recently used out first."""

    def __init__(self, max_bytes: int, max_pages: int = PAGES_KEPT) -> None:
        """Keep up to `max_bytes` of documents (0: none) and the trips of `max_pages` list pages."""
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self.size = 0
        self._docs: OrderedDict[uuid.UUID, tuple[str, bytes]] = OrderedDict()
        self._pages: OrderedDict[Hashable, tuple[uuid.UUID, ...]] = OrderedDict()

    def __len__(self) -> int:
        """How many documents are kept."""
        return len(self._docs)

    def get(self, trip_id: uuid.UUID) -> tuple[str, bytes] | None:
        """The kept ETag and document of a trip (it becomes the most recently used)."""
        found = self._docs.get(trip_id)
        if found is not None:
            self._docs.move_to_end(trip_id)
        return found

    def put(self, trip_id: uuid.UUID, etag: str, doc: bytes) -> None:
        """Keep a document the database just sent, in place of the trip's older one."""
        if len(doc) > self.max_bytes // 4:  # none at all with 0; never one that would flush the rest
            return
        old = self._docs.pop(trip_id, None)
        if old is not None:
            self.size -= len(old[1])
        self._docs[trip_id] = (etag, doc)
        self.size += len(doc)
        while self.size > self.max_bytes:
            _, (_, dropped) = self._docs.popitem(last=False)
            self.size -= len(dropped)
        HELD_BYTES.set(self.size)

    def fill(
        self, rows: Iterable[tuple[uuid.UUID, str, bytes | None]], held: dict[uuid.UUID, tuple[str, bytes]]
    ) -> list[bytes]:
        """Each read row's document: the one the database sent (kept for next time), the held one for NULL.

        The database answers NULL only for a (trip, ETag) the read named from `held`, so the held
        bytes are those it holds. Counted in `tripsage_read_documents_served`.
        """
        docs = []
        sent = 0
        for trip_id, etag, doc in rows:
            if doc is None:
                docs.append(held[trip_id][1])
            else:
                self.put(trip_id, etag, doc)
                docs.append(doc)
                sent += 1
        if sent:
            FROM_DATABASE.inc(sent)
        if len(docs) > sent:
            FROM_HELD.inc(len(docs) - sent)
        return docs

    def held(self, trip_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[str, bytes]]:
        """What is kept of these trips: the caller's own references, whatever is evicted meanwhile."""
        held = {}
        for trip_id in trip_ids:
            found = self.get(trip_id)
            if found is not None:
                held[trip_id] = found
        return held

    def page(self, key: Hashable) -> tuple[uuid.UUID, ...]:
        """The trips the list page `key` held when it was last served (none if forgotten)."""
        trips = self._pages.get(key)
        if trips is None:
            return ()
        self._pages.move_to_end(key)
        return trips

    def remember_page(self, key: Hashable, trip_ids: tuple[uuid.UUID, ...]) -> None:
        """Remember the trips a list page held."""
        if not self.max_bytes:
            return
        self._pages[key] = trip_ids
        self._pages.move_to_end(key)
        if len(self._pages) > self.max_pages:
            self._pages.popitem(last=False)


def known(held: dict[uuid.UUID, tuple[str, bytes]]) -> list[str]:
    """The read functions' names of held documents: the trip id followed by the ETag."""
    return [f"{trip_id}{etag}" for trip_id, (etag, _) in held.items()]
