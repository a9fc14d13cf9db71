"""`tripsage projections ...`: the read model's health and its dead letters."""

from __future__ import annotations

import uuid
from typing import Annotated, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from core.embedded import DEFAULT_DATA_DIR
from core.nudge import Nudger
from core.settings import Settings
from projections.dead_letters import retry_dead as requeue_dead
from projections.status import ProjectionStatus, StatusReport, read_report
from tripsage.cli import rebuild as rebuild_cli
from tripsage.cli.support import DataDir, run_with_engine

app = typer.Typer(help="Projections (read models): status, dead letters.", no_args_is_help=True)
rebuild_cli.register(app)

T = TypeVar("T")


async def _report(_settings: Settings, engine: AsyncEngine) -> StatusReport:
    async with engine.connect() as conn:
        return await read_report(conn)


def render(report: StatusReport, console: Console) -> None:
    """Print the status report: one column per projection, then the dead letters."""
    table = Table(title="Projections")
    table.add_column("")
    for p in report.projections:
        table.add_column(p.name, justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("version", [str(p.version) for p in report.projections]),
        ("backlog (trips/profiles)", [str(p.backlog) for p in report.projections]),
        ("lag (positions)", [str(p.lag_positions) for p in report.projections]),
        ("lag (seconds)", [f"{p.lag_seconds:.3f}" for p in report.projections]),
        ("dead letters", [str(p.dead_letters) for p in report.projections]),
        ("retrying", [str(p.retrying) for p in report.projections]),
        ("stale documents", [str(p.stale_documents) for p in report.projections]),
        ("feed horizon", [_horizon(p) for p in report.projections]),
        ("last heartbeat", [_beat(p) for p in report.projections]),
    ]
    rows += rebuild_cli.status_rows(report.projections)
    for label, values in rows:
        table.add_row(label, *values)
    console.print(table)
    if report.dead_letters:
        letters = Table(title="Dead letters: documents stale, access follows the write model (most recent first)")
        letters.add_column("trip", no_wrap=True, min_width=36)
        letters.add_column("attempts", justify="right")
        letters.add_column("state", no_wrap=True)
        letters.add_column("error")
        for d in report.dead_letters:
            state = "parked" if d.parked else f"retry {d.retry_at:%H:%M:%S}"
            letters.add_row(str(d.trip_id), str(d.attempts), state, d.error)
        console.print(letters)


def _horizon(p: ProjectionStatus) -> str:
    holder = p.horizon_holder
    if holder is None:
        return "ok"
    return (
        f"HELD {holder['age_seconds']:.0f} s by pid {holder['pid']}"
        f" ({holder['state']}, {holder['application_name'] or '?'})"
    )


def _beat(p: ProjectionStatus) -> str:
    if p.last_heartbeat is None or p.heartbeat_age_seconds is None:
        return "never"
    return f"{p.heartbeat_age_seconds:.1f} s ago ({p.workers} live)"


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (as GET /api/admin/projections).")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Per projection: version, backlog, lag (positions and seconds), dead letters, last heartbeat."""
    report = run_with_engine(data_dir, _report)
    if as_json:
        typer.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        render(report, Console())


@app.command("retry-dead")
def retry_dead(
    trip: Annotated[str | None, typer.Option("--trip", help="Only this trip id.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Re-queue parked trips (dead letters) for the worker, with a fresh retry budget."""
    try:
        trip_id = uuid.UUID(trip) if trip else None
    except ValueError as exc:
        raise typer.BadParameter("--trip must be a UUID") from exc

    async def work(settings: Settings, engine: AsyncEngine) -> list[uuid.UUID]:
        requeued = await requeue_dead(engine, trip_id)
        if requeued and settings.redis_url:
            nudger = Nudger(settings.redis_url)
            try:
                await nudger.nudge()
            finally:
                await nudger.close()
        return requeued

    requeued = run_with_engine(data_dir, work)
    typer.echo(f"re-queued {len(requeued)} dead letter(s)")
