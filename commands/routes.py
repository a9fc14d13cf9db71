"""Write routes of trips and everything under them, and of the caller's profile.

Thin: parse (path, body, `If-Match`, `Idempotency-Key`), build the command, `execute` it, render.
"""

from __future__ import annotations

import uuid
from functools import partial

from fastapi import APIRouter, Request
from starlette.responses import Response

from commands import activities, trips
from commands.http import (
    IDEMPOTENCY_KEY,
    IF_MATCH,
    ITINERARY_ID,
    TRIP_ID,
    IdempotencyKey,
    IfMatch,
    UnitOfWorkDep,
    committed,
    created,
    execute,
    no_content,
    record_response,
    trip_response,
    unit_of_work,
)
from commands.idempotency import IdempotentRequest, idempotent_request
from commands.messages import (
    AddActivity,
    AddItinerary,
    CreateTrip,
    DeleteTrip,
    InviteCollaborator,
    RemoveActivity,
    RemoveItinerary,
    ShareTrip,
    UnshareTrip,
    UpdateActivity,
    UpdateItinerary,
    UpdateProfile,
    UpdateTrip,
)
from commands.payloads import (
    ActivityPatch,
    CollaboratorGrant,
    CollaboratorInvite,
    ItineraryPatch,
    NewActivity,
    NewItinerary,
    NewTrip,
    ProfilePatch,
    TripPatch,
)
from commands.records import ActivityRecord, CollaboratorRecord, ItineraryRecord, ProfileRecord, TripRecord
from commands.unit import Caps
from core.deps import ContextDep, get_caller, path_uuid
from core.etag import parse_if_match
from core.models import Command
from core.openapi import BODY_ERRORS, problem_responses

router = APIRouter(tags=["trips"])
profile_router = APIRouter(tags=["profile"])

ITINERARY = "/trips/{trip_id}/itineraries/{itinerary_id}"
ACTIVITY = ITINERARY + "/activities/{activity_id}"
COLLABORATOR = "/trips/{trip_id}/collaborators/{user_id}"


def _idempotent(request: Request, key: str | None, body: Command) -> IdempotentRequest | None:
    if key is None:  # most requests: no body dump, no URL built
        return None
    return idempotent_request(key, request.method, request.url.path, body.model_dump(mode="json", exclude_unset=True))


@router.post(
    "/trips",
    status_code=201,
    response_model=TripRecord,
    responses=problem_responses(401, 403, 409, *BODY_ERRORS),
    openapi_extra={"parameters": [IDEMPOTENCY_KEY]},
)
async def create_trip(body: NewTrip, request: Request) -> Response:
    """Create a trip owned by the caller (201 with `Location`, `ETag` and `X-Consistency-Token`)."""
    user, ctx = await get_caller(request)  # the hot commands declare only their body: see `core.deps.path_uuid`
    command, render = CreateTrip(trip=body), partial(trip_response, status=201)
    idempotent = _idempotent(request, request.headers.get("idempotency-key"), body)
    if idempotent is None:  # one statement: one call, one round trip, no transaction to open
        written = await trips.create_trip_as(command, ctx.db, user)
        return committed(ctx, written, render(written))
    async with unit_of_work(ctx, user) as uow:
        return await execute(ctx, uow, command, render, idempotent=idempotent)


@router.patch(
    "/trips/{trip_id}",
    response_model=TripRecord,
    responses=problem_responses(401, 403, 404, 412, *BODY_ERRORS),
    openapi_extra={"parameters": [TRIP_ID, IF_MATCH]},
)
async def update_trip(body: TripPatch, request: Request) -> Response:
    """Change some fields of a trip (owner, `edit`, `admin`); returns the trip with its new `version`."""
    user, ctx = await get_caller(request)
    trip_id, if_match = path_uuid(request, "trip_id"), request.headers.get("if-match")
    command = UpdateTrip(trip_id=trip_id, patch=body, expected_version=parse_if_match(if_match))
    written = await trips.update_trip_as(command, ctx.db, user)  # the happy path in one call
    if written is not None:
        return committed(ctx, written, trip_response(written))
    async with unit_of_work(ctx, user) as uow:  # refused: the full path answers with the exact error
        return await execute(ctx, uow, command, trip_response)


@router.delete(
    "/trips/{trip_id}", status_code=204, response_class=Response, responses=problem_responses(401, 403, 404, 412, 422)
)
async def delete_trip(trip_id: uuid.UUID, uow: UnitOfWorkDep, ctx: ContextDep, if_match: IfMatch = None) -> Response:
    """Delete a trip with everything under it (owner only)."""
    command = DeleteTrip(trip_id=trip_id, expected_version=parse_if_match(if_match))
    return await execute(ctx, uow, command, no_content)


@router.post(
    "/trips/{trip_id}/itineraries",
    status_code=201,
    response_model=ItineraryRecord,
    responses=problem_responses(401, 403, 404, 409, 412, *BODY_ERRORS),
)
async def add_itinerary(
    trip_id: uuid.UUID,
    body: NewItinerary,
    request: Request,
    uow: UnitOfWorkDep,
    ctx: ContextDep,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Add an itinerary to a trip (owner, `edit`, `admin`); its `day` must lie within the trip's dates."""
    command = AddItinerary(trip_id=trip_id, itinerary=body, expected_version=parse_if_match(if_match))
    return await execute(ctx, uow, command, created, idempotent=_idempotent(request, idempotency_key, body))


@router.patch(ITINERARY, response_model=ItineraryRecord, responses=problem_responses(401, 403, 404, 412, *BODY_ERRORS))
async def update_itinerary(
    trip_id: uuid.UUID,
    itinerary_id: uuid.UUID,
    body: ItineraryPatch,
    uow: UnitOfWorkDep,
    ctx: ContextDep,
    if_match: IfMatch = None,
) -> Response:
    """Change some fields of an itinerary (owner, `edit`, `admin`)."""
    command = UpdateItinerary(
        trip_id=trip_id, itinerary_id=itinerary_id, patch=body, expected_version=parse_if_match(if_match)
    )
    return await execute(ctx, uow, command, record_response)


@router.delete(
    ITINERARY, status_code=204, response_class=Response, responses=problem_responses(401, 403, 404, 412, 422)
)
async def remove_itinerary(
    trip_id: uuid.UUID, itinerary_id: uuid.UUID, uow: UnitOfWorkDep, ctx: ContextDep, if_match: IfMatch = None
) -> Response:
    """Delete an itinerary and its activities (owner, `edit`, `admin`)."""
    command = RemoveItinerary(trip_id=trip_id, itinerary_id=itinerary_id, expected_version=parse_if_match(if_match))
    return await execute(ctx, uow, command, no_content)


@router.post(
    ITINERARY + "/activities",
    status_code=201,
    response_model=ActivityRecord,
    responses=problem_responses(401, 403, 404, 409, 412, *BODY_ERRORS),
    openapi_extra={"parameters": [TRIP_ID, ITINERARY_ID, IF_MATCH, IDEMPOTENCY_KEY]},
)
async def add_activity(body: NewActivity, request: Request) -> Response:
    """Add an activity to an itinerary (owner, `edit`, `admin`); `currency` defaults to the trip's."""
    user, ctx = await get_caller(request)
    trip_id, itinerary_id = path_uuid(request, "trip_id"), path_uuid(request, "itinerary_id")
    expected_version = parse_if_match(request.headers.get("if-match"))
    command = AddActivity(trip_id=trip_id, itinerary_id=itinerary_id, activity=body, expected_version=expected_version)
    idempotent = _idempotent(request, request.headers.get("idempotency-key"), body)
    if idempotent is None:  # the happy path in one call; a refusal runs the full path for its exact error
        written = await activities.add_activity_as(command, ctx.db, user, Caps.of(ctx.settings))
        if written is not None:
            return committed(ctx, written, created(written))
    async with unit_of_work(ctx, user) as uow:
        return await execute(ctx, uow, command, created, idempotent=idempotent)


@router.patch(ACTIVITY, response_model=ActivityRecord, responses=problem_responses(401, 403, 404, 412, *BODY_ERRORS))
async def update_activity(
    trip_id: uuid.UUID,
    itinerary_id: uuid.UUID,
    activity_id: uuid.UUID,
    body: ActivityPatch,
    uow: UnitOfWorkDep,
    ctx: ContextDep,
    if_match: IfMatch = None,
) -> Response:
    """Change some fields of an activity (owner, `edit`, `admin`)."""
    command = UpdateActivity(
        trip_id=trip_id,
        itinerary_id=itinerary_id,
        activity_id=activity_id,
        patch=body,
        expected_version=parse_if_match(if_match),
    )
    return await execute(ctx, uow, command, record_response)


@router.delete(ACTIVITY, status_code=204, response_class=Response, responses=problem_responses(401, 403, 404, 412, 422))
async def remove_activity(
    trip_id: uuid.UUID,
    itinerary_id: uuid.UUID,
    activity_id: uuid.UUID,
    uow: UnitOfWorkDep,
    ctx: ContextDep,
    if_match: IfMatch = None,
) -> Response:
    """Delete an activity (owner, `edit`, `admin`)."""
    command = RemoveActivity(
        trip_id=trip_id, itinerary_id=itinerary_id, activity_id=activity_id, expected_version=parse_if_match(if_match)
    )
    return await execute(ctx, uow, command, no_content)


@router.put(
    COLLABORATOR, response_model=CollaboratorRecord, responses=problem_responses(401, 403, 404, 412, *BODY_ERRORS)
)
async def share_trip(
    trip_id: uuid.UUID,
    user_id: uuid.UUID,
    body: CollaboratorGrant,
    uow: UnitOfWorkDep,
    ctx: ContextDep,
    if_match: IfMatch = None,
) -> Response:
    """Share a trip with a user or change their permission (owner, `admin`); the user must have signed in once."""
    command = ShareTrip(
        trip_id=trip_id, user_id=user_id, permission=body.permission, expected_version=parse_if_match(if_match)
    )
    return await execute(ctx, uow, command, record_response)


@router.post(
    "/trips/{trip_id}/collaborators",
    response_model=CollaboratorRecord,
    responses=problem_responses(401, 403, 404, 412, *BODY_ERRORS),
)
async def invite_collaborator(
    trip_id: uuid.UUID, body: CollaboratorInvite, uow: UnitOfWorkDep, ctx: ContextDep, if_match: IfMatch = None
) -> Response:
    """Share a trip with the user who signed in with this email (owner, `admin`); 404 if nobody has."""
    command = InviteCollaborator(
        trip_id=trip_id, email=body.email, permission=body.permission, expected_version=parse_if_match(if_match)
    )
    return await execute(ctx, uow, command, record_response)


@router.delete(
    COLLABORATOR, status_code=204, response_class=Response, responses=problem_responses(401, 403, 404, 412, 422)
)
async def unshare_trip(
    trip_id: uuid.UUID, user_id: uuid.UUID, uow: UnitOfWorkDep, ctx: ContextDep, if_match: IfMatch = None
) -> Response:
    """Stop sharing a trip with a user (owner, `admin`), or leave a trip shared with you."""
    command = UnshareTrip(trip_id=trip_id, user_id=user_id, expected_version=parse_if_match(if_match))
    return await execute(ctx, uow, command, no_content)


@profile_router.patch("/users/me", response_model=ProfileRecord, responses=problem_responses(401, 403, *BODY_ERRORS))
async def update_profile(body: ProfilePatch, uow: UnitOfWorkDep, ctx: ContextDep) -> Response:
    """Change your display name and/or preferences (partial); shown in every trip you take part in."""
    return await execute(ctx, uow, UpdateProfile(patch=body), record_response)
