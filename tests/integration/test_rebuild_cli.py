"""`tripsage projections rebuild | verify | rollback` as an operator runs them (in process, real database)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from core.db import create_engine
from projections.rebuild.lock import exclusive
from projections.rebuild.run import RebuildOptions, rebuild
from tests.integration.test_projection_support import Writes
from tests.integration.test_rebuild_support import fresh_start
from tripsage.cli import app as cli
from tripsage.cli.rebuild import ProgressView

T = TypeVar("T")


def run(url: str, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `work` in this (sync) test's own event loop with a private engine."""

    async def main() -> T:
        engine = create_engine(url, pool_size=2)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


@contextmanager
def lock_held(url: str) -> Iterator[None]:
    """Another "process" (a thread with its own loop and connection) holds the rebuild lock."""
    ready, release = threading.Event(), threading.Event()

    async def hold(engine: AsyncEngine) -> None:
        async with exclusive(engine, "rebuild"):
            ready.set()
            while not release.is_set():
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=run, args=(url, hold))
    thread.start()
    assert ready.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join()


async def _setup(engine: AsyncEngine) -> list[uuid.UUID]:
    w = Writes(engine)
    owner = await w.user("Cli")
    trips = [await w.create_trip(owner, f"cli {i}") for i in range(3)]
    await fresh_start(engine)
    return trips


async def _views(engine: AsyncEngine) -> dict[uuid.UUID, Any]:
    async with engine.connect() as conn:
        return {
            row.trip_id: row for row in await conn.execute(text("SELECT trip_id, projected_at, doc FROM trip_views"))
        }


async def _corrupt(engine: AsyncEngine, trip_id: uuid.UUID) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE trip_views SET doc = convert_to('{\"corrupt\": true}', 'UTF8') WHERE trip_id = :id"),
            {"id": trip_id},
        )


def test_single_trip_rebuild_fixes_one_document_and_touches_no_other(cli_env: str) -> None:
    trips = run(cli_env, _setup)
    run(cli_env, lambda engine: _corrupt(engine, trips[0]))
    before = run(cli_env, _views)
    runner = CliRunner()

    result = runner.invoke(cli, ["projections", "verify", "--settle", "0"])
    assert result.exit_code == 1 and f"differs  {trips[0]}  at $.id (missing)" in result.output, result.output

    result = runner.invoke(cli, ["projections", "rebuild", "--trip", str(trips[0])])
    assert result.exit_code == 0 and f"rebuilt trip {trips[0]}" in result.output, result.output
    after = run(cli_env, _views)
    assert orjson.loads(after[trips[0]].doc)["title"] == "cli 0"
    assert after[trips[0]].projected_at > before[trips[0]].projected_at
    assert {t: r.projected_at for t, r in after.items() if t != trips[0]} == {
        t: r.projected_at for t, r in before.items() if t != trips[0]
    }

    result = runner.invoke(cli, ["projections", "verify", "--json"])
    assert result.exit_code == 0 and orjson.loads(result.stdout)["differences"] == [], result.output
    ghost = uuid.uuid4()
    result = runner.invoke(cli, ["projections", "rebuild", "--trip", str(ghost)])
    assert result.exit_code == 0 and "does not exist" in result.output
    assert runner.invoke(cli, ["projections", "rebuild", "--trip", "nope"]).exit_code == 2


def test_rebuild_verify_rollback_commands(cli_env: str) -> None:
    run(cli_env, _setup)
    runner = CliRunner()
    result = runner.invoke(cli, ["projections", "rebuild", "--batch-size", "2", "--concurrency", "3"])
    assert result.exit_code == 0 and "switched:" in result.output and "trips/s" in result.output, result.output
    result = runner.invoke(cli, ["projections", "verify", "--batch-size", "2"])
    assert result.exit_code == 0 and "0 difference(s)" in result.output, result.output
    result = runner.invoke(cli, ["projections", "rollback"])
    assert result.exit_code == 0 and "rolled back" in result.output and "caught up" in result.output, result.output
    result = runner.invoke(cli, ["projections", "verify", "--drain"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["projections", "rebuild", "nope"]).exit_code == 1
    assert runner.invoke(cli, ["projections", "rollback", "nope"]).exit_code == 1
    with lock_held(cli_env):
        for command in (["rebuild"], ["rollback"]):
            result = runner.invoke(cli, ["projections", *command])
            assert result.exit_code == 3 and "already running: rebuild by" in result.output, result.output
    assert runner.invoke(cli, ["projections", "rebuild"]).exit_code == 0


async def _interrupt(engine: AsyncEngine) -> None:
    """A rebuild cancelled during its build (Ctrl-C), left resumable."""
    started = asyncio.Event()

    def progress(phase: str, done: int, _total: int) -> None:
        if phase == "build" and done > 0:
            started.set()

    options = RebuildOptions(batch_size=2, concurrency=1, pause_s=0.05)
    task = asyncio.create_task(rebuild(engine, options=options, on_progress=progress))
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_status_shows_versions_and_the_rebuild_in_progress(cli_env: str) -> None:
    run(cli_env, _setup)
    runner = CliRunner()
    result = runner.invoke(cli, ["projections", "status"])
    assert result.exit_code == 0, result.output
    assert "definition (live)" in result.stdout and "last rebuild" in result.stdout and "switched" in result.stdout
    run(cli_env, _interrupt)
    result = runner.invoke(cli, ["projections", "status", "--json"])
    building = orjson.loads(result.stdout)["projections"][0]["rebuild"]["rebuilding"]
    assert building["rows"] >= 1 and building["parts_done"] == "0/1"
    result = runner.invoke(cli, ["projections", "status"])
    assert f"#{building['id']} by" in result.stdout, result.stdout
    result = runner.invoke(cli, ["projections", "rebuild"])
    assert result.exit_code == 0 and "resumed after" in result.stdout, result.output


def test_progress_view_on_a_terminal_and_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    with ProgressView("rebuild x", interactive=True) as view:
        view("build", 0, 10)
        view("build", 10, 10)
        view("switch", 1, 1)
    with caplog.at_level("INFO", logger="tripsage.rebuild"), ProgressView("rebuild x", interactive=False) as view:
        view("build", 0, 10)
        view("build", 5, 10)  # within 2 s of the last line: not logged
        view("build", 10, 10)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("rebuild x: build 0/10") and lines[-1].startswith("rebuild x: build 10/10")
    assert len(lines) == 2
