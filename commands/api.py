"""The write side's HTTP routes (thin: parse, call a handler, render)."""

from __future__ import annotations

from fastapi import APIRouter

from commands import chat, keys, memories, routes

router = APIRouter(prefix="/api")
router.include_router(routes.router)
router.include_router(routes.profile_router)
router.include_router(keys.router)
router.include_router(memories.router)
router.include_router(chat.router)
