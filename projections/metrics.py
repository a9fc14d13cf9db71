"""Prometheus gauges of the projection, refreshed on scrape with one status query.

`prometheus_client` collects synchronously, so `/metrics` first awaits `refresh` (one statement)
and the collector then yields the figures it holds. When the database cannot be asked, the
projection families are exported without samples rather than with stale values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.status import ProjectionStatus, read_status

log = logging.getLogger("tripsage.metrics")
REFRESH_TIMEOUT_S = 2.0

GAUGES: tuple[tuple[str, str, str], ...] = (
    ("tripsage_projection_lag_seconds", "Age of the oldest unapplied change", "lag_seconds"),
    ("tripsage_projection_lag_positions", "Unapplied change-feed rows", "lag_positions"),
    ("tripsage_projection_backlog", "Distinct trips and profiles waiting to be applied", "backlog"),
    ("tripsage_projection_dead_letters", "Trips parked after repeated projection failures", "dead_letters"),
    ("tripsage_projection_retrying", "Failed trips waiting for a retry", "retrying"),
    ("tripsage_projection_workers", "Workers with a heartbeat in the last 15 s", "workers"),
    ("tripsage_projection_heartbeat_age_seconds", "Seconds since the newest worker heartbeat", "heartbeat_age_seconds"),
    (
        "tripsage_projection_stale_documents",
        "Trips whose document is stale after failed projections",
        "stale_documents",
    ),
    (
        "tripsage_projection_horizon_age_seconds",
        "Age of the oldest open transaction holding the change-feed horizon (0: none)",
        "horizon_age_seconds",
    ),
)


class ProjectionCollector(Collector):
    """Exports the last refreshed `ProjectionStatus` as gauges labelled by projection."""

    def __init__(self) -> None:
        """Start with nothing to report."""
        self.status: ProjectionStatus | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families this collector exports (so registration never queries anything)."""
        for name, documentation, _ in GAUGES:
            yield GaugeMetricFamily(name, documentation, labels=["projection"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges, from the last refresh."""
        status = self.status
        for name, documentation, attribute in GAUGES:
            family = GaugeMetricFamily(name, documentation, labels=["projection"])
            value = None if status is None else getattr(status, attribute)
            if status is not None and value is not None:
                family.add_metric([status.name], float(value))
            yield family

    async def refresh(self, engine: AsyncEngine) -> None:
        """Run the status query (bounded in time); on failure export no projection samples."""
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT_S), engine.connect() as conn:
                self.status = await read_status(conn)
        except Exception:  # noqa: BLE001  # a scrape must not fail because the database is away
            log.warning("projection metrics unavailable", exc_info=True)
            self.status = None


COLLECTOR = ProjectionCollector()


def register(registry: CollectorRegistry = REGISTRY) -> ProjectionCollector:
    """Register the process-wide collector once (later calls are no-ops) and return it."""
    try:
        registry.register(COLLECTOR)
    except ValueError:  # already registered (several apps in one process, e.g. tests)
        log.debug("projection collector already registered")
    return COLLECTOR
