"""The arq side of the worker: the nudge job, start-up and shut-down, and ways to run it.

A nudge is the `project_changes` job enqueued by `core.nudge` under one fixed job id, so a burst of
commands queues one job. The job keeps no result (`keep_result=0`): a kept result under that id
would make arq refuse every later nudge. It only wakes the projection loop and returns at once,
which keeps the window in which arq drops a duplicate nudge (while the job's key exists) tiny.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Awaitable
from typing import Any

from arq.connections import RedisSettings
from arq.cron import CronJob, cron
from arq.worker import Function, Worker, func
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from commands.idempotency import prune_keys
from core.db import create_engine
from core.embedded import EmbeddedServices, resolve_settings
from core.nudge import PROJECT_JOB
from core.settings import Settings
from projections.live import prune_removals
from projections.timeouts import WORKER, apply_timeouts
from workers.job_logs import quiet_job_lines
from workers.projector import Projector, ProjectorOptions

log = logging.getLogger("tripsage.worker")

POLL_DELAY_S = 0.005
CLOSE_TIMEOUT_S = 5.0


async def project_changes(ctx: dict[str, Any]) -> None:
    """Nudge: wake this process's projection loop (the feed in PostgreSQL says what to do)."""
    projector: Projector = ctx["projector"]
    projector.wake()


async def prune_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Hourly: drop `Idempotency-Key` records past their retry window (keeps the table bounded)."""
    projector: Projector = ctx["projector"]
    deleted = await prune_keys(projector.engine)
    log.info("pruned %d idempotency key(s)", deleted)
    return deleted


async def prune_live_removals(ctx: dict[str, Any]) -> int | None:
    """Hourly: drop live-update removals past their resume window (`projections.live.RETENTION_S`)."""
    projector: Projector = ctx["projector"]
    horizon = await prune_removals(projector.engine)
    log.info("pruned live removals (resume horizon: %s)", horizon)
    return horizon


FUNCTIONS: list[Function] = [func(project_changes, name=PROJECT_JOB, keep_result=0, max_tries=1)]
CRON_JOBS: list[CronJob] = [
    cron(prune_idempotency_keys, minute=17, second=0, unique=True, keep_result=0),
    cron(prune_live_removals, minute=47, second=0, unique=True, keep_result=0),
]


async def open_projector(settings: Settings, options: ProjectorOptions | None = None) -> Projector:
    """Open the worker's engine (login role, no RLS, the worker's own timeouts) and start its projection loop.

    Args:
        settings: Resolved settings (a database URL is set).
        options: Projector tuning.

    Returns:
        The running projector; close it with `close_projector`.
    """
    if settings.database_url is None:
        raise RuntimeError("settings must be resolved before the worker starts")
    engine = create_engine(settings.database_url, pool_mode=settings.db_pool_mode, pool_size=3)
    apply_timeouts(engine, WORKER, pool_mode=settings.db_pool_mode)  # see projections.timeouts
    projector = Projector(engine, options)
    projector.start()
    return projector


async def close_projector(projector: Projector) -> None:
    """Stop the projector gracefully and close its engine."""
    try:
        await projector.aclose()
    finally:
        await projector.engine.dispose()


async def startup(ctx: dict[str, Any]) -> None:
    """Run at arq start-up (`on_startup`): resolve settings (embedded servers if unset) and open the projector in `ctx`."""
    quiet_job_lines()
    if "projector" in ctx:  # opened by the caller (`tripsage worker`, `tripsage up`)
        return
    settings: Settings | None = ctx.get("settings")
    if settings is None:
        settings, services = resolve_settings(Settings())
        ctx["services"] = services
    ctx["projector"] = await open_projector(settings, ctx.get("projector_options"))
    ctx["owns_projector"] = True


async def shutdown(ctx: dict[str, Any]) -> None:
    """Run at arq shut-down (`on_shutdown`): close what `startup` opened."""
    if ctx.pop("owns_projector", False):
        await close_projector(ctx.pop("projector"))
    services: EmbeddedServices | None = ctx.pop("services", None)
    if services is not None:
        services.stop()


def worker_redis_settings(url: str) -> RedisSettings:
    """Redis settings that ride out an outage: commands retry with backoff instead of killing the worker."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 2
    settings.conn_retries = 60
    settings.conn_retry_delay = 1
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, OSError]
    settings.retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=-1)
    return settings


def worker_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments of `arq.worker.Worker` for the projection worker.

    Args:
        settings: Resolved settings; when absent, `startup` resolves them (the `arq` CLI path).

    Returns:
        The options (functions, hooks, Redis, polling).
    """
    options: dict[str, Any] = {
        "functions": FUNCTIONS,
        "cron_jobs": CRON_JOBS,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "poll_delay": POLL_DELAY_S,
        "keep_result": 0,
        "max_jobs": 4,
        "job_completion_wait": 5,
        "health_check_interval": 10,
    }
    if settings is not None:
        assert settings.redis_url is not None
        options["redis_settings"] = worker_redis_settings(settings.redis_url)
        options["ctx"] = {"settings": settings}
    return options


def build_worker(settings: Settings, **overrides: Any) -> Worker:
    """An arq worker for resolved settings; `overrides` replace any option (e.g. `burst=True`).

    Args:
        settings: Resolved settings.
        **overrides: Worker keyword arguments to change (a `ctx` is merged).

    Returns:
        The worker (not started).
    """
    options = worker_options(settings)
    options["ctx"] = {**options["ctx"], **overrides.pop("ctx", {})}
    return Worker(**{**options, **overrides})


async def close_worker(worker: Worker) -> None:
    """`Worker.close()`, without the DeprecationWarning arq triggers in redis-py (`close` → `aclose`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Call to deprecated close", category=DeprecationWarning)
        await worker.close()


async def _stop(worker: Worker, worker_task: asyncio.Task[None], projector: Projector) -> None:
    worker_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
        await worker_task
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await close_worker(worker)
    except (TimeoutError, RedisError, OSError):
        log.warning("arq worker did not close cleanly (Redis unavailable?)")
    await close_projector(projector)


async def serve(
    settings: Settings, *, until: Awaitable[object] | None = None, options: ProjectorOptions | None = None
) -> None:
    """Run the projection worker: its projector plus an arq worker receiving nudges.

    The projector lives outside arq so that it keeps sweeping while Redis is down, and shuts down
    gracefully however arq ends.

    Args:
        settings: Resolved settings.
        until: Run until this finishes (`tripsage up`: the API server; signals are its business).
            Without it, run until SIGTERM/SIGINT (arq's handlers).
        options: Projector tuning.
    """
    projector = await open_projector(settings, options)
    worker = build_worker(settings, ctx={"projector": projector}, handle_signals=until is None)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        await (until if until is not None else worker_task)
    except asyncio.CancelledError:
        if until is not None:
            raise
        # arq's signal handler cancelled its main task: a normal stop.
    finally:
        cleanup = asyncio.create_task(_stop(worker, worker_task, projector))
        # The caller may be cancelled already (uvicorn re-raises Ctrl-C): finish the clean-up anyway.
        while not cleanup.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(cleanup)
        cleanup.result()


def run_worker(settings: Settings) -> None:
    """Run the worker in the foreground until SIGTERM/SIGINT (`tripsage worker`)."""
    asyncio.run(serve(settings))
