"""The read anchors WITHOUT auth and RLS (a0, b0, c0, f0), as bench-only routes of the same app.

What a user who skips auth and RLS would run: no token, the login role, no claims, a plain
connection (SQLAlchemy's own BEGIN and ROLLBACK around the statements), acting for the user the
benchmark sets in `NoAuth.user_id`. (a0), (b0), (c0) run the same code as (a), (b), (c) of
`bench/baselines.py`; (f0) is the floor of any endpoint: constant bytes of (d)'s size, no token, no
database.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.baselines import JSON, Floor, Limit, eager_list, eager_one, jsonagg_list, jsonagg_one, lazy_list, lazy_one
from core.deps import ContextDep
from core.errors import not_found

router = APIRouter(prefix="/bench", include_in_schema=False)


class NoAuth:
    """The user the no-auth anchors act for (set by the benchmark)."""

    user_id = uuid.UUID(int=0)


async def _plain(ctx: ContextDep, build: Callable[[AsyncConnection], Awaitable[bytes | None]]) -> Response:
    """Run an anchor's reads as the login role on a plain connection, no token, no claims."""
    async with ctx.db.read_engine.connect() as conn:
        body = await build(conn)
    if body is None:
        raise not_found("trip")
    return Response(body, media_type=JSON)


@router.get("/a0/trips")
async def a0_list(ctx: ContextDep, limit: Limit = 20) -> Response:
    """(a0) lazy ORM list, no auth, no RLS."""
    return await _plain(ctx, lambda conn: lazy_list(conn, NoAuth.user_id, limit))


@router.get("/a0/trips/{trip_id}")
async def a0_one(ctx: ContextDep, trip_id: uuid.UUID) -> Response:
    """(a0) lazy ORM single trip, no auth, no RLS."""
    return await _plain(ctx, lambda conn: lazy_one(conn, trip_id))


@router.get("/b0/trips")
async def b0_list(ctx: ContextDep, limit: Limit = 20) -> Response:
    """(b0) eager ORM list, no auth, no RLS."""
    return await _plain(ctx, lambda conn: eager_list(conn, NoAuth.user_id, limit))


@router.get("/b0/trips/{trip_id}")
async def b0_one(ctx: ContextDep, trip_id: uuid.UUID) -> Response:
    """(b0) eager ORM single trip, no auth, no RLS."""
    return await _plain(ctx, lambda conn: eager_one(conn, trip_id))


@router.get("/c0/trips")
async def c0_list(ctx: ContextDep, limit: Limit = 20) -> Response:
    """(c0) JSON aggregation list, no auth, no RLS."""
    return await _plain(ctx, lambda conn: jsonagg_list(conn, NoAuth.user_id, limit))


@router.get("/c0/trips/{trip_id}")
async def c0_one(ctx: ContextDep, trip_id: uuid.UUID) -> Response:
    """(c0) JSON aggregation single trip, no auth, no RLS."""
    return await _plain(ctx, lambda conn: jsonagg_one(conn, trip_id))


@router.get("/f0/trips")
async def f0_list() -> Response:
    """(f0) the list's constant body: no auth, no database (the floor of any endpoint)."""
    return Response(Floor.list_body, media_type=JSON)


@router.get("/f0/trips/{trip_id}")
async def f0_one(trip_id: uuid.UUID) -> Response:  # noqa: ARG001  # pylint: disable=unused-argument  # same path as (d)
    """(f0) one trip's constant body: no auth, no database."""
    return Response(Floor.one_body, media_type=JSON)
