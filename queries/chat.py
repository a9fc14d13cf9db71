"""Chat sessions, read side: the list with counts and newest messages, one session with its messages.

Each endpoint is one SQL statement: the list computes every session's message count and newest
message in LATERAL subqueries of the same statement; a session's messages come aggregated in
order (`json_agg ... ORDER BY seq`) with the session row.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.deps import CurrentUser, SessionDep
from core.errors import not_found
from core.models import UtcDatetime, View
from core.openapi import problem_responses
from core.user_data import ChatMessage, ChatSession, Page, newest_cursor, parse_newest_cursor

router = APIRouter(tags=["chat"])

Limit = Annotated[int, Query(ge=1, le=100, description="Page size (1–100).")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")]


class ChatSessionDetail(View):
    """A chat session with all its messages, oldest first."""

    id: uuid.UUID
    title: str | None
    trip_id: uuid.UUID | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    messages: list[ChatMessage]


_LIST = """
SELECT s.id, s.title, s.trip_id, s.created_at, s.updated_at, counted.message_count,
       CASE WHEN newest.role IS NULL THEN NULL
            ELSE json_build_object('role', newest.role, 'content', newest.content,
                                   'created_at', newest.created_at) END AS last_message
FROM chat_sessions AS s
CROSS JOIN LATERAL (SELECT count(*) AS message_count FROM chat_messages AS m WHERE m.session_id = s.id) AS counted
LEFT JOIN LATERAL (
  SELECT m.role, m.content, m.created_at FROM chat_messages AS m
  WHERE m.session_id = s.id ORDER BY m.seq DESC LIMIT 1
) AS newest ON true
WHERE s.user_id = :user_id {after}
ORDER BY s.updated_at DESC, s.id DESC
LIMIT :limit
"""

LIST_SESSIONS = text(_LIST.format(after=""))
"""A page of the caller's sessions, most recently active first, each with its count and newest message."""
LIST_SESSIONS_AFTER = text(
    _LIST.format(after="AND (s.updated_at, s.id) < (CAST(:after_ts AS timestamptz), CAST(:after_id AS uuid))")
)
"""The same, after a cursor's (updated_at, id)."""

GET_SESSION = text(
    """
    SELECT s.id, s.title, s.trip_id, s.created_at, s.updated_at,
           coalesce((
             SELECT json_agg(json_build_object('id', m.id, 'role', m.role, 'content', m.content,
                                               'created_at', m.created_at) ORDER BY m.seq)
             FROM chat_messages AS m WHERE m.session_id = s.id
           ), '[]'::json) AS messages
    FROM chat_sessions AS s
    WHERE s.id = :id AND s.user_id = :user_id
    """
)
"""One of the caller's sessions with its messages in order (index `chat_messages_session_seq_idx`)."""


async def list_chat_sessions(
    session: AsyncSession, user: Principal, limit: int, cursor: str | None
) -> Page[ChatSession]:
    """One page of the caller's sessions with counts and newest messages (one statement)."""
    params: dict[str, Any] = {"user_id": user.user_id, "limit": limit + 1}
    statement: TextClause = LIST_SESSIONS
    if cursor is not None:
        params["after_ts"], params["after_id"] = parse_newest_cursor(cursor)
        statement = LIST_SESSIONS_AFTER
    rows = (await session.execute(statement, params)).mappings().all()
    items = [ChatSession.model_validate(row) for row in rows[:limit]]
    next_cursor = newest_cursor(rows[limit - 1]["updated_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return Page[ChatSession](items=items, next_cursor=next_cursor)


async def get_chat_session(session: AsyncSession, user: Principal, session_id: uuid.UUID) -> ChatSessionDetail:
    """One of the caller's sessions with its messages (one statement).

    Raises:
        ApiError: 404 when it is absent or someone else's.
    """
    row = (await session.execute(GET_SESSION, {"id": session_id, "user_id": user.user_id})).mappings().first()
    if row is None:
        raise not_found("chat session")
    return ChatSessionDetail.model_validate(row)


@router.get(
    "/chat/sessions",
    response_model=Page[ChatSession],
    responses=problem_responses(422),
    summary="List your chat sessions",
)
async def get_chat_sessions(
    session: SessionDep, user: CurrentUser, limit: Limit = 20, cursor: Cursor = None
) -> Page[ChatSession]:
    """Your chat sessions, most recently active first, each with its message count and newest message."""
    return await list_chat_sessions(session, user, limit, cursor)


@router.get(
    "/chat/sessions/{session_id}",
    response_model=ChatSessionDetail,
    responses=problem_responses(404, 422),
    summary="Get a chat session",
)
async def get_chat_session_route(session_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> ChatSessionDetail:
    """One of your chat sessions with all its messages, oldest first."""
    return await get_chat_session(session, user, session_id)
