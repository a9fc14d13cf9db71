"""`arq workers.main.WorkerSettings`: the projection worker for arq's own CLI.

arq reads the class's attributes as `Worker` options, so `redis_settings` must be a value when this
module is imported: it comes from `REDIS_URL` (environment or `.env`), else from the embedded Redis
of the default data dir, started or attached to as `tripsage up` does. The database is resolved
the same way in `on_startup` (`workers.jobs.startup`), which keeps the projector in `ctx`.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.worker import Function

from core.embedded import DEFAULT_DATA_DIR, start_redis
from core.settings import Settings
from workers.jobs import CRON_JOBS, FUNCTIONS, POLL_DELAY_S, shutdown, startup, worker_redis_settings

_embedded: list[Any] = []  # keeps the embedded Redis alive (it stops with its last handle)


def resolve_redis_url() -> str:
    """`REDIS_URL` (environment or `.env`), else the embedded Redis of the default data dir (started if needed)."""
    try:
        configured = Settings().redis_url
    except ValueError:  # incomplete settings: on_startup reports them; Redis only needs its URL
        configured = os.environ.get("REDIS_URL")
    if configured:
        return configured
    url, handle = start_redis(DEFAULT_DATA_DIR)
    _embedded.append(handle)
    return url


class WorkerSettings:
    """arq worker options (see `workers.jobs.worker_options` for what each one is for)."""

    functions: ClassVar[list[Function]] = FUNCTIONS
    cron_jobs: ClassVar[list[CronJob]] = CRON_JOBS
    on_startup = startup
    on_shutdown = shutdown
    redis_settings: ClassVar[RedisSettings] = worker_redis_settings(resolve_redis_url())
    poll_delay: ClassVar[float] = POLL_DELAY_S
    keep_result: ClassVar[int] = 0
    max_jobs: ClassVar[int] = 4
    job_completion_wait: ClassVar[int] = 5
    health_check_interval: ClassVar[int] = 10
