"""The write side's HTTP routes (thin: parse, call a handler, render)."""

from __future__ import annotations

from fastapi import APIRouter

from commands import chat, keys, memories, routes
from core.deps import COMMAND_LIMIT
from core.openapi import RATE_LIMITED

# Every command spends one of the caller's per-minute budget (429 + Retry-After when it is used up).
router = APIRouter(prefix="/api", dependencies=[COMMAND_LIMIT], responses=RATE_LIMITED)
router.include_router(routes.router)
router.include_router(routes.profile_router)
router.include_router(keys.router)
router.include_router(memories.router)
router.include_router(chat.router)
