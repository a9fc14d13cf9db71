"""What the command and query sides of a user's own data (API keys, memories, chat) both render.

The response models of `/api/keys`, `/api/memories` and `/api/chat/sessions`, the list page, the
problem+json error responses for OpenAPI, and the keyset cursor of lists ordered newest first by a
timestamp and the row id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from core.models import UtcDatetime, View
from core.pagination import decode_cursor, encode_cursor, invalid_cursor

T = TypeVar("T")

ChatRole = Literal["user", "assistant", "system"]


class ApiKey(View):
    """A stored API key as clients see it: never the key itself, only its last 4 characters."""

    id: uuid.UUID
    service: str
    name: str
    last4: str
    created_at: UtcDatetime


class Memory(View):
    """A memory: free text (full-text searchable) with a type and a JSON object of metadata."""

    id: uuid.UUID
    content: str
    memory_type: str
    metadata: dict[str, Any]
    created_at: UtcDatetime


class ChatMessage(View):
    """One message of a chat session."""

    id: uuid.UUID
    role: ChatRole
    content: str
    created_at: UtcDatetime


class LastMessage(View):
    """The newest message of a session, as shown in the session list."""

    role: ChatRole
    content: str
    created_at: UtcDatetime


class ChatSession(View):
    """A chat session with its message count and newest message (as listed and as created)."""

    id: uuid.UUID
    title: str | None
    trip_id: uuid.UUID | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    message_count: int = 0
    last_message: LastMessage | None = None


class Page(BaseModel, Generic[T]):
    """One page of a list: its items and the cursor of the next page (null on the last)."""

    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null when this is the last.")


def newest_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """The cursor after a row of a list ordered by (timestamp, id) descending."""
    return encode_cursor(created_at.isoformat(), str(row_id))


def parse_newest_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Decode a `newest_cursor` (422 for anything else)."""
    stamp, row_id = decode_cursor(cursor, 2)
    return parse_timestamp(stamp), parse_uuid(row_id)


def parse_timestamp(value: object) -> datetime:
    """A cursor part that must be an ISO timestamp with offset (422 otherwise)."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise invalid_cursor() from exc
    if parsed.tzinfo is None:
        raise invalid_cursor()
    return parsed


def parse_uuid(value: object) -> uuid.UUID:
    """A cursor part that must be a UUID (422 otherwise)."""
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise invalid_cursor() from exc
