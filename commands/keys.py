"""Bring-your-own API keys, write side: store a key encrypted at rest, delete one.

The key's plaintext is a `SecretStr` from the moment the body is parsed (its repr is masked), is
encrypted before anything touches the database, and only its last 4 characters are stored in the
clear. Validation errors never echo input (`core.errors.validation_errors`).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import AfterValidator, Field, SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.crypto import KeyRing, keyring_for
from core.deps import ContextDep, CurrentUser, SessionDep
from core.errors import ApiError, not_found
from core.models import Command, SafeStr
from core.openapi import BODY_ERRORS, problem_responses
from core.user_data import ApiKey

router = APIRouter(tags=["api keys"])

MIN_KEY_LENGTH = 8
"""Shortest key accepted: the shown last 4 characters are then at most half of it."""
KEY_PATTERN = rf"^\s*\S[\s\S]{{{MIN_KEY_LENGTH - 2},}}\S\s*$"
"""The same rule as the document states it: at least 8 characters besides surrounding whitespace."""


def _clean_key(value: SecretStr) -> SecretStr:
    secret = value.get_secret_value()
    if "\x00" in secret:
        raise ValueError("must not contain NUL characters")
    stripped = secret.strip()
    if len(stripped) < MIN_KEY_LENGTH:
        raise ValueError(f"must have at least {MIN_KEY_LENGTH} characters besides surrounding whitespace")
    return SecretStr(stripped)


class CreateApiKey(Command):
    """Store an API key for a service under a name (unique per user, service and name)."""

    service: Annotated[SafeStr, Field(min_length=1, max_length=50, examples=["openai"])]
    name: Annotated[SafeStr, Field(min_length=1, max_length=100)] = "default"
    key: Annotated[
        SecretStr,
        Field(
            min_length=MIN_KEY_LENGTH,
            max_length=4096,
            description="The key; stored encrypted, never returned.",
            json_schema_extra={"pattern": KEY_PATTERN},
        ),
        AfterValidator(_clean_key),
    ]


INSERT_KEY = text(
    """
    INSERT INTO api_keys (user_id, service, name, ciphertext, last4)
    VALUES (:user_id, :service, :name, :ciphertext, :last4)
    ON CONFLICT ON CONSTRAINT api_keys_user_service_name_key DO NOTHING
    RETURNING id, service, name, last4, created_at
    """
)
"""Insert the encrypted key; no row back means the user already has one with this service and name."""

DELETE_KEY = text("DELETE FROM api_keys WHERE id = :id AND user_id = :user_id RETURNING id")
"""Delete one of the caller's keys (RLS hides everyone else's)."""


async def create_api_key(session: AsyncSession, user: Principal, cmd: CreateApiKey, keyring: KeyRing) -> ApiKey:
    """Encrypt and store a key.

    Args:
        session: The caller's unit of work.
        user: The caller.
        cmd: The validated request.
        keyring: The configured encryption keys.

    Returns:
        The stored key's public view.

    Raises:
        ApiError: 409 when the caller already has a key for this service and name.
    """
    secret = cmd.key.get_secret_value()
    params = {
        "user_id": user.user_id,
        "service": cmd.service,
        "name": cmd.name,
        "ciphertext": keyring.encrypt(secret),
        "last4": secret[-4:],
    }
    row = (await session.execute(INSERT_KEY, params)).mappings().first()
    if row is None:
        raise ApiError(
            409, f"an API key named {cmd.name!r} for service {cmd.service!r} already exists; delete it first"
        )
    return ApiKey.model_validate(row)


async def delete_api_key(session: AsyncSession, user: Principal, key_id: uuid.UUID) -> None:
    """Delete one of the caller's keys.

    Raises:
        ApiError: 404 when it is absent or someone else's.
    """
    if (await session.execute(DELETE_KEY, {"id": key_id, "user_id": user.user_id})).first() is None:
        raise not_found("API key")


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKey,
    responses=problem_responses(409, *BODY_ERRORS),
    summary="Store an API key",
)
async def post_key(body: CreateApiKey, session: SessionDep, user: CurrentUser, ctx: ContextDep) -> ApiKey:
    """Store a key for a service, encrypted at rest; only its last 4 characters are ever shown."""
    return await create_api_key(session, user, body, keyring_for(ctx.settings))


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404, 422),
    summary="Delete an API key",
)
async def delete_key(key_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Response:
    """Delete one of your stored keys."""
    await delete_api_key(session, user, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
