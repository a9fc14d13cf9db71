"""Memories, write side: remember a piece of text (full-text indexed by the database), forget one."""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Response, status
from pydantic import AfterValidator, Field
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.deps import CurrentUser, SessionDep
from core.errors import not_found
from core.models import Command, SafeStr, reject_nul
from core.openapi import BODY_ERRORS, problem_responses
from core.user_data import Memory

router = APIRouter(tags=["memories"])


MAX_METADATA_DEPTH = 32
"""Deepest nesting of `metadata` accepted (PostgreSQL and the validators recurse over it)."""


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse what PostgreSQL cannot store: deep nesting, NaN or infinities, NUL in strings or keys."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        if children and depth >= MAX_METADATA_DEPTH:
            raise ValueError(f"must not be nested deeper than {MAX_METADATA_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)
    reject_nul(value)
    return value


class CreateMemory(Command):
    """Remember a piece of text."""

    content: Annotated[SafeStr, Field(min_length=1, max_length=32768)]
    memory_type: Annotated[SafeStr, Field(min_length=1, max_length=50)] = "note"
    metadata: Annotated[
        dict[str, Any],
        AfterValidator(_check_metadata),
        Field(description="Any JSON object (bounded by the 1 MiB body)"),
    ] = Field(default_factory=dict)


INSERT_MEMORY = text(
    """
    INSERT INTO memories (user_id, content, memory_type, metadata)
    VALUES (:user_id, :content, :memory_type, :metadata)
    RETURNING id, content, memory_type, metadata, created_at
    """
).bindparams(bindparam("metadata", type_=JSONB))
"""Store a memory; the database derives its search vector (generated column)."""

DELETE_MEMORY = text("DELETE FROM memories WHERE id = :id AND user_id = :user_id RETURNING id")
"""Delete one of the caller's memories (RLS hides everyone else's)."""


async def create_memory(session: AsyncSession, user: Principal, cmd: CreateMemory) -> Memory:
    """Store a memory and return it as stored."""
    params = {"user_id": user.user_id, "content": cmd.content, "memory_type": cmd.memory_type, "metadata": cmd.metadata}
    row = (await session.execute(INSERT_MEMORY, params)).mappings().one()
    return Memory.model_validate(row)


async def delete_memory(session: AsyncSession, user: Principal, memory_id: uuid.UUID) -> None:
    """Delete one of the caller's memories.

    Raises:
        ApiError: 404 when it is absent or someone else's.
    """
    if (await session.execute(DELETE_MEMORY, {"id": memory_id, "user_id": user.user_id})).first() is None:
        raise not_found("memory")


@router.post(
    "/memories",
    status_code=status.HTTP_201_CREATED,
    response_model=Memory,
    responses=problem_responses(*BODY_ERRORS),
    summary="Store a memory",
)
async def post_memory(body: CreateMemory, session: SessionDep, user: CurrentUser) -> Memory:
    """Store a memory; its content becomes full-text searchable at once."""
    return await create_memory(session, user, body)


@router.delete(
    "/memories/{memory_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404, 422),
    summary="Delete a memory",
)
async def delete_memory_route(memory_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Response:
    """Delete one of your memories."""
    await delete_memory(session, user, memory_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
