"""The read side's HTTP routes: one-statement reads of the read model.

Each router is mounted on the app directly (see `commands.api`).
"""

from __future__ import annotations

from fastapi import FastAPI

from core.deps import QUERY_LIMIT
from core.openapi import RATE_LIMITED
from queries import admin, chat, keys, memories, profile, trips
from queries.live import routes as live

PREFIX = "/api"


def include_trip_reads(app: FastAPI) -> None:
    """Mount the trip reads (most of the traffic) under `/api`."""
    app.include_router(trips.router, prefix=PREFIX)


def include_other_reads(app: FastAPI) -> None:
    """Mount the other reads under `/api`.

    Expensive reads spend the caller's query budget: every chat read (counts and message pages),
    and the trip and memory lists when they search (`q`, their routes' `SEARCH_LIMIT`). The hot trip
    reads without `q` never touch Redis.
    """
    for router in (profile.router, keys.router, memories.router):
        app.include_router(router, prefix=PREFIX)
    app.include_router(chat.router, prefix=PREFIX, dependencies=[QUERY_LIMIT], responses=RATE_LIMITED)
    for router in (admin.router, live.router):
        app.include_router(router, prefix=PREFIX)
