"""Chat sessions, write side: open a session (optionally about a trip), add messages, delete it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.deps import CurrentUser, SessionDep
from core.errors import ApiError, not_found
from core.models import Command, SafeStr
from core.openapi import BODY_ERRORS, problem_responses
from core.user_data import ChatMessage, ChatRole, ChatSession

router = APIRouter(tags=["chat"])


class CreateChatSession(Command):
    """Open a chat session, optionally about a trip you can see."""

    title: Annotated[SafeStr | None, Field(max_length=200)] = None
    trip_id: uuid.UUID | None = None


class AddChatMessage(Command):
    """Add a message to one of your sessions."""

    role: ChatRole
    content: Annotated[SafeStr, Field(min_length=1, max_length=32768)]


INSERT_SESSION = text(
    """
    INSERT INTO chat_sessions (user_id, trip_id, title)
    SELECT :user_id, CAST(:trip_id AS uuid), :title
    WHERE CAST(:trip_id AS uuid) IS NULL OR tripsage.can_view_trip(CAST(:trip_id AS uuid))
    RETURNING id, title, trip_id, created_at, updated_at
    """
)
"""Open a session; no row back means the trip is absent or not visible (the same answer for both)."""

INSERT_MESSAGE = text(
    """
    WITH touched AS (
      UPDATE chat_sessions
      SET updated_at = now(),
          trip_id = CASE WHEN trip_id IS NULL OR tripsage.can_view_trip(trip_id) THEN trip_id END
      WHERE id = :session_id AND user_id = :user_id
      RETURNING id
    )
    INSERT INTO chat_messages (session_id, user_id, role, content)
    SELECT id, :user_id, :role, :content FROM touched
    RETURNING id, role, content, created_at
    """
)
"""Append a message and bump the session's `updated_at`, in one statement; no row back: no such session.

A session whose trip the caller can no longer see (access revoked) loses the link, which its
RLS policy requires on every write, instead of refusing the message."""

DELETE_SESSION = text("DELETE FROM chat_sessions WHERE id = :id AND user_id = :user_id RETURNING id")
"""Delete one of the caller's sessions; its messages go with it (ON DELETE CASCADE)."""


async def create_chat_session(session: AsyncSession, user: Principal, cmd: CreateChatSession) -> ChatSession:
    """Open a chat session.

    Raises:
        ApiError: 422 on `trip_id` when that trip does not exist or the caller cannot see it.
    """
    params = {"user_id": user.user_id, "trip_id": cmd.trip_id, "title": cmd.title}
    row = (await session.execute(INSERT_SESSION, params)).mappings().first()
    if row is None:
        raise ApiError(
            422,
            "the request is invalid",
            errors=[{"loc": ["body", "trip_id"], "msg": "no such trip (or you cannot see it)"}],
        )
    return ChatSession.model_validate(row)


async def add_chat_message(
    session: AsyncSession, user: Principal, session_id: uuid.UUID, cmd: AddChatMessage
) -> ChatMessage:
    """Append a message to one of the caller's sessions.

    Raises:
        ApiError: 404 when the session is absent or someone else's.
    """
    params = {"session_id": session_id, "user_id": user.user_id, "role": cmd.role, "content": cmd.content}
    row = (await session.execute(INSERT_MESSAGE, params)).mappings().first()
    if row is None:
        raise not_found("chat session")
    return ChatMessage.model_validate(row)


async def delete_chat_session(session: AsyncSession, user: Principal, session_id: uuid.UUID) -> None:
    """Delete one of the caller's sessions and its messages.

    Raises:
        ApiError: 404 when it is absent or someone else's.
    """
    if (await session.execute(DELETE_SESSION, {"id": session_id, "user_id": user.user_id})).first() is None:
        raise not_found("chat session")


@router.post(
    "/chat/sessions",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatSession,
    responses=problem_responses(*BODY_ERRORS),
    summary="Open a chat session",
)
async def post_chat_session(body: CreateChatSession, session: SessionDep, user: CurrentUser) -> ChatSession:
    """Open a chat session, optionally about a trip you can see."""
    return await create_chat_session(session, user, body)


@router.post(
    "/chat/sessions/{session_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatMessage,
    responses=problem_responses(404, *BODY_ERRORS),
    summary="Add a chat message",
)
async def post_chat_message(
    session_id: uuid.UUID, body: AddChatMessage, session: SessionDep, user: CurrentUser
) -> ChatMessage:
    """Add a message to one of your sessions (moves the session to the top of your list)."""
    return await add_chat_message(session, user, session_id, body)


@router.delete(
    "/chat/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404, 422),
    summary="Delete a chat session",
)
async def delete_chat_session_route(session_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Response:
    """Delete one of your sessions with its messages."""
    await delete_chat_session(session, user, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
