"""Read-your-writes on a real streaming replica that lags (`READ_DATABASE_URL` = a hot standby).

A primary and a `pg_basebackup -R` standby with `recovery_min_apply_delay = 400ms`, both on
loopback; the API reads from the standby and writes to the primary; the real projection code drains
the feed on the primary. A read carrying a fresh `X-Consistency-Token` may answer `fresh` only with
the write in it (contract §5).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.clusters import replicated_pair, start_cluster, stop_cluster
from tests.support import TestServers as Servers
from tests.support import free_port, make_settings, new_user, project_forever
from tripsage.app import create_app

APPLY_DELAY_MS = 400
TRIP = {"title": "Oslo", "destination": "Oslo", "start_date": "2027-02-01", "end_date": "2027-02-03"}


@dataclass
class Replicated:
    """An API on a primary + lagging standby, with a projector running."""

    client: httpx.AsyncClient
    standby: Path


@pytest.fixture(scope="module")
async def replicated(servers: Servers) -> AsyncIterator[Replicated]:
    """Primary and standby clusters, migrated, the API reading the standby, a projector on the primary."""
    async with replicated_pair(free_port, apply_delay_ms=APPLY_DELAY_MS) as pair:
        app = create_app(
            make_settings(pair.url, servers.redis_url, read_database_url=pair.read_url, consistency_wait_ms=3000)
        )
        projector = asyncio.create_task(project_forever(pair.url))
        try:
            async with (
                LifespanManager(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
            ):
                yield Replicated(client, pair.standby)
        finally:
            projector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await projector


async def test_fresh_is_never_sent_without_the_write(replicated: Replicated) -> None:
    client, user = replicated.client, new_user("rep")
    me = await client.get("/api/users/me", headers=user.headers)  # provisioned on the primary, read there
    assert me.status_code == 200, me.text
    fresh = 0
    for n in range(8):
        created = await client.post("/api/trips", json={**TRIP, "title": f"t{n}"}, headers=user.headers)
        assert created.status_code == 201, created.text
        trip_id, token = created.json()["id"], created.headers["X-Consistency-Token"]
        got = await client.get(f"/api/trips/{trip_id}", headers={**user.headers, "X-Consistency-Token": token})
        if got.headers["X-Consistency"] == "fresh":
            fresh += 1
            assert got.status_code == 200 and got.json()["title"] == f"t{n}", got.text
        renamed = await client.patch(f"/api/trips/{trip_id}", json={"title": f"r{n}"}, headers=user.headers)
        token = renamed.headers["X-Consistency-Token"]
        listed = await client.get("/api/trips?limit=100", headers={**user.headers, "X-Consistency-Token": token})
        if listed.headers["X-Consistency"] == "fresh":
            assert f"r{n}" in [t["title"] for t in listed.json()["items"]]
    assert fresh >= 6  # the wait (3 s) covers the standby's 400 ms delay: fresh, and right
    profile = await client.patch("/api/users/me", json={"display_name": "Renamed"}, headers=user.headers)
    again = await client.get(
        "/api/users/me", headers={**user.headers, "X-Consistency-Token": profile.headers["X-Consistency-Token"]}
    )
    assert again.json()["display_name"] == "Renamed"


async def test_a_missing_standby_makes_readyz_fail_and_recovers(replicated: Replicated) -> None:
    client = replicated.client
    assert (await client.get("/readyz")).json()["checks"]["read_database"] == "ok"
    await asyncio.to_thread(stop_cluster, replicated.standby)
    try:
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["read_database"].startswith("failed")
    finally:
        await asyncio.to_thread(start_cluster, replicated.standby)
    for _ in range(100):
        if (await client.get("/readyz")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    user = new_user("back")
    assert (await client.get("/api/trips", headers=user.headers)).status_code == 200
