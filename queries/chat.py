"""Chat sessions, read side: the list with counts and newest messages, one session with a page of its messages.

Each endpoint is one SQL statement: the list computes every session's message count and newest
message in LATERAL subqueries of the same statement; a session's messages come aggregated in
order (`json_agg ... ORDER BY seq`), one page of them after the cursor's `seq`, with the session row.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.deps import CurrentUser, SessionDep
from core.errors import not_found
from core.models import UtcDatetime, View
from core.openapi import problem_responses
from core.pagination import decode_cursor, encode_cursor, invalid_cursor
from core.user_data import ChatMessage, ChatSession, Page, newest_cursor, parse_newest_cursor

router = APIRouter(tags=["chat"])

Limit = Annotated[int, Query(ge=1, le=100, description="Page size (1–100).")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")]


class ChatSessionDetail(View):
    """A chat session with one page of its messages, oldest first."""

    id: uuid.UUID
    title: str | None
    trip_id: uuid.UUID | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    messages: list[ChatMessage]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page of messages; null on the last.")


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
                                               'created_at', m.created_at, 'seq', m.seq) ORDER BY m.seq)
             FROM (
               SELECT m.id, m.role, m.content, m.created_at, m.seq FROM chat_messages AS m
               WHERE m.session_id = s.id AND m.seq > :after_seq
               ORDER BY m.seq LIMIT :limit
             ) AS m
           ), '[]'::json) AS messages
    FROM chat_sessions AS s
    WHERE s.id = :id AND s.user_id = :user_id
    """
)
"""One of the caller's sessions with a page of its messages in order, after a cursor's `seq`
(index `chat_messages_session_seq_idx`); the caller asks for one more than the page."""


def message_cursor(seq: int) -> str:
    """The cursor after a message (its `seq`, the session's order)."""
    return encode_cursor(seq)


def parse_message_cursor(cursor: str) -> int:
    """Decode a `message_cursor` (422 for anything else)."""
    (seq,) = decode_cursor(cursor, 1)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise invalid_cursor()
    return seq


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


async def get_chat_session(
    session: AsyncSession, user: Principal, session_id: uuid.UUID, limit: int, cursor: str | None
) -> ChatSessionDetail:
    """One of the caller's sessions with one page of its messages, oldest first (one statement).

    Raises:
        ApiError: 404 when it is absent or someone else's; 422 for a cursor that is not ours.
    """
    after_seq = parse_message_cursor(cursor) if cursor is not None else 0
    params = {"id": session_id, "user_id": user.user_id, "after_seq": after_seq, "limit": limit + 1}
    row = (await session.execute(GET_SESSION, params)).mappings().first()
    if row is None:
        raise not_found("chat session")
    messages = row["messages"]
    next_cursor = message_cursor(messages[limit - 1]["seq"]) if len(messages) > limit else None
    # Each message's `seq` (the cursor's key) is not part of the response model: validation drops it.
    return ChatSessionDetail.model_validate(dict(row) | {"messages": messages[:limit], "next_cursor": next_cursor})


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
async def get_chat_session_route(
    session_id: uuid.UUID, session: SessionDep, user: CurrentUser, limit: Limit = 50, cursor: Cursor = None
) -> ChatSessionDetail:
    """One of your chat sessions with a page of its messages, oldest first (`next_cursor` for the next page)."""
    return await get_chat_session(session, user, session_id, limit, cursor)
