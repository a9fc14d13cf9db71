"""A/B in one process: the single-trip route as it is against its former signature (caller and path id as parameters).

Both are mounted first (same routing cost) in the read bench's app, on the seeded `tripsage_bench`
database, and measured interleaved: 6 rounds of up to 1,500 sequential in-process requests each;
prints app CPU µs per request and req/s (medians and every round). Never a test.

    uv run python -m bench.trip_get_ab
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid

from fastapi import Request, Response

from bench.harness import print_rounds, time_inprocess
from bench.read_bench import bench_settings, build_app
from bench.seed import DEFAULT_URL, MEASURED_EMAIL, MEASURED_USER, Generator, SeedPlan
from core.auth import mint_token
from core.deps import AppContext, CurrentUser
from core.errors import not_found
from queries.plumbing import call_as, consistency_headers, if_none_match
from queries.trips import JSON, TRIP_GET, consistency_token, get_trip


async def former_get_trip(request: Request, user: CurrentUser, trip_id: uuid.UUID) -> Response:
    """The single-trip route before its second change: the caller and the path id resolved by FastAPI.

    (Its first change, earlier in issue 14, read the two headers and the app context itself.)
    """
    ctx: AppContext = request.app.state.ctx
    headers = await consistency_headers(ctx, consistency_token(request))
    tags = if_none_match(request.headers.get("if-none-match"))
    found = await call_as(ctx.db.read_engine, user, TRIP_GET, trip_id, tags or [], timeouts=ctx.db.timeouts)
    if not found:
        raise not_found("trip")
    etag, doc = found[0]
    return Response(doc, media_type=JSON, headers={"ETag": etag, **headers})


async def main() -> None:
    """Mount both first, warm up, measure interleaved, print."""
    secret = base64.urlsafe_b64encode(os.urandom(36)).decode()
    token = mint_token(secret=secret, email=MEASURED_EMAIL, sub=MEASURED_USER, ttl=3600)
    app = build_app(bench_settings(DEFAULT_URL, secret))
    for path, route in (("/ab/former/trips/{trip_id}", former_get_trip), ("/ab/now/trips/{trip_id}", get_trip)):
        app.add_api_route(path, route, methods=["GET"])
        app.router.routes.insert(0, app.router.routes.pop())
    plan = SeedPlan()
    trip = Generator(plan).trips[plan.trips_per_user - 1][0]
    headers = {"Authorization": f"Bearer {token}"}
    paths = {"former signature": f"/ab/former/trips/{trip}", "as it is": f"/ab/now/trips/{trip}"}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    async with app.router.lifespan_context(app):
        for path in paths.values():
            await time_inprocess(app, path, headers, n=200, max_seconds=3)
        for _ in range(6):
            for name, path in paths.items():
                timing = await time_inprocess(app, path, headers, n=1500, max_seconds=4, dbname="tripsage_bench")
                results[name].append((timing.cpu_ms[0] * 1000, timing.rps))
    print_rounds(results)


if __name__ == "__main__":
    asyncio.run(main())
