"""A/B in one process: the three hot command routes as they are against their former signatures.

Former: the caller, the app context, the path ids and the `If-Match` / `Idempotency-Key` headers
resolved by FastAPI as parameters, and the router's rate-limit dependency built on two more
dependencies. Now: each route declares only its body; the rate-limit dependency authenticates the
caller itself, and the route reads the rest itself (`core.deps.get_caller`, `core.deps.path_uuid`).
Both are mounted first in the write bench's app, on the `tripsage_bench_write` database, and
measured interleaved: 6 rounds of 600 sequential in-process requests per command and variant;
prints app CPU µs per request and req/s (medians and every round), the projection nudge left out
of both. Never a test.

    uv run python -m bench.command_ab
"""

from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from bench import write_bench
from bench.harness import asgi_request, print_rounds
from commands import activities, routes, trips
from commands.http import IdempotencyKey, IfMatch, committed, created, trip_response
from commands.messages import AddActivity, CreateTrip, UpdateTrip
from commands.payloads import NewActivity, NewTrip, TripPatch
from commands.unit import Caps
from core.deps import COMMAND_LIMIT, ContextDep, CurrentUser, _spend
from core.etag import parse_if_match

ROUNDS, REQUESTS = 6, 600


async def former_limit(ctx: ContextDep, user: CurrentUser) -> None:
    """The rate-limit dependency before: built on the context and caller dependencies."""
    await _spend(ctx, user, "commands", ctx.settings.rate_limit_commands_per_minute)


former = APIRouter(prefix="/ab/former", dependencies=[Depends(former_limit)])
now = APIRouter(prefix="/ab/now", dependencies=[COMMAND_LIMIT])


@former.post("/trips", status_code=201)
async def former_create(
    body: NewTrip, request: Request, user: CurrentUser, ctx: ContextDep, idempotency_key: IdempotencyKey = None
) -> Response:
    """`POST /api/trips` before (the happy path: no `Idempotency-Key` in this bench)."""
    assert routes._idempotent(request, idempotency_key, body) is None
    written = await trips.create_trip_as(CreateTrip(trip=body), ctx.db, user)
    return committed(ctx, written, trip_response(written, status=201))


@former.patch("/trips/{trip_id}")
async def former_update(
    trip_id: uuid.UUID, body: TripPatch, user: CurrentUser, ctx: ContextDep, if_match: IfMatch = None
) -> Response:
    """`PATCH /api/trips/{id}` before (the happy path)."""
    command = UpdateTrip(trip_id=trip_id, patch=body, expected_version=parse_if_match(if_match))
    written = await trips.update_trip_as(command, ctx.db, user)
    assert written is not None
    return committed(ctx, written, trip_response(written))


@former.post("/trips/{trip_id}/itineraries/{itinerary_id}/activities", status_code=201)
async def former_activity(
    trip_id: uuid.UUID,
    itinerary_id: uuid.UUID,
    body: NewActivity,
    request: Request,
    user: CurrentUser,
    ctx: ContextDep,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """`POST …/activities` before (the happy path)."""
    command = AddActivity(
        trip_id=trip_id, itinerary_id=itinerary_id, activity=body, expected_version=parse_if_match(if_match)
    )
    assert routes._idempotent(request, idempotency_key, body) is None
    written = await activities.add_activity_as(command, ctx.db, user, Caps.of(ctx.settings))
    assert written is not None
    return committed(ctx, written, created(written))


now.add_api_route("/trips", routes.create_trip, methods=["POST"], status_code=201)
now.add_api_route("/trips/{trip_id}", routes.update_trip, methods=["PATCH"])
now.add_api_route(routes.ITINERARY + "/activities", routes.add_activity, methods=["POST"], status_code=201)


def mount(app: FastAPI) -> None:
    """Both variants first in the app (the same routing cost for each)."""
    ours = len(app.router.routes)
    app.include_router(former)
    app.include_router(now)
    app.router.routes[:] = app.router.routes[ours:] + app.router.routes[:ours]


async def main() -> None:
    """Mount both, warm up, measure interleaved, print."""
    url = write_bench.DEFAULT_URL
    secret, token, run = await write_bench.prepare(url, 200)
    app = write_bench.build_app(write_bench.write_settings(url, secret))
    mount(app)
    headers = {"Authorization": f"Bearer {token}"}
    results: dict[str, list[tuple[float, float]]] = {}
    async with app.router.lifespan_context(app):
        # The projection nudge is the same for both and, sequential, one arq enqueue per request:
        # the noisiest part of a command's CPU time. Left out of both.
        app.state.ctx.nudger.nudge_soon = lambda: None
        for rnd in range(ROUNDS + 1):  # round 0 warms up both
            for command in write_bench.BODIES:
                for variant in ("former", "now"):
                    paths = [
                        p.replace("/api/", f"/ab/{variant}/", 1) for p in write_bench.paths(command, "d", run.targets)
                    ]
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    n = REQUESTS if rnd else 100
                    for i in range(n):
                        body = (write_bench.BODIES[command] % (f"ab{rnd}{variant}", i)).encode()
                        status, answer = await asgi_request(
                            app, write_bench.METHODS[command], paths[i % len(paths)], headers, body
                        )
                        if status >= 300:
                            raise RuntimeError(f"{command} ({variant}) answered {status}: {answer[:300]!r}")
                    if rnd:
                        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                        results.setdefault(f"{command} {variant}", []).append((cpu / n * 1e6, n / wall))
    print_rounds(results)


if __name__ == "__main__":
    asyncio.run(main())
