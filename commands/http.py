"""The HTTP side of commands: header parameters, the run-commit-nudge-render sequence, responses.

`execute` is what every write route does after parsing: (idempotency check) → handler →
render → (store for idempotency) → commit → answer, and nudge the projector in the background. Every answer carries
`X-Consistency-Token` with the command transaction's id, so a query can wait for this write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Header
from pydantic import BaseModel
from starlette.responses import Response

from commands import idempotency
from commands.handlers import handle
from commands.idempotency import IdempotentRequest
from commands.records import TripRecord
from commands.unit import Caps, UnitOfWork, Written
from core.auth import Principal
from core.consistency import HEADER as CONSISTENCY_HEADER
from core.consistency import make_token
from core.deps import AppContext, ContextDep, CurrentUser, SessionDep
from core.etag import command_etag
from core.models import Command
from core.openapi import header_parameter, path_parameter

JSON = "application/json"

IF_MATCH_DOC = "An ETag of this trip (from a GET or a command); 412 if the trip's version has moved on."
IDEMPOTENCY_KEY_DOC = "Makes the POST safe to retry: the same key and body return the first response (1–255 chars)."
IfMatch = Annotated[str | None, Header(alias="If-Match", description=IF_MATCH_DOC)]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255, description=IDEMPOTENCY_KEY_DOC)
]
IF_MATCH = header_parameter("If-Match", IF_MATCH_DOC)
IDEMPOTENCY_KEY = header_parameter("Idempotency-Key", IDEMPOTENCY_KEY_DOC, minLength=1, maxLength=255)
"""The two headers as OpenAPI parameters, for the hot routes that read them themselves (`commands.routes`)."""
TRIP_ID = path_parameter("trip_id", "Trip Id")
ITINERARY_ID = path_parameter("itinerary_id", "Itinerary Id")


async def get_unit_of_work(session: SessionDep, user: CurrentUser, ctx: ContextDep) -> UnitOfWork:
    """The caller's unit of work (rolled back unless the route commits), with the configured caps."""
    assert user.user_id is not None
    return UnitOfWork(session=session, user_id=user.user_id, caps=Caps.of(ctx.settings))


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]


@asynccontextmanager
async def unit_of_work(ctx: AppContext, user: Principal) -> AsyncIterator[UnitOfWork]:
    """`UnitOfWorkDep` for a route that opens one only on some paths (rolled back unless committed)."""
    assert user.user_id is not None
    async with ctx.db.request_session(user) as session:
        yield UnitOfWork(session=session, user_id=user.user_id, caps=Caps.of(ctx.settings))


def record_response(written: Written[Any], *, status: int = 200) -> Response:
    """A JSON response of the written record, with the consistency token."""
    record = written.record
    assert isinstance(record, BaseModel)
    headers = {CONSISTENCY_HEADER: make_token(written.xid)}
    return Response(record.model_dump_json(), status_code=status, headers=headers, media_type=JSON)


def created(written: Written[Any]) -> Response:
    """201 with the written record and the consistency token."""
    return record_response(written, status=201)


def trip_response(written: Written[TripRecord], *, status: int = 200) -> Response:
    """A trip record with its `ETag` (`"<version>"`); a created trip also gets 201 and `Location`."""
    assert written.record is not None
    response = record_response(written, status=status)
    response.headers["ETag"] = command_etag(written.record.version)
    if status == 201:
        response.headers["Location"] = f"/api/trips/{written.record.id}"
    return response


def no_content(written: Written[Any]) -> Response:
    """204 with the consistency token."""
    return Response(status_code=204, headers={CONSISTENCY_HEADER: make_token(written.xid)})


Render = Callable[[Written[Any]], Response]


async def execute(
    ctx: AppContext,
    uow: UnitOfWork,
    command: Command,
    render: Render,
    *,
    idempotent: IdempotentRequest | None = None,
) -> Response:
    """Run one command in the caller's unit of work and answer it.

    Args:
        ctx: The app context (for the nudger).
        uow: The caller's unit of work.
        command: The command to handle.
        render: Builds the response from the handler's result.
        idempotent: The `Idempotency-Key` of a POST, if one was sent.

    Returns:
        The response (a stored one when an idempotent request is retried).
    """
    if idempotent is not None:
        replay = await idempotency.begin(uow, idempotent)
        if replay is not None:
            return replay
    written = await handle(command, uow)
    response = render(written)
    if idempotent is not None:
        await idempotency.save(uow, idempotent, response)
    await uow.session.commit()
    return committed(ctx, written, response)


def committed(ctx: AppContext, written: Written[Any], response: Response) -> Response:
    """After the commit: nudge the projector (in the background, when something changed), answer."""
    if written.changed:
        ctx.nudger.nudge_soon()  # Redis adds nothing to the response's latency
    return response
