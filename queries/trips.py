"""Trip queries: the list and one trip, each ONE statement over the read model, documents sent as stored.

`trip_views.doc` already holds the TripView as UTF-8 JSON bytes, so a response is those bytes (one
trip) or those bytes joined into the page envelope (the list). No ORM objects, no validation, no
re-serialisation on the hot path; the pydantic models in `queries.views` only describe the
response in OpenAPI.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from core.deps import SEARCH_LIMIT, AppContext, ContextDep, CurrentUser, get_user, path_uuid
from core.errors import not_found
from core.models import SafeStr
from core.openapi import header_parameter, path_parameter, problem_responses
from core.pagination import decode_cursor, encode_cursor, invalid_cursor
from queries.documents import DocumentCache, known
from queries.plumbing import call_as, consistency_headers, if_none_match
from queries.views import (
    CONSISTENCY_TOKEN,
    CONSISTENCY_TOKEN_DOC,
    CONSISTENCY_TOKEN_PATTERN,
    FRESHNESS_HEADER_DOC,
    ConsistencyToken,
    TripPage,
    TripRole,
    TripStatus,
    TripView,
)

router = APIRouter(tags=["trips"])

TRIP_PAGE = (
    "SELECT updated_at, trip_id, etag, doc FROM tripsage.trip_view_page($1, $2, $3, $4, $5,"
    " coalesce($6, 'infinity'::timestamptz), coalesce($7, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid), $8)"
)
"""The list query (`tripsage.trip_view_page`, migrations 0007 and 0014): the caller's member rows
joined to their documents, walking `trip_view_members (user_id, updated_at DESC, trip_id DESC)` from
the cursor; at most `limit` rows (the caller asks for one more than the page to learn whether a
next page exists). Parameters: claims (the user is their `sub`), limit, status, role, q, after_ts,
after_id (NULL: none; the bounds that stand for "no cursor" are filled in here, in the statement,
so that the function's row comparison stays an index condition), and the documents the process
holds (`queries.documents.known`: their `doc` comes back NULL while current)."""

TRIP_GET = "SELECT etag, doc FROM tripsage.trip_view_get($1, $2, $3)"
"""One trip (`tripsage.trip_view_get`, migration 0007): its ETag, and its document unless one of
the given ETags already names it (the client's `If-None-Match`, and the one the process holds).
Parameters: claims (the user is their `sub`), trip_id, ETags."""

JSON = "application/json"


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
    """The list envelope around stored documents, without parsing them.

    One `join` over every piece: the page (~700 KiB for 50 trips) is copied once. Joining the
    documents first and then adding the envelope copied it three times, which py-spy showed as a
    quarter of the list endpoint's time under load.
    """
    parts = [b'{"items":[']
    for doc in docs:
        parts += (doc, b",")
    if docs:
        parts.pop()
    parts += (b'],"next_cursor":', orjson.dumps(next_cursor) if next_cursor else b"null", b"}")
    return b"".join(parts)


@router.get(
    "/trips",
    response_model=TripPage,
    summary="List trips",
    responses={200: {"headers": FRESHNESS_HEADER_DOC}, **problem_responses(422, 429)},
    dependencies=[SEARCH_LIMIT],
)
async def list_trips(
    request: Request,
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
    """Trips you own and trips shared with you, newest `updated_at` first (`q` spends the query budget)."""
    after_ts, after_id = _after(cursor) if cursor is not None else (None, None)
    headers = await consistency_headers(ctx, x_consistency_token)
    documents: DocumentCache = request.app.state.documents
    page_key = (user.user_id, limit, status, role, q, after_ts, after_id)
    held = documents.held(documents.page(page_key))
    rows = await call_as(
        ctx.db.read_engine,
        user,
        TRIP_PAGE,
        limit + 1,
        status,
        role,
        q or None,
        after_ts,
        after_id,
        known(held),
        timeouts=ctx.db.timeouts,
    )
    documents.remember_page(page_key, tuple(row[1] for row in rows))
    # Every row's document is kept, the one after the page too (fetched to learn whether a next
    # page exists): the next call names it as held, so the database does not send it again.
    docs = documents.fill(((row[1], row[2], row[3]) for row in rows), held)[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(rows[limit - 1][0].isoformat(), str(rows[limit - 1][1]))
    return Response(page_body(docs, next_cursor), media_type=JSON, headers=headers)


IF_NONE_MATCH_DOC = "ETags you hold: 304 if one is current"
TRIP_PARAMETERS = [
    path_parameter("trip_id", "Trip Id"),
    header_parameter("If-None-Match", IF_NONE_MATCH_DOC),
    header_parameter(CONSISTENCY_TOKEN, CONSISTENCY_TOKEN_DOC, pattern=CONSISTENCY_TOKEN_PATTERN),
]
"""The single-trip route's parameters as OpenAPI documents them: the route reads them itself (see `get_trip`)."""
TOKEN_SHAPE = re.compile(CONSISTENCY_TOKEN_PATTERN)


def consistency_token(request: Request) -> str | None:
    """`X-Consistency-Token`, validated as the `ConsistencyToken` header parameter would be (422 otherwise)."""
    token = request.headers.get(CONSISTENCY_TOKEN)
    if token is not None and not TOKEN_SHAPE.match(token):
        msg = f"String should match pattern '{CONSISTENCY_TOKEN_PATTERN}'"
        raise RequestValidationError(
            [{"type": "string_pattern_mismatch", "loc": ("header", CONSISTENCY_TOKEN), "msg": msg}]
        )
    return token


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
    openapi_extra={"parameters": TRIP_PARAMETERS},
)
async def get_trip(request: Request) -> Response:
    """One trip as a TripView, with its `ETag`; `If-None-Match` with that ETag answers 304.

    The hottest endpoint declares no parameter and no dependency: it reads the caller, its path id,
    its two optional headers and the app context itself, with the same answers (401/403, 422) as
    FastAPI's resolution, which cost a measurable share of its app CPU (`bench/profiles/README.md`).
    OpenAPI documents the parameters as before (`TRIP_PARAMETERS`).
    """
    user = await get_user(request)
    trip_id = path_uuid(request, "trip_id")
    ctx: AppContext = request.app.state.ctx
    headers = await consistency_headers(ctx, consistency_token(request))
    tags = if_none_match(request.headers.get("if-none-match"))
    documents: DocumentCache = request.app.state.documents
    held = documents.get(trip_id)
    sent = [*(tags or ()), held[0]] if held is not None else tags or []
    found = await call_as(ctx.db.read_engine, user, TRIP_GET, trip_id, sent, timeouts=ctx.db.timeouts)
    if not found:
        error = not_found("trip")
        error.headers.update(headers)  # a 404 under a stale read says so
        raise error
    etag, doc = found[0]
    if tags is not None and ("*" in tags or etag in tags):
        return Response(status_code=304, headers={"ETag": etag, **headers})
    # NULL here only for the held ETag the call named (the client's own answered 304 above)
    (body,) = documents.fill([(trip_id, etag, doc)], {trip_id: held} if held is not None else {})
    return Response(body, media_type=JSON, headers={"ETag": etag, **headers})
