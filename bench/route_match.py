"""Route matching alone: µs to find the route of each hot request in the production app's route order.

Builds the app (`tripsage.app.create_app`, no bench routes, no database contacted) and times, with
`timeit`, what FastAPI's router does before a handler runs: every top-level entry's `matches`
until the full match, then the matched router's second pass (`_IncludedRouter._match`). A router
nested in another is matched again at each level, which this counts only in part (two passes).
Never a test.

    uv run python -m bench.route_match
"""

from __future__ import annotations

import base64
import os
import timeit
import uuid
from typing import Any

from fastapi import routing
from starlette.routing import Match

from bench.write_bench import DEFAULT_URL, write_settings
from tripsage.app import create_app

N = 5000


def main() -> None:
    """Time the matching of the hot requests, print µs per request."""
    app = create_app(write_settings(DEFAULT_URL, base64.urlsafe_b64encode(os.urandom(36)).decode()))
    trip, itinerary = uuid.uuid4(), uuid.uuid4()
    requests = {
        "POST …/activities": ("POST", f"/api/trips/{trip}/itineraries/{itinerary}/activities"),
        "PATCH /api/trips/{id}": ("PATCH", f"/api/trips/{trip}"),
        "POST /api/trips": ("POST", "/api/trips"),
        "GET /api/trips/{id}": ("GET", f"/api/trips/{trip}"),
        "GET /api/trips": ("GET", "/api/trips"),
    }
    for name, (method, path) in requests.items():

        def match(method: str = method, path: str = path) -> Any:
            scope = {
                "type": "http",
                "method": method,
                "path": path,
                "root_path": "",
                "headers": [],
                "query_string": b"",
            }
            for route in app.router.routes:
                found, _ = route.matches(scope)
                if found == Match.FULL:
                    if isinstance(route, routing._IncludedRouter):  # pylint: disable=protected-access
                        route._match(scope)  # pylint: disable=protected-access
                    return route
            raise AssertionError(f"no route for {method} {path}")

        print(f"{name}: {timeit.timeit(match, number=N) / N * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
