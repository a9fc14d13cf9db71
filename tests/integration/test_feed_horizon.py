"""A transaction that holds the feed horizon is named everywhere; the worker's sessions cannot hold it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from core.db import create_engine
from core.settings import Settings
from projections import horizon
from projections.status import read_report
from projections.timeouts import REBUILD, WORKER, SessionTimeouts, apply_timeouts
from tests.support import service_headers
from tripsage.cli import app as cli
from workers.jobs import close_projector, open_projector

APP_NAME = "horizon-test"
GAUGE = re.compile(r'^tripsage_projection_horizon_age_seconds\{projection="trip_views"\} (\S+)$', re.MULTILINE)


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=3)
    yield eng
    await eng.dispose()


async def _holder_json(engine: AsyncEngine) -> object:
    async with engine.connect() as conn:
        return (await read_report(conn)).to_json()["projections"][0]["horizon_holder"]


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli, ["projections", "status", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.usefixtures("cli_env")
async def test_an_idle_writer_holding_the_horizon_is_named_in_status_metrics_and_readyz(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(horizon, "REPORT_AFTER_S", 0.3)
    assert await _holder_json(engine) is None
    async with engine.connect() as idle:
        await idle.begin()
        pid = await idle.scalar(
            text("SELECT pg_backend_pid(), set_config('application_name', :n, true), pg_current_xact_id()"),
            {"n": APP_NAME},
        )
        await asyncio.sleep(0.4)  # idle in transaction, holding an xid: every later change waits behind it

        holder = await _holder_json(engine)
        assert isinstance(holder, dict)
        assert (holder["pid"], holder["state"], holder["application_name"]) == (pid, "idle in transaction", APP_NAME)
        assert holder["age_seconds"] >= 0.3

        admin = (await client.get("/api/admin/projections", headers=service_headers())).json()
        assert admin["projections"][0]["horizon_holder"]["pid"] == pid
        as_json = orjson.loads(await asyncio.to_thread(_cli, "--json"))
        assert as_json["projections"][0]["horizon_holder"]["application_name"] == APP_NAME
        assert f"by pid {pid}" in await asyncio.to_thread(_cli)

        gauge = GAUGE.search((await client.get("/metrics")).text)
        assert gauge is not None and float(gauge.group(1)) >= 0.3
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # not the API's fault
        note = ready.json()["notes"]["feed_horizon"]
        assert f"server pid {pid}" in note and "idle in transaction" in note and APP_NAME in note
        await idle.rollback()

    assert await _holder_json(engine) is None
    assert "feed_horizon" not in (await client.get("/readyz")).json().get("notes", {})
    gauge = GAUGE.search((await client.get("/metrics")).text)
    assert gauge is not None and float(gauge.group(1)) < 0.3


async def _settings_of(engine: AsyncEngine, *, in_transaction: bool) -> tuple[str, str, str]:
    names = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
    query = text("SELECT " + ", ".join(f"current_setting('{n}')" for n in names))
    async with engine.begin() if in_transaction else engine.connect() as conn:
        row = (await conn.execute(query)).one()
    return (str(row[0]), str(row[1]), str(row[2]))


async def test_the_worker_and_the_rebuild_set_their_own_timeouts(settings: Settings, database_url: str) -> None:
    projector = await open_projector(settings)
    try:
        assert await _settings_of(projector.engine, in_transaction=False) == ("1min", "10s", "1min")
    finally:
        await close_projector(projector)
    # Behind a transaction pooler the values are set in every transaction instead of the session.
    pooled = apply_timeouts(
        create_engine(database_url, pool_mode="transaction", pool_size=1), REBUILD, pool_mode="transaction"
    )
    try:
        assert await _settings_of(pooled, in_transaction=True) == ("5min", "10s", "1min")
    finally:
        await pooled.dispose()
    assert WORKER.statement(local=False).count("set_config") == 3


async def test_an_idle_in_transaction_session_is_ended_and_frees_the_horizon(
    engine: AsyncEngine, database_url: str
) -> None:
    short = apply_timeouts(
        create_engine(database_url, pool_size=1), SessionTimeouts(statement_ms=0, lock_ms=0, idle_in_transaction_ms=200)
    )
    try:
        async with short.connect() as stuck:
            await stuck.begin()
            pid = await stuck.scalar(text("SELECT pg_backend_pid(), pg_current_xact_id()"))
            await asyncio.sleep(0.6)
            holder = await _holder_json(engine)
            assert holder is None or holder["pid"] != pid  # type: ignore[index]
            async with engine.connect() as conn:
                alive = await conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid})
            assert alive == 0  # the server ended the session (and its transaction)
            with pytest.raises(DBAPIError):
                await stuck.execute(text("SELECT 1"))
    finally:
        await short.dispose()
