from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from core.db import create_engine
from projections.apply import drain
from projections.dead_letters import RetryPolicy
from tests.integration.test_projection_support import Writes
from tests.support import new_user, service_headers
from tripsage.cli import app as cli

STALE_WORKER = "test-stale-worker"


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=3)
    yield eng
    await eng.dispose()


async def test_admin_endpoint_is_service_role_only_and_reports_status(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/admin/projections")).status_code == 401
    assert (await client.get("/api/admin/projections", headers=new_user().headers)).status_code == 403
    response = await client.get("/api/admin/projections", headers=service_headers())
    assert response.status_code == 200, response.text
    body = response.json()
    (projection,) = body["projections"]
    assert projection["name"] == "trip_views" and projection["version"] >= 1
    assert set(projection) >= {"backlog", "lag_positions", "lag_seconds", "dead_letters", "retrying", "last_heartbeat"}
    assert isinstance(body["dead_letters"], list)


async def test_metrics_export_projection_gauges(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    w = Writes(engine)
    owner = await w.user("Metrics")
    await drain(engine)
    await w.create_trip(owner)
    text_body = (await client.get("/metrics")).text
    assert 'tripsage_projection_lag_positions{projection="trip_views"}' in text_body
    assert 'tripsage_projection_lag_seconds{projection="trip_views"}' in text_body
    assert "tripsage_projection_backlog" in text_body and "tripsage_projection_dead_letters" in text_body
    await drain(engine)
    text_body = (await client.get("/metrics")).text
    assert 'tripsage_projection_lag_positions{projection="trip_views"} 0.0' in text_body


async def test_readiness_fails_on_a_stale_worker_heartbeat(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO tripsage.worker_heartbeats (worker_id, hostname, pid, beat_at)"
                " VALUES (:id, 'test', 0, now() - interval '1 minute')"
            ),
            {"id": STALE_WORKER},
        )
    try:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["worker"].startswith("failed: no worker heartbeat")
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE tripsage.worker_heartbeats SET beat_at = now() WHERE worker_id = :id"),
                {"id": STALE_WORKER},
            )
        response = await client.get("/readyz")
        assert response.status_code == 200 and response.json()["checks"]["worker"] == "ok"
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM tripsage.worker_heartbeats WHERE worker_id = :id"), {"id": STALE_WORKER}
            )
    assert "worker" not in (await client.get("/readyz")).json()["checks"]  # no worker registered: not judged


async def _park_a_trip(engine: AsyncEngine) -> uuid.UUID:
    w = Writes(engine)
    owner = await w.user("Parked")
    trip = await w.create_trip(owner, "fine")
    await drain(engine)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "ALTER TABLE trip_views ADD CONSTRAINT test_cli_poison CHECK (search_text NOT LIKE '%cli-poison%') NOT VALID"
            )
        )
    try:
        await w.patch_trip(owner, trip, title="cli-poison")
        await drain(engine, policy=RetryPolicy(max_attempts=1))
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE trip_views DROP CONSTRAINT test_cli_poison"))
    return trip


@pytest.mark.usefixtures("cli_env")
def test_cli_status_and_retry_dead(engine: AsyncEngine) -> None:
    trip = asyncio.run(_with_engine(_park_a_trip, engine))
    runner = CliRunner()
    result = runner.invoke(cli, ["projections", "status"])
    assert result.exit_code == 0, result.output
    assert "trip_views" in result.output and "Dead letters" in result.output, result.output
    assert str(trip) in result.output, result.output

    result = runner.invoke(cli, ["projections", "status", "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    assert report["projections"][0]["dead_letters"] >= 1
    assert any(d["trip_id"] == str(trip) and d["parked"] for d in report["dead_letters"])

    assert runner.invoke(cli, ["projections", "retry-dead", "--trip", "nope"]).exit_code != 0
    result = runner.invoke(cli, ["projections", "retry-dead", "--trip", str(trip)])
    assert result.exit_code == 0, result.output
    assert "re-queued 1 dead letter(s)" in result.output
    result = runner.invoke(cli, ["projections", "retry-dead"])
    assert "re-queued 0 dead letter(s)" in result.output
    result = runner.invoke(cli, ["projections", "status", "--json"])
    (letter,) = [d for d in orjson.loads(result.output)["dead_letters"] if d["trip_id"] == str(trip)]
    assert letter["parked"] is False and letter["attempts"] == 0  # due for the sweep, fresh budget


async def _with_engine(work: object, engine: AsyncEngine) -> uuid.UUID:
    # A sync test runs its own event loop: use a private engine there, not the session loop's pool.
    own = create_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        return await work(own)  # type: ignore[operator,no-any-return]
    finally:
        await own.dispose()


def test_cli_help_lists_the_commands() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert "worker" in result.output and "projections" in result.output
    result = runner.invoke(cli, ["projections", "--help"])
    assert "status" in result.output and "retry-dead" in result.output
