"""Trip queries: the list and one trip, each ONE statement over the read model, documents sent as stored.

`trip_views.doc` already holds the TripView as UTF-8 JSON bytes, so a response is those bytes (one
trip) or those bytes joined into the page envelope (the list). No ORM objects, no validation, no
re-serialisation on the hot path; the pydantic models in `queries.views` only describe the
response in OpenAPI.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Response
from sqlalchemy import ARRAY, Select, Text, any_, bindparam, case, column, func, null, select, table, tuple_
from sqlalchemy.dialects.postgresql import BYTEA, UUID
from sqlalchemy.types import DateTime

from core.deps import ContextDep, CurrentUser
from core.errors import not_found
from core.models import SafeStr
from core.openapi import problem_responses
from core.pagination import decode_cursor, encode_cursor, invalid_cursor
from queries.plumbing import consistency_headers, if_none_match, read_transaction
from queries.views import (
    FRESHNESS_HEADER_DOC,
    ConsistencyToken,
    TripPage,
    TripRole,
    TripStatus,
    TripView,
)

router = APIRouter(tags=["trips"])

trip_views = table(
    "trip_views",
    column("trip_id", UUID(as_uuid=True)),
    column("member_ids", ARRAY(UUID(as_uuid=True))),
    column("search_text", Text),
    column("etag", Text),
    column("doc", BYTEA),
)
trip_view_members = table(
    "trip_view_members",
    column("user_id", UUID(as_uuid=True)),
    column("trip_id", UUID(as_uuid=True)),
    column("role", Text),
    column("status", Text),
    column("updated_at", DateTime(timezone=True)),
)

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Which optional predicates a list statement carries (each combination is one cached statement)."""

    status: bool = False
    q: bool = False
    role: bool = False
    after: bool = False
    user_filter: bool = True


@lru_cache(maxsize=64)
def list_statement(flags: ListFilter) -> Select[datetime, uuid.UUID, bytes]:
    """The list query: the caller's member rows joined to their documents, keyset-paged.

    Walks `trip_view_members (user_id, updated_at DESC, trip_id DESC)` from the cursor and stops
    after `:limit` rows (the caller asks for one more than the page to learn whether a next page
    exists). `q` is a plain substring of the lower-cased `search_text` (`strpos`, so `%` and `_`
    are not wildcards). RLS on both tables limits the rows to the caller even without
    `user_filter` (the tests run it that way).

    Args:
        flags: The predicates to include.

    Returns:
        The statement; parameters `user_id`, `status`, `q`, `role`, `after_ts`, `after_id`, `limit`.
    """
    m, v = trip_view_members.c, trip_views.c
    stmt = select(m.updated_at, m.trip_id, v.doc).select_from(
        trip_view_members.join(trip_views, trip_views.c.trip_id == m.trip_id)
    )
    if flags.user_filter:
        stmt = stmt.where(m.user_id == bindparam("user_id", type_=UUID(as_uuid=True)))
    if flags.status:
        stmt = stmt.where(m.status == bindparam("status", type_=Text))
    if flags.role:
        stmt = stmt.where(m.role == bindparam("role", type_=Text))
    if flags.q:
        stmt = stmt.where(func.strpos(v.search_text, func.lower(bindparam("q", type_=Text))) > 0)
    if flags.after:
        stmt = stmt.where(
            tuple_(m.updated_at, m.trip_id)
            < tuple_(
                bindparam("after_ts", type_=DateTime(timezone=True)), bindparam("after_id", type_=UUID(as_uuid=True))
            )
        )
    return stmt.order_by(m.updated_at.desc(), m.trip_id.desc()).limit(bindparam("limit"))


GET_STATEMENT = (
    select(
        trip_views.c.etag,
        case(
            (trip_views.c.etag == any_(bindparam("if_none_match", type_=ARRAY(Text))), null()),
            else_=trip_views.c.doc,
        ),
    )
    .where(trip_views.c.trip_id == bindparam("trip_id", type_=UUID(as_uuid=True)))
    .where(bindparam("user_id", type_=UUID(as_uuid=True)) == any_(trip_views.c.member_ids))
)
"""One trip's ETag, and its document unless the client's `If-None-Match` already names that ETag."""


def _after(cursor: str) -> tuple[datetime, uuid.UUID]:
    ts, trip_id = decode_cursor(cursor, 2)
    try:
        after_ts = datetime.fromisoformat(str(ts))
        after_id = uuid.UUID(str(trip_id))
    except ValueError as exc:
        raise invalid_cursor() from exc
    if after_ts.tzinfo is None:
        raise invalid_cursor()
    return after_ts, after_id


def page_body(docs: list[bytes], next_cursor: str | None) -> bytes:
    """The list envelope around stored documents, without parsing them."""
    tail = b'],"next_cursor":' + (orjson.dumps(next_cursor) if next_cursor else b"null") + b"}"
    return b'{"items":[' + b",".join(docs) + tail


@router.get(
    "/trips",
    response_model=TripPage,
    summary="List trips",
    responses={200: {"headers": FRESHNESS_HEADER_DOC}, **problem_responses(422)},
)
async def list_trips(
    ctx: ContextDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")] = None,
    status: Annotated[TripStatus | None, Query(description="Only trips in this status")] = None,
    q: Annotated[
        SafeStr | None, Query(max_length=200, description="Substring of title, destination or description")
    ] = None,
    role: Annotated[
        TripRole | None, Query(description="`owner`: trips you own; `shared`: trips shared with you")
    ] = None,
    x_consistency_token: ConsistencyToken = None,
) -> Response:
    """Trips you own and trips shared with you, newest `updated_at` first."""
    params: dict[str, object] = {"user_id": user.user_id, "limit": limit + 1}
    if status is not None:
        params["status"] = status
    if q:
        params["q"] = q
    if role is not None:
        params["role"] = role
    if cursor is not None:
        params["after_ts"], params["after_id"] = _after(cursor)
    flags = ListFilter(status=status is not None, q=bool(q), role=role is not None, after=cursor is not None)
    headers = await consistency_headers(ctx, x_consistency_token)
    async with read_transaction(ctx.db.read_engine, user) as conn:
        rows = (await conn.execute(list_statement(flags), params)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][0].isoformat(), str(rows[-1][1]))
    return Response(page_body([row[2] for row in rows], next_cursor), media_type=JSON, headers=headers)


@router.get(
    "/trips/{trip_id}",
    response_model=TripView,
    summary="Get a trip",
    responses={
        200: {
            "headers": {
                "ETag": {"description": "The document's entity tag", "schema": {"type": "string"}},
                **FRESHNESS_HEADER_DOC,
            }
        },
        304: {"description": "Not modified (`If-None-Match` names the current ETag)"},
        **problem_responses(404, 422),
    },
)
async def get_trip(
    ctx: ContextDep,
    user: CurrentUser,
    trip_id: uuid.UUID,
    if_none_match_header: Annotated[
        str | None, Header(alias="If-None-Match", description="ETags you hold: 304 if one is current")
    ] = None,
    x_consistency_token: ConsistencyToken = None,
) -> Response:
    """One trip as a TripView, with its `ETag`; `If-None-Match` with that ETag answers 304."""
    headers = await consistency_headers(ctx, x_consistency_token)
    tags = if_none_match(if_none_match_header)
    params = {"trip_id": trip_id, "user_id": user.user_id, "if_none_match": tags or []}
    async with read_transaction(ctx.db.read_engine, user) as conn:
        row = (await conn.execute(GET_STATEMENT, params)).first()
    if row is None:
        error = not_found("trip")
        error.headers.update(headers)  # a 404 under a stale read says so
        raise error
    etag, doc = row
    if doc is None or (tags is not None and "*" in tags):
        return Response(status_code=304, headers={"ETag": etag, **headers})
    return Response(doc, media_type=JSON, headers={"ETag": etag, **headers})
