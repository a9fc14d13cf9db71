"""The read side's HTTP routes: one-statement reads of the read model."""

from __future__ import annotations

from fastapi import APIRouter

from core.deps import QUERY_LIMIT
from core.openapi import RATE_LIMITED
from queries import admin, chat, keys, memories, profile, trips
from queries.live import routes as live

router = APIRouter(prefix="/api")
router.include_router(trips.router)
router.include_router(profile.router)
router.include_router(keys.router)
router.include_router(memories.router)
# Expensive reads spend the caller's query budget: every chat read (counts and message pages), and
# the trip and memory lists when they search (`q`, their routes' `SEARCH_LIMIT`). The hot trip reads
# without `q` never touch Redis.
router.include_router(chat.router, dependencies=[QUERY_LIMIT], responses=RATE_LIMITED)
router.include_router(admin.router)
router.include_router(live.router)
