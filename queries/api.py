"""The read side's HTTP routes: one-statement reads of the read model."""

from __future__ import annotations

from fastapi import APIRouter

from queries import admin, chat, keys, memories, profile, trips

router = APIRouter(prefix="/api")
router.include_router(trips.router)
router.include_router(profile.router)
router.include_router(keys.router)
router.include_router(memories.router)
router.include_router(chat.router)
router.include_router(admin.router)
