"""`GET /api/events`: the caller's trips as server-sent events, resumable with `Last-Event-ID`.

The stream is registered with the hub first, then what the client missed is replayed (one call of
`tripsage.live_replay` as the caller, on the primary: a replica may not have replayed the
positions the client saw yet), then live frames follow, skipping any position already replayed. A
stream ends when its token expires, when the app shuts down, or when the client goes away.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request

from core.auth import Principal
from core.deps import ContextDep, CurrentUser
from core.openapi import problem_responses
from queries.live.frames import Frame, Subscriber, frame, removed_frame, reset_frame
from queries.live.hub import LiveHub
from queries.live.stream import EVENT_STREAM, EventStreamResponse
from queries.plumbing import call_as

router = APIRouter(tags=["live"])

REPLAY = "SELECT kind, position, trip_id, doc FROM tripsage.live_replay($1, $2, $3)"
"""What the caller missed after a position (`tripsage.live_replay`, migration 0009): the current
document of each trip changed since that it may see, its removals, or one `reset` row when the
position is older than the retention. Parameters: claims, position, trip id (NULL: all)."""

STREAM_DOC = {
    "description": 'Server-sent events: `trip` (a TripView), `trip_removed` (`{"id"}`), `reset`; '
    "each with an `id:` to send back as `Last-Event-ID`; a comment line at least every 15 s",
    "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
}

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        pattern=r"^[0-9]{1,18}$",
        description="The `id:` of the last event received: replay what was missed since",
    ),
]


def hub_of(request: Request) -> LiveHub:
    """The app's live-update hub (opened in the lifespan)."""
    hub: LiveHub = request.app.state.live
    return hub


async def replay(ctx: ContextDep, user: Principal, sub: Subscriber, after: int) -> list[Frame]:
    """The frames a client resuming after position `after` missed (one statement, as the caller)."""
    rows = await call_as(ctx.db.engine, user, REPLAY, after, sub.trip_id, timeouts=ctx.db.timeouts)
    frames: list[Frame] = []
    for kind, position, trip_id, doc in rows:
        if kind == "reset":
            return [reset_frame(sub.last_sent)]
        frames.append(removed_frame(position, trip_id) if doc is None else frame(kind, position, trip_id, bytes(doc)))
    return frames


@router.get(
    "/events",
    summary="Live trip updates",
    response_class=EventStreamResponse,
    status_code=200,  # FastAPI reads the default status from the response class's __init__, which has none
    responses={200: STREAM_DOC, **problem_responses(422, 429, 503)},
)
async def events(
    request: Request,
    ctx: ContextDep,
    user: CurrentUser,
    trip_id: Annotated[uuid.UUID | None, Query(description="Only this trip")] = None,
    last_event_id: LastEventId = None,
) -> EventStreamResponse:
    """Server-sent events for every trip you may see: `trip`, `trip_removed`, `reset` (see README)."""
    assert user.user_id is not None
    hub = hub_of(request)
    await hub.start()
    sub = hub.subscribe(user.user_id, trip_id, user.expires_at)
    try:
        opening = [] if last_event_id is None else await replay(ctx, user, sub, int(last_event_id))
    except BaseException:
        hub.unsubscribe(sub)
        raise
    if opening and opening[0].event != "reset":
        sub.last_sent = max(sub.last_sent, opening[-1].position)
    return EventStreamResponse(hub, sub, opening)
