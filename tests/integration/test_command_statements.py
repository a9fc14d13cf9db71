"""Each command runs a fixed, small number of statements (counted on the real engine).

Counts include the request's one role-and-claims statement. The figures are the ones documented
in docs/commands.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.command_kit import TRIP, Party, seed_party
from tests.support import count_statements


@dataclass(frozen=True)
class Step:
    name: str
    method: str
    url: str
    body: dict[str, Any] | None
    role: str
    statements: int
    headers: tuple[tuple[str, str], ...] = ()


TRIP_URL = "/api/trips/{trip}"
ITINERARY = TRIP_URL + "/itineraries/{itinerary}"
ACTIVITY = ITINERARY + "/activities/{activity}"

# In order, on one seeded trip (each step's effect is what the next one expects).
STEPS = [
    Step("create trip", "POST", "/api/trips", TRIP, "owner", 2),
    Step("create trip, Idempotency-Key", "POST", "/api/trips", TRIP, "owner", 4, (("Idempotency-Key", "s-1"),)),
    Step("replay of that create", "POST", "/api/trips", TRIP, "owner", 2, (("Idempotency-Key", "s-1"),)),
    Step("patch trip", "PATCH", TRIP_URL, {"title": "Renamed"}, "edit", 3),
    Step("patch trip, no change", "PATCH", TRIP_URL, {"title": "Renamed"}, "edit", 2),
    Step("patch trip dates", "PATCH", TRIP_URL, {"end_date": "2026-06-06"}, "owner", 3),
    Step("add itinerary", "POST", TRIP_URL + "/itineraries", {"title": "Day 2"}, "admin", 3),
    Step(
        "add itinerary, key", "POST", TRIP_URL + "/itineraries", {"title": "D3"}, "edit", 5, (("Idempotency-Key", "i"),)
    ),
    Step("patch itinerary", "PATCH", ITINERARY, {"position": 4}, "edit", 3),
    Step("patch itinerary, no change", "PATCH", ITINERARY, {"position": 4}, "edit", 2),
    Step("add activity", "POST", ITINERARY + "/activities", {"title": "Lunch"}, "edit", 3),
    Step("patch activity", "PATCH", ACTIVITY, {"price": "12.50"}, "edit", 3),
    Step("delete activity", "DELETE", ACTIVITY, None, "edit", 3),
    Step("share", "PUT", TRIP_URL + "/collaborators/{other}", {"permission": "view"}, "admin", 3),
    Step("share, same permission", "PUT", TRIP_URL + "/collaborators/{other}", {"permission": "view"}, "owner", 2),
    Step("change permission", "PUT", TRIP_URL + "/collaborators/{other}", {"permission": "edit"}, "owner", 3),
    Step("remove collaborator", "DELETE", TRIP_URL + "/collaborators/{other}", None, "owner", 3),
    Step("viewer leaves", "DELETE", TRIP_URL + "/collaborators/{view}", None, "view", 3),
    Step("delete itinerary", "DELETE", ITINERARY, None, "owner", 3),
    Step("update profile", "PATCH", "/api/users/me", {"display_name": "Stat"}, "owner", 3),
    Step("update profile and preferences", "PATCH", "/api/users/me", {"preferences": {"currency": "EUR"}}, "owner", 3),
    Step("update profile, no change", "PATCH", "/api/users/me", {"display_name": "Stat"}, "owner", 2),
    Step("delete trip", "DELETE", TRIP_URL, None, "owner", 3),
]


@pytest.fixture(scope="module")
async def group(app: FastAPI, client: httpx.AsyncClient) -> tuple[Party, dict[str, str]]:
    party, itinerary, activity = await seed_party(app, others=("other",))
    for user in party.users.values():  # provision each profile outside the counted blocks
        assert (await client.patch("/api/users/me", json={}, headers=user.headers)).status_code == 200
    ids = {"trip": party.trip_id, "itinerary": itinerary, "activity": activity}
    ids |= {"other": str(party.users["other"].id), "view": str(party.users["view"].id)}
    return party, ids


@pytest.mark.parametrize("step", STEPS, ids=[step.name for step in STEPS])
async def test_statements_per_command(
    client: httpx.AsyncClient, app: FastAPI, group: tuple[Party, dict[str, str]], step: Step
) -> None:
    party, ids = group
    headers = party.headers(step.role, **dict(step.headers))
    with count_statements(app.state.ctx.db.engine) as counter:
        response = await client.request(step.method, step.url.format(**ids), json=step.body, headers=headers)
    assert response.status_code < 300, response.text
    assert counter.count == step.statements, counter.statements
    # Exactly one of them is the request's role-and-claims set-up; the rest is the command's own work.
    assert sum("set_config('request.jwt.claims'" in statement for statement in counter.statements) == 1


async def test_a_refused_date_change_costs_one_more_statement(client: httpx.AsyncClient, app: FastAPI) -> None:
    party, _, _ = await seed_party(app)
    owner = party.users["owner"]
    url = f"/api/trips/{party.trip_id}"
    day = await client.post(f"{url}/itineraries", json={"title": "edge", "day": "2026-06-05"}, headers=owner.headers)
    assert day.status_code == 201, day.text
    with count_statements(app.state.ctx.db.engine) as counter:
        response = await client.patch(url, json={"end_date": "2026-06-04"}, headers=owner.headers)
    assert response.status_code == 422
    assert counter.count == 4, counter.statements
