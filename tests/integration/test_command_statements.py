"""Each command costs a fixed, small number of round trips to PostgreSQL (counted on the real engine).

A round trip is one message: the SQLAlchemy statements (`before_cursor_execute`) plus what goes
on the driver directly (asyncpg's query logger): the transaction's opening script (`BEGIN` with the
role, claims and timeouts, one message) and its `COMMIT`. The figures are the ones documented in
docs/commands.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.command_kit import TRIP, Party, seed_party
from tests.support import count_driver_statements, count_statements


@dataclass(frozen=True)
class Step:
    name: str
    method: str
    url: str
    body: dict[str, Any] | None
    role: str
    round_trips: int
    headers: tuple[tuple[str, str], ...] = ()
    ends: str = "COMMIT"


TRIP_URL = "/api/trips/{trip}"
ITINERARY = TRIP_URL + "/itineraries/{itinerary}"
ACTIVITY = ITINERARY + "/activities/{activity}"

# In order, on one seeded trip (each step's effect is what the next one expects).
STEPS = [
    Step("create trip", "POST", "/api/trips", TRIP, "owner", 1),
    Step("create trip, Idempotency-Key", "POST", "/api/trips", TRIP, "owner", 5, (("Idempotency-Key", "s-1"),)),
    Step("replay of that create", "POST", "/api/trips", TRIP, "owner", 3, (("Idempotency-Key", "s-1"),), "ROLLBACK"),
    Step("patch trip", "PATCH", TRIP_URL, {"title": "Renamed"}, "edit", 1),
    Step("patch trip, no change", "PATCH", TRIP_URL, {"title": "Renamed"}, "edit", 1),
    Step("patch trip dates", "PATCH", TRIP_URL, {"end_date": "2026-06-06"}, "owner", 1),
    Step("add itinerary", "POST", TRIP_URL + "/itineraries", {"title": "Day 2"}, "admin", 4),
    Step(
        "add itinerary, key", "POST", TRIP_URL + "/itineraries", {"title": "D3"}, "edit", 6, (("Idempotency-Key", "i"),)
    ),
    Step("patch itinerary", "PATCH", ITINERARY, {"position": 4}, "edit", 4),
    Step("patch itinerary, no change", "PATCH", ITINERARY, {"position": 4}, "edit", 3),
    Step("add activity", "POST", ITINERARY + "/activities", {"title": "Lunch"}, "edit", 1),
    Step("patch activity", "PATCH", ACTIVITY, {"price": "12.50"}, "edit", 4),
    Step("delete activity", "DELETE", ACTIVITY, None, "edit", 4),
    Step("share", "PUT", TRIP_URL + "/collaborators/{other}", {"permission": "view"}, "admin", 4),
    Step("share, same permission", "PUT", TRIP_URL + "/collaborators/{other}", {"permission": "view"}, "owner", 3),
    Step("change permission", "PUT", TRIP_URL + "/collaborators/{other}", {"permission": "edit"}, "owner", 4),
    Step("remove collaborator", "DELETE", TRIP_URL + "/collaborators/{other}", None, "owner", 4),
    Step("viewer leaves", "DELETE", TRIP_URL + "/collaborators/{view}", None, "view", 4),
    Step("delete itinerary", "DELETE", ITINERARY, None, "owner", 4),
    Step("update profile", "PATCH", "/api/users/me", {"display_name": "Stat"}, "owner", 4),
    Step("update profile and preferences", "PATCH", "/api/users/me", {"preferences": {"currency": "EUR"}}, "owner", 4),
    Step("update profile, no change", "PATCH", "/api/users/me", {"display_name": "Stat"}, "owner", 3),
    Step("delete trip", "DELETE", TRIP_URL, None, "owner", 4),
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
    engine = app.state.ctx.db.engine
    async with count_driver_statements(engine) as driver:
        with count_statements(engine) as counter:
            response = await client.request(step.method, step.url.format(**ids), json=step.body, headers=headers)
    assert response.status_code < 300, response.text
    sent = driver.statements + counter.statements
    assert len(sent) == step.round_trips, sent
    if step.round_trips == 1:  # a command function (migration 0010): one call, its own transaction
        assert "pg_current_xact_id()::text::bigint AS xid FROM tripsage." in driver.statements[0]
        return
    # One message opens the transaction with the role and claims; one commits; the rest is the command's work.
    assert driver.statements[0].startswith("BEGIN; SELECT set_config('role', E'tripsage_api', true)")
    assert driver.statements[-1] == step.ends
    assert sum("request.jwt.claims" in statement for statement in sent) == 1


async def test_a_refused_date_change_costs_one_more_statement(client: httpx.AsyncClient, app: FastAPI) -> None:
    party, _, _ = await seed_party(app)
    owner = party.users["owner"]
    url = f"/api/trips/{party.trip_id}"
    day = await client.post(f"{url}/itineraries", json={"title": "edge", "day": "2026-06-05"}, headers=owner.headers)
    assert day.status_code == 201, day.text
    engine = app.state.ctx.db.engine
    async with count_driver_statements(engine) as driver:
        with count_statements(engine) as counter:
            response = await client.patch(url, json={"end_date": "2026-06-04"}, headers=owner.headers)
    assert response.status_code == 422
    # The one call refused it (no row); the full path: claim, the refused UPDATE, the itineraries it names.
    assert counter.count == 3, counter.statements
    assert "tripsage.update_trip(" in driver.statements[0]
    assert [s.split(";")[0] for s in driver.statements[1:]] == ["BEGIN", "ROLLBACK"]


async def test_a_refused_one_call_command_runs_the_full_path_for_its_error(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    party, itinerary, _ = await seed_party(app)
    ids = {"trip": party.trip_id, "itinerary": itinerary}
    viewer = party.users["view"]
    assert (await client.patch("/api/users/me", json={}, headers=viewer.headers)).status_code == 200  # provisioned
    engine = app.state.ctx.db.engine
    async with count_driver_statements(engine) as driver:
        with count_statements(engine) as counter:
            url = ITINERARY.format(**ids) + "/activities"
            response = await client.post(url, json={"title": "No"}, headers=viewer.headers)
    assert response.status_code == 403, response.text
    # The call changed nothing and returned no row; then BEGIN, the claim (which says 403), ROLLBACK.
    assert "tripsage.add_activity(" in driver.statements[0]
    assert [s.split(";")[0] for s in driver.statements[1:]] == ["BEGIN", "ROLLBACK"]
    assert counter.count == 1, counter.statements
