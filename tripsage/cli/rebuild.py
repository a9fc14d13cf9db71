"""`tripsage projections rebuild | verify | rollback`: rebuild the read model without downtime.

Registered on the `projections` sub-app by `tripsage.cli.projections` (`register(app)`). Exit
codes: 0 done; 1 failed, or `verify` found differences; 3 another rebuild or rollback holds the
lock (the message names it); 130 interrupted (a rebuild resumes when run again).
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.embedded import DEFAULT_DATA_DIR
from core.nudge import Nudger
from core.settings import Settings
from projections import trip_view
from projections.rebuild.lock import RebuildBusy
from projections.rebuild.rollback import RollbackResult, rebuild_trip
from projections.rebuild.rollback import rollback as rollback_tables
from projections.rebuild.run import RebuildError, RebuildOptions, RebuildResult, rebuild
from projections.rebuild.verify import VerifyReport, verify
from projections.status import ProjectionStatus
from projections.timeouts import REBUILD
from tripsage.cli.support import DataDir, run_with_engine

log = logging.getLogger("tripsage.rebuild")
T = TypeVar("T")
EXIT_BUSY = 3
EXIT_INTERRUPTED = 130
LOG_EVERY_S = 2.0

Name = Annotated[str, typer.Argument(help="The projection (only `trip_views` exists).")]


class RateColumn(ProgressColumn):
    """Trips per second of a task."""

    def render(self, task: Task) -> Text:
        """`1,234 trips/s`, or a dash before the first measurement."""
        speed = task.finished_speed or task.speed
        return Text("-" if speed is None else f"{speed:,.0f} trips/s", style="progress.data.speed")


class ProgressView:
    """A rich progress bar (rows, rate, ETA) on a terminal; a log line every ~2 s otherwise."""

    def __init__(self, title: str, *, interactive: bool | None = None) -> None:
        """Create the view.

        Args:
            title: What runs (`rebuild trip_views`).
            interactive: Force the bar on or off (default: whether stderr is a terminal).
        """
        self.title = title
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._phase_start: dict[str, tuple[float, int]] = {}
        self._logged = 0.0

    def __enter__(self) -> ProgressView:
        """Start the bar (terminal only)."""
        if self.interactive:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                RateColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._bar.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        """Stop the bar."""
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        """Report progress of a phase (`build`, `catch-up`, `switch`, `verify`)."""
        now = time.monotonic()
        started, base = self._phase_start.setdefault(phase, (now, done))
        if self._bar is not None:
            if phase not in self._tasks:
                self._tasks[phase] = self._bar.add_task(f"{self.title}: {phase}", total=total, completed=done)
            self._bar.update(self._tasks[phase], completed=done, total=total)
            return
        if now - self._logged < LOG_EVERY_S and done < total:
            return
        self._logged = now
        rate = (done - base) / (now - started) if now > started else 0.0
        eta = f"{(total - done) / rate:.0f} s" if rate > 0 and done < total else "-"
        log.info("%s: %s %d/%d (%.0f/s, ETA %s)", self.title, phase, done, total, rate, eta)


def _busy(exc: RebuildBusy) -> typer.Exit:
    typer.echo(f"refused: {exc}", err=True)
    return typer.Exit(EXIT_BUSY)


def _summary(result: RebuildResult) -> str:
    resumed = f", resumed after {result.resumed_from:,}" if result.resumed_from else ""
    return (
        f"rebuild #{result.rebuild_id} switched: {result.rows:,} trips live; built {result.built:,}{resumed}"
        f" + {result.caught_up:,} caught up in {result.seconds:.1f} s ({result.rows_per_s:,.0f} trips/s);"
        f" switch lock held {result.lock_ms:,.0f} ms for {result.under_lock:,} trips"
    )


def rebuild_command(
    name: Name = trip_view.NAME,
    trip: Annotated[
        str | None, typer.Option("--trip", help="Rebuild this one trip's document in place, at once.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10_000, help="Trips per batch.")] = 500,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=32, help="Id ranges built in parallel (new rebuilds).")
    ] = 2,
    pause: Annotated[
        float, typer.Option("--pause", min=0, help="Seconds to sleep between batches (eases load).")
    ] = 0.0,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Rebuild a projection without downtime (resumes an interrupted run), or one trip with --trip."""
    if trip is not None:
        try:
            trip_id = uuid.UUID(trip)
        except ValueError as exc:
            raise typer.BadParameter("--trip must be a UUID") from exc
        exists = run_with_engine(
            data_dir, lambda _s, engine: rebuild_trip(engine, trip_id), pool_size=2, timeouts=REBUILD
        )
        typer.echo(f"rebuilt trip {trip_id}" if exists else f"trip {trip_id} does not exist; no document is kept")
        return
    options = RebuildOptions(batch_size=batch_size, concurrency=concurrency, pause_s=pause)

    async def work(_settings: Settings, engine: AsyncEngine) -> RebuildResult:
        with ProgressView(f"rebuild {name}") as view:
            return await rebuild(engine, projection=name, options=options, on_progress=view)

    try:
        result = run_with_engine(data_dir, work, pool_size=concurrency + 2, timeouts=REBUILD)
    except RebuildBusy as exc:
        raise _busy(exc) from None
    except RebuildError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: run the same command again to resume after the last finished batch", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo(_summary(result))


def verify_command(
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10_000, help="Trips per comparison.")] = 500,
    settle: Annotated[
        float, typer.Option("--settle", min=0, help="Seconds to wait for trips with pending changes to catch up.")
    ] = 5.0,
    drain: Annotated[bool, typer.Option("--drain", help="Apply the change feed first (when no worker runs).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Compare every live document with a fresh build; print each difference (exit 1 if any)."""

    async def work(_settings: Settings, engine: AsyncEngine) -> VerifyReport:
        with ProgressView("verify trip_views") as view:
            return await verify(engine, batch_size=batch_size, settle_s=settle, drain=drain, on_progress=view)

    report = run_with_engine(data_dir, work, pool_size=2, timeouts=REBUILD)
    if as_json:
        typer.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        for difference in report.differences:
            typer.echo(str(difference))
        typer.echo(f"checked {report.checked:,} trips: {len(report.differences)} difference(s)")
    if not report.clean:
        raise typer.Exit(1)


def rollback_command(name: Name = trip_view.NAME, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Switch back to the read tables the last rebuild replaced (run again to switch forward)."""

    async def work(settings: Settings, engine: AsyncEngine) -> RollbackResult:
        result = await rollback_tables(engine, projection=name)
        if settings.redis_url:
            nudger = Nudger(settings.redis_url)
            try:
                await nudger.nudge()
            finally:
                await nudger.close()
        return result

    try:
        result = run_with_engine(data_dir, work, pool_size=2, timeouts=REBUILD)
    except RebuildBusy as exc:
        raise _busy(exc) from None
    except RebuildError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"rolled back: live definition {result.definition} (kept {result.previous} for another rollback);"
        f" {result.caught_up + result.under_lock:,} trips changed since the switch were caught up"
        f" ({result.under_lock:,} under the swap's lock)"
    )


def _last_rebuild(last: dict[str, Any] | None) -> str:
    if not last:
        return "never"
    rate = f", {last['rows_per_s']:,.0f} trips/s" if last.get("rows_per_s") else ""
    return (
        f"#{last['id']} {last['state']} {last['switched_at']}: {last['rows']:,} trips"
        f" in {last['duration_s']:.1f} s{rate}"
    )


def _rebuilding(building: dict[str, Any] | None) -> str:
    if not building:
        return "-"
    return (
        f"#{building['id']} by {building['holder']} since {building['started_at']}:"
        f" {building['rows']:,} trips, parts {building['parts_done']}, {building['dirty']:,} changes captured"
    )


def status_rows(projections: Sequence[ProjectionStatus]) -> list[tuple[str, list[str]]]:
    """Rows of `tripsage projections status` about definition versions and rebuilds."""
    rebuilds = [p.rebuild for p in projections]
    return [
        ("definition (live)", [str(r.get("live_definition")) for r in rebuilds]),
        ("rebuild due", [f"yes: code is {r.get('definition')}" if r.get("rebuild_due") else "no" for r in rebuilds]),
        ("rollback to", [str(r.get("previous_definition") or "-") for r in rebuilds]),
        ("last rebuild", [_last_rebuild(r.get("last_rebuild")) for r in rebuilds]),
        ("rebuilding", [_rebuilding(r.get("rebuilding")) for r in rebuilds]),
    ]


def register(app: typer.Typer) -> None:
    """Add `rebuild`, `verify` and `rollback` to the `projections` sub-app."""
    app.command("rebuild")(rebuild_command)
    app.command("verify")(verify_command)
    app.command("rollback")(rollback_command)
