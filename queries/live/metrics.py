"""Prometheus metrics of live updates (exported by `/metrics` with the process's default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SUBSCRIBERS = Gauge("tripsage_live_subscribers", "Live-update streams open in this process")
EVENTS_SENT = Counter("tripsage_live_events_sent", "Live-update events written to clients", ["event"])
COALESCED = Counter(
    "tripsage_live_events_coalesced",
    "Events replaced by a newer event of the same trip before a slow client read them",
)
DROPPED = Counter(
    "tripsage_live_events_dropped",
    "Events dropped because a client's queue overflowed (the client got `event: reset` instead)",
)
READS = Counter("tripsage_live_reads", "Statements reading projected changes (one per wake-up per process)")
DELIVERY = Histogram(
    "tripsage_live_delivery_seconds",
    "From the projection writing a change to its event being written to a client",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
