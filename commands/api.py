"""The write side's HTTP routes (thin: parse, call a handler, render).

Each router is mounted on the app directly (not under a router of routers): FastAPI matches a
nested router's routes again at every level, which cost a command ~7 % of its CPU time.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from commands import chat, keys, memories, routes
from core.deps import COMMAND_LIMIT
from core.openapi import RATE_LIMITED


def _include(app: FastAPI, router: APIRouter) -> None:
    # Every command spends one of the caller's per-minute budget (429 + Retry-After when it is used up).
    app.include_router(router, prefix="/api", dependencies=[COMMAND_LIMIT], responses=RATE_LIMITED)


def include_trip_commands(app: FastAPI) -> None:
    """Mount the trip commands (most of the write traffic) under `/api`."""
    _include(app, routes.router)


def include_other_commands(app: FastAPI) -> None:
    """Mount the profile, API key, memory and chat commands under `/api`."""
    for router in (routes.profile_router, keys.router, memories.router, chat.router):
        _include(app, router)
