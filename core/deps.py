"""FastAPI dependencies, as `Annotated` aliases in one place: who is calling, and their unit of work."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import AuthError, Principal, TokenVerifier
from core.db import Database
from core.errors import ApiError
from core.limits import RateLimiter
from core.nudge import Nudger
from core.settings import Settings

PROVISIONED_MEMORY = 100_000

PROVISION_PROFILE = text(
    """
    WITH p AS (
      INSERT INTO profiles (id, email, display_name) VALUES (:id, :email, :name)
      ON CONFLICT (id) DO NOTHING RETURNING id
    )
    INSERT INTO user_preferences (user_id) SELECT id FROM p ON CONFLICT (user_id) DO NOTHING
    """
)


@dataclass(slots=True)
class AppContext:
    """What the app keeps for its lifetime (opened in the lifespan, kept on `app.state.ctx`)."""

    settings: Settings
    db: Database
    verifier: TokenVerifier
    nudger: Nudger
    provisioned: set[uuid.UUID]
    limiter: RateLimiter


async def get_context(request: Request) -> AppContext:
    """The app's context."""
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_principal(request: Request) -> Principal:
    """Verify the bearer token (401 when absent or invalid).

    Reads the `Authorization` header itself (as `HTTPBearer` would) instead of nesting FastAPI
    dependencies: every nested dependency costs each request measurable time. OpenAPI still
    declares the scheme: `core.openapi.declare_bearer_auth`.
    """
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("authentication required", missing=True)
    ctx: AppContext = request.app.state.ctx
    return await ctx.verifier.verify(token.strip())


PrincipalDep = Annotated[Principal, Depends(get_principal)]

_UUID = TypeAdapter(uuid.UUID)


def path_uuid(request: Request, name: str) -> uuid.UUID:
    """A UUID path parameter that the route reads itself, refused (422) exactly as FastAPI would refuse it.

    For the hottest routes, which declare no parameters: FastAPI's per-request resolution of
    dependencies and parameters is a measurable share of their CPU time (`bench/profiles/README.md`).
    """
    try:
        return _UUID.validate_python(request.path_params[name])
    except ValidationError as exc:
        errors = [{**err, "loc": ("path", name, *err["loc"])} for err in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


async def provision(ctx: AppContext, principal: Principal) -> None:
    """Create the caller's profile on first sight (once per process per user, idempotent)."""
    assert principal.user_id is not None
    if len(ctx.provisioned) >= PROVISIONED_MEMORY:  # bounded memory; forgetting costs one no-op insert
        ctx.provisioned.clear()
    async with ctx.db.request_session(principal) as session:
        await session.execute(
            PROVISION_PROFILE, {"id": principal.user_id, "email": principal.email, "name": principal.display_name}
        )
        await session.commit()
    ctx.provisioned.add(principal.user_id)


USER_KEY = "tripsage.user"
"""Where `get_user` keeps the request's verified user (in the ASGI scope), so that a second call
(the command rate limit, then the route) does not verify again."""


async def get_user(request: Request) -> Principal:
    """A user (not a service token): 403 for service tokens; provisions the profile on first sight."""
    known: Principal | None = request.scope.get(USER_KEY)
    if known is not None:
        return known
    principal = await get_principal(request)
    ctx: AppContext = request.app.state.ctx
    if principal.user_id is None:
        raise ApiError(403, "this endpoint needs a user token")
    if principal.user_id not in ctx.provisioned:
        await provision(ctx, principal)
    request.scope[USER_KEY] = principal
    return principal


CurrentUser = Annotated[Principal, Depends(get_user)]


async def get_service(principal: PrincipalDep) -> Principal:
    """A `service_role` caller (403 for user tokens)."""
    if not principal.is_service:
        raise ApiError(403, "this endpoint needs a service_role token")
    return principal


ServicePrincipal = Annotated[Principal, Depends(get_service)]


async def get_async_db(ctx: ContextDep, user: CurrentUser) -> AsyncIterator[AsyncSession]:
    """The caller's unit of work: commits on success, rolls back on any exception."""
    async with ctx.db.request_session(user) as session:
        yield session
        if session.in_transaction():
            await session.commit()


# scope="function": the commit runs when the route returns, before the response is sent, so a
# failed commit becomes the response (the default "request" scope would commit after sending it).
SessionDep = Annotated[AsyncSession, Depends(get_async_db, scope="function")]


async def _spend(ctx: AppContext, user: Principal, bucket: str, per_minute: int) -> None:
    assert user.user_id is not None
    wait = await ctx.limiter.retry_after(bucket, user.user_id, per_minute)
    if wait is not None:
        raise ApiError(
            429, f"too many requests: at most {per_minute} {bucket} per minute", headers={"Retry-After": str(wait)}
        )


async def limit_commands(request: Request) -> None:
    """Spend one of the caller's command budget (`RATE_LIMIT_COMMANDS_PER_MINUTE`); 429 when it is used up.

    Authenticates the caller itself (one dependency, not three: see `path_uuid`); a route that
    needs the caller too gets the same one (`USER_KEY`), not a second verification.
    """
    user = await get_user(request)
    ctx: AppContext = request.app.state.ctx
    await _spend(ctx, user, "commands", ctx.settings.rate_limit_commands_per_minute)


async def get_caller(request: Request) -> tuple[Principal, AppContext]:
    """The verified user and the app context, for a route that declares no dependency (see `path_uuid`)."""
    return await get_user(request), request.app.state.ctx


async def limit_queries(ctx: ContextDep, user: CurrentUser) -> None:
    """Spend one of the caller's budget of expensive queries (`RATE_LIMIT_QUERIES_PER_MINUTE`)."""
    await _spend(ctx, user, "queries", ctx.settings.rate_limit_queries_per_minute)


async def limit_searches(request: Request, ctx: ContextDep, user: CurrentUser) -> None:
    """`limit_queries` for a list that is expensive only when it searches (a non-empty `q`)."""
    if request.query_params.get("q"):
        await _spend(ctx, user, "queries", ctx.settings.rate_limit_queries_per_minute)


COMMAND_LIMIT = Depends(limit_commands)
"""Router-level dependency of the write side: every command counts."""
QUERY_LIMIT = Depends(limit_queries)
"""Dependency of the expensive reads (chat sessions)."""
SEARCH_LIMIT = Depends(limit_searches)
"""Dependency of the lists whose `q` makes them expensive (trips, memories)."""
