"""Bring-your-own API keys, read side: the caller's keys, newest first (never the key itself)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.deps import CurrentUser, SessionDep
from core.openapi import problem_responses
from core.user_data import ApiKey, Page, newest_cursor, parse_newest_cursor

router = APIRouter(tags=["api keys"])

Limit = Annotated[int, Query(ge=1, le=100, description="Page size (1–100).")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")]

LIST_KEYS = text(
    """
    SELECT id, service, name, last4, created_at FROM api_keys
    WHERE user_id = :user_id
      AND (CAST(:after_ts AS timestamptz) IS NULL OR (created_at, id) < (:after_ts, CAST(:after_id AS uuid)))
    ORDER BY created_at DESC, id DESC
    LIMIT :limit
    """
)
"""A page of the caller's keys, newest first, after the cursor's (created_at, id) if any.

The ciphertext is not selected: nothing on the read side can return it, even by mistake."""


async def list_api_keys(session: AsyncSession, user: Principal, limit: int, cursor: str | None) -> Page[ApiKey]:
    """One page of the caller's keys (one statement).

    Args:
        session: The caller's unit of work.
        user: The caller.
        limit: Page size.
        cursor: The previous page's `next_cursor`.

    Returns:
        The page.
    """
    after_ts: datetime | None = None
    after_id = None
    if cursor is not None:
        after_ts, after_id = parse_newest_cursor(cursor)
    params = {"user_id": user.user_id, "after_ts": after_ts, "after_id": after_id, "limit": limit + 1}
    rows = (await session.execute(LIST_KEYS, params)).mappings().all()
    items = [ApiKey.model_validate(row) for row in rows[:limit]]
    next_cursor = newest_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return Page[ApiKey](items=items, next_cursor=next_cursor)


@router.get("/keys", response_model=Page[ApiKey], responses=problem_responses(422), summary="List your API keys")
async def get_keys(session: SessionDep, user: CurrentUser, limit: Limit = 20, cursor: Cursor = None) -> Page[ApiKey]:
    """List your stored keys, newest first: service, name and last 4 characters only."""
    return await list_api_keys(session, user, limit, cursor)
