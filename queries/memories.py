"""Memories, read side: newest first, or PostgreSQL full-text search ranked best match first.

Search parses `q` with `websearch_to_tsquery('simple', q)`, which accepts any text (quotes, `or`,
`-word`, punctuation, SQL-looking strings, any script) without a syntax error, and matches it
against the stored generated `search` vector (GIN-indexed). Results are ordered by `ts_rank`, then
newest, then id; the cursor holds the last row's (rank, created_at, id) plus a fingerprint of `q`,
so a page boundary is exact (the rank is PostgreSQL's float4 carried losslessly as a JSON double)
and a cursor cannot be replayed against a different search. A `q` without any word (only
punctuation or operators) is an empty query that matches nothing: an empty page.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.deps import SEARCH_LIMIT, CurrentUser, SessionDep
from core.models import SafeStr
from core.openapi import problem_responses
from core.pagination import decode_cursor, encode_cursor, invalid_cursor
from core.user_data import (
    Memory,
    Page,
    newest_cursor,
    parse_newest_cursor,
    parse_timestamp,
    parse_uuid,
)

router = APIRouter(tags=["memories"])

Limit = Annotated[int, Query(ge=1, le=100, description="Page size (1–100).")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")]
Search = Annotated[
    SafeStr | None,
    Query(max_length=1000, description='Full-text search (web search syntax: words, `"phrase"`, `or`, `-word`).'),
]

_NEWEST = """
SELECT id, content, memory_type, metadata, created_at FROM memories
WHERE user_id = :user_id {after}
ORDER BY created_at DESC, id DESC
LIMIT :limit
"""
_NEWEST_AFTER = "AND (created_at, id) < (CAST(:after_ts AS timestamptz), CAST(:after_id AS uuid))"

_SEARCH = """
SELECT m.id, m.content, m.memory_type, m.metadata, m.created_at,
       CAST(ts_rank(m.search, q.query) AS float8) AS rank
FROM memories AS m, websearch_to_tsquery('simple', :q) AS q (query)
WHERE m.user_id = :user_id AND m.search @@ q.query {after}
ORDER BY rank DESC, m.created_at DESC, m.id DESC
LIMIT :limit
"""
_SEARCH_AFTER = (
    "AND (CAST(ts_rank(m.search, q.query) AS float8), m.created_at, m.id)"
    " < (CAST(:after_rank AS float8), CAST(:after_ts AS timestamptz), CAST(:after_id AS uuid))"
)

NEWEST_FIRST = text(_NEWEST.format(after=""))
"""The caller's newest memories (index `memories_user_created_idx`)."""
NEWEST_FIRST_AFTER = text(_NEWEST.format(after=_NEWEST_AFTER))
"""The same, after a cursor's (created_at, id)."""
BEST_MATCH_FIRST = text(_SEARCH.format(after=""))
"""The caller's memories matching `q` (GIN index on `search`), best `ts_rank` first."""
BEST_MATCH_FIRST_AFTER = text(_SEARCH.format(after=_SEARCH_AFTER))
"""The same, after a cursor's (rank, created_at, id)."""


def _fingerprint(q: str) -> str:
    return hashlib.sha256(q.encode()).hexdigest()[:16]


def _search_cursor(row: Any, q: str) -> str:
    return encode_cursor(row["rank"], row["created_at"].isoformat(), str(row["id"]), _fingerprint(q))


def _parse_search_cursor(cursor: str, q: str) -> dict[str, Any]:
    rank, stamp, row_id, fingerprint = decode_cursor(cursor, 4)
    if not isinstance(rank, int | float) or isinstance(rank, bool) or fingerprint != _fingerprint(q):
        raise invalid_cursor()
    return {"after_rank": float(rank), "after_ts": parse_timestamp(stamp), "after_id": parse_uuid(row_id)}


async def list_memories(
    session: AsyncSession, user: Principal, *, q: str | None, limit: int, cursor: str | None
) -> Page[Memory]:
    """One page of the caller's memories, newest first or (with `q`) best match first; one statement.

    Args:
        session: The caller's unit of work.
        user: The caller.
        q: The search text, if searching.
        limit: Page size.
        cursor: The previous page's `next_cursor` (made by the same kind of listing and the same `q`).

    Returns:
        The page.
    """
    params: dict[str, Any] = {"user_id": user.user_id, "limit": limit + 1}
    statement: TextClause
    if q is None:
        statement = NEWEST_FIRST
        if cursor is not None:
            params["after_ts"], params["after_id"] = parse_newest_cursor(cursor)
            statement = NEWEST_FIRST_AFTER
    else:
        params["q"] = q
        statement = BEST_MATCH_FIRST
        if cursor is not None:
            params |= _parse_search_cursor(cursor, q)
            statement = BEST_MATCH_FIRST_AFTER
    rows = (await session.execute(statement, params)).mappings().all()
    items = [Memory.model_validate(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = newest_cursor(last["created_at"], last["id"]) if q is None else _search_cursor(last, q)
    return Page[Memory](items=items, next_cursor=next_cursor)


@router.get(
    "/memories",
    response_model=Page[Memory],
    responses=problem_responses(422, 429),
    summary="List or search memories",
    dependencies=[SEARCH_LIMIT],
)
async def get_memories(
    session: SessionDep, user: CurrentUser, q: Search = None, limit: Limit = 20, cursor: Cursor = None
) -> Page[Memory]:
    """Your memories: newest first, or with `q` full-text search results, best match first (`q` spends the query budget)."""
    return await list_memories(session, user, q=q, limit=limit, cursor=cursor)
