"""Bad input gets its status as problem+json and changes nothing (no row, no version bump)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.integration.command_kit import TRIP, Party, fetch, seed_party

TRIP_URL = "/api/trips/{trip}"
ITINERARIES = TRIP_URL + "/itineraries"
ITINERARY = ITINERARIES + "/{itinerary}"
ACTIVITIES = ITINERARY + "/activities"
ACTIVITY = ACTIVITIES + "/{activity}"
COLLABORATOR = TRIP_URL + "/collaborators/{user}"
NUL = "a\x00b"
TS = "2026-06-02T10:00:00Z"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    url: str
    status: int
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    if_match: str | None = None


def trip(**fields: Any) -> dict[str, Any]:
    return TRIP | fields


CASES = [
    Case("malformed json", "POST", "/api/trips", 400, raw=b'{"title": '),
    Case("malformed json patch", "PATCH", TRIP_URL, 400, raw=b"{'title': 'x'}"),
    Case("wrong content type", "POST", "/api/trips", 415, raw=orjson.dumps(TRIP), content_type="text/plain"),
    Case("form content type", "PATCH", TRIP_URL, 415, raw=b"title=x", content_type="application/x-www-form-urlencoded"),
    Case("body not an object", "POST", "/api/trips", 422, body=[TRIP]),
    Case("missing body", "PATCH", TRIP_URL, 422, raw=b""),
    Case("missing field", "POST", "/api/trips", 422, body={"title": "x"}),
    Case("title wrong type", "POST", "/api/trips", 422, body=trip(title=123)),
    Case("travelers as string", "POST", "/api/trips", 422, body=trip(travelers="2")),
    Case("travelers as float", "PATCH", TRIP_URL, 422, body={"travelers": 2.5}),
    Case("travelers as bool", "PATCH", TRIP_URL, 422, body={"travelers": True}),
    Case("travelers zero", "PATCH", TRIP_URL, 422, body={"travelers": 0}),
    Case("date not a date", "PATCH", TRIP_URL, 422, body={"start_date": "tomorrow"}),
    # A JSON number is never a date or a timestamp (pydantic's lax mode read it as seconds since 1970).
    Case("date as number", "PATCH", TRIP_URL, 422, body={"start_date": 0}),
    Case("date as float", "POST", "/api/trips", 422, body=trip(end_date=1.0e9)),
    Case("day as number", "POST", ITINERARIES, 422, body={"title": "x", "day": 0}),
    Case("day as numeric string", "PATCH", ITINERARY, 422, body={"day": "1700000000"}),
    Case("day as timestamp", "PATCH", ITINERARY, 422, body={"day": "2026-06-02T00:00:00Z"}),
    Case("timestamp as number", "POST", ACTIVITIES, 422, body={"title": "x", "starts_at": 1700000000}),
    Case("timestamp as numeric string", "PATCH", ACTIVITY, 422, body={"ends_at": "12.5"}),
    Case("timestamp as bool", "PATCH", ACTIVITY, 422, body={"starts_at": True}),
    # The driver stores the first and last date and instant as -infinity/infinity: refused, not stored.
    Case("first date", "POST", "/api/trips", 422, body=trip(start_date="0001-01-01")),
    Case("last date", "PATCH", TRIP_URL, 422, body={"end_date": "9999-12-31"}),
    Case("first instant", "PATCH", ACTIVITY, 422, body={"starts_at": "0001-01-01T00:00:00Z"}),
    Case("before the first instant", "PATCH", ACTIVITY, 422, body={"starts_at": "0001-01-01T00:00:00+05:00"}),
    Case(
        "after the last instant", "POST", ACTIVITIES, 422, body={"title": "x", "ends_at": "9999-12-31T23:00:00-05:00"}
    ),
    Case("chat trip id as number", "POST", "/api/chat/sessions", 422, body={"trip_id": 5}),
    Case("title as number", "PATCH", ITINERARY, 422, body={"title": 5}),
    Case("tags not a list", "PATCH", TRIP_URL, 422, body={"tags": "a,b"}),
    Case("budget as bool", "PATCH", TRIP_URL, 422, body={"budget": True}),
    Case("unknown field", "POST", "/api/trips", 422, body=trip(foo=1)),
    Case("unknown field patch", "PATCH", TRIP_URL, 422, body={"colour": "red"}),
    *(
        Case(f"read-only {field}", "PATCH", TRIP_URL, 422, body={field: value})
        for field, value in [
            ("id", "6f7c2d9e-0000-4000-8000-000000000000"),
            ("owner_id", "6f7c2d9e-0000-4000-8000-000000000000"),
            ("version", 7),
            ("created_at", TS),
            ("updated_at", TS),
        ]
    ),
    Case("read-only trip_version", "PATCH", ITINERARY, 422, body={"trip_version": 9}),
    Case("read-only trip_id", "POST", ACTIVITIES, 422, body={"title": "x", "trip_id": "x"}),
    Case("title 201 chars", "POST", "/api/trips", 422, body=trip(title="x" * 201)),
    Case("empty title", "PATCH", TRIP_URL, 422, body={"title": ""}),
    Case("null title", "PATCH", TRIP_URL, 422, body={"title": None}),
    Case("description 2001 chars", "PATCH", TRIP_URL, 422, body={"description": "x" * 2001}),
    Case("end before start", "POST", "/api/trips", 422, body=trip(start_date="2026-06-05", end_date="2026-06-01")),
    Case("end before stored start", "PATCH", TRIP_URL, 422, body={"end_date": "2026-05-01"}),
    Case("negative budget", "POST", "/api/trips", 422, body=trip(budget="-1")),
    Case("budget 3 decimals", "PATCH", TRIP_URL, 422, body={"budget": "10.005"}),
    Case("budget not a number", "PATCH", TRIP_URL, 422, body={"budget": "NaN"}),
    Case("bad currency", "POST", "/api/trips", 422, body=trip(currency="ABC")),
    Case("short currency", "PATCH", TRIP_URL, 422, body={"currency": "US"}),
    Case("bad status", "PATCH", TRIP_URL, 422, body={"status": "done"}),
    Case("bad trip type", "PATCH", TRIP_URL, 422, body={"trip_type": "party"}),
    Case("21 tags", "POST", "/api/trips", 422, body=trip(tags=[f"t{n}" for n in range(21)])),
    Case("51-char tag", "PATCH", TRIP_URL, 422, body={"tags": ["x" * 51]}),
    Case("NUL in title", "POST", "/api/trips", 422, body=trip(title=NUL)),
    Case("NUL in description", "PATCH", TRIP_URL, 422, body={"description": NUL}),
    Case("NUL in tag", "PATCH", TRIP_URL, 422, body={"tags": [NUL]}),
    Case("NUL in itinerary title", "POST", ITINERARIES, 422, body={"title": NUL}),
    Case("NUL in activity notes", "PATCH", ACTIVITY, 422, body={"notes": NUL}),
    Case("negative position", "POST", ITINERARIES, 422, body={"title": "x", "position": -1}),
    Case("position as string", "PATCH", ITINERARY, 422, body={"position": "1"}),
    Case("day outside trip", "POST", ITINERARIES, 422, body={"title": "x", "day": "2027-01-01"}),
    Case("bad item type", "POST", ACTIVITIES, 422, body={"title": "x", "item_type": "nap"}),
    Case("negative price", "POST", ACTIVITIES, 422, body={"title": "x", "price": -5}),
    Case("naive timestamp", "POST", ACTIVITIES, 422, body={"title": "x", "starts_at": "2026-06-02T10:00:00"}),
    Case(
        "ends before starts",
        "POST",
        ACTIVITIES,
        422,
        body={"title": "x", "starts_at": TS, "ends_at": "2026-06-01T00:00:00Z"},
    ),
    Case("ends before stored start", "PATCH", ACTIVITY, 422, body={"starts_at": TS, "ends_at": "2026-06-01T00:00:00Z"}),
    Case("location 501 chars", "PATCH", ACTIVITY, 422, body={"location": "x" * 501}),
    Case("null currency", "PATCH", ACTIVITY, 422, body={"currency": None}),
    Case("bad permission", "PUT", COLLABORATOR, 422, body={"permission": "owner"}),
    Case("bad trip id", "PATCH", "/api/trips/not-a-uuid", 422, body={"title": "x"}),
    Case("bad trip id delete", "DELETE", "/api/trips/123", 422),
    Case("bad itinerary id", "PATCH", TRIP_URL + "/itineraries/nope", 422, body={"title": "x"}),
    Case("bad activity id", "DELETE", ITINERARY + "/activities/nope", 422),
    Case("bad user id", "PUT", TRIP_URL + "/collaborators/nope", 422, body={"permission": "view"}),
    Case("body over 1 MiB", "POST", "/api/trips", 413, body=trip(description="x" * (2 * 1024 * 1024))),
    Case("patch over 1 MiB", "PATCH", TRIP_URL, 413, raw=b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'),
    Case("stale If-Match", "PATCH", TRIP_URL, 412, body={"title": "x"}, if_match='"99"'),
    Case("garbage If-Match", "DELETE", ACTIVITY, 412, if_match="null"),
    # The body is validated before the precondition, and the trip found before it: 422 and 404 first.
    Case("empty If-Match, invalid body", "PATCH", TRIP_URL, 422, body={"start_date": 0}, if_match=""),
    Case("empty If-Match, invalid day", "POST", ITINERARIES, 422, body={"title": "x", "day": 0}, if_match=""),
    Case("stale If-Match, invalid body", "PUT", COLLABORATOR, 422, body={"permission": 1}, if_match='"99"'),
    Case(
        "empty If-Match, absent trip",
        "PATCH",
        "/api/trips/" + "0" * 8 + "-0000-4000-8000-" + "0" * 12,
        404,
        body={"title": "x"},
        if_match="",
    ),  # fmt: skip
]


@dataclass
class Scene:
    group: Party
    ids: dict[str, str]


@pytest.fixture(scope="module")
async def scene(app: FastAPI) -> Scene:
    group, itinerary, activity = await seed_party(app)
    ids = {"trip": group.trip_id, "itinerary": itinerary, "activity": activity, "user": str(group.users["edit"].id)}
    return Scene(group, ids)


async def state(app: FastAPI, scene: Scene) -> list[Any]:
    owner = str(scene.group.users["owner"].id)
    return [
        await fetch(app, "SELECT * FROM trips WHERE owner_id = :id ORDER BY id", id=owner),
        await fetch(app, "SELECT * FROM itineraries WHERE trip_id = :id", id=scene.group.trip_id),
        await fetch(app, "SELECT * FROM activities WHERE trip_id = :id", id=scene.group.trip_id),
        await fetch(app, "SELECT * FROM trip_collaborators WHERE trip_id = :id", id=scene.group.trip_id),
        await fetch(app, "SELECT * FROM idempotency_keys WHERE user_id = :id", id=owner),
    ]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_bad_input_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI, scene: Scene, case: Case
) -> None:
    before = await state(app, scene)
    headers = scene.group.headers("owner", **{"Idempotency-Key": case.name}) | {"Content-Type": case.content_type}
    if case.if_match is not None:
        headers["If-Match"] = case.if_match
    content = case.raw if case.raw is not None else orjson.dumps(case.body) if case.body is not None else None
    response = await client.request(case.method, case.url.format(**scene.ids), content=content, headers=headers)
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == case.status and {"type", "title", "detail"} <= set(problem)
    if case.status == 422:
        assert problem["errors"] and all({"loc", "msg"} == set(error) for error in problem["errors"])
    assert "\x00" not in response.text and "xxxxxxxxxx" not in response.text  # input is never echoed
    assert await state(app, scene) == before
