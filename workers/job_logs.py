"""arq's per-job log lines at DEBUG: two INFO lines per nudge are noise at the rate commands arrive.

arq logs each job's start (`→`) and end (`←`), and each health record, at INFO from
`arq.worker`. Under load that is two lines per command (about 1 MB a minute in the perf run) and
says nothing the projection metrics do not. The filter demotes exactly those records to DEBUG;
arq's start-up, shut-down, retry-exhausted and failure lines keep their levels.
"""

from __future__ import annotations

import logging

ARQ_LOGGER = "arq.worker"
PER_JOB_FUNCTIONS = frozenset({"run_job", "record_health"})
"""The arq `Worker` methods whose INFO lines are per job (or per health beat)."""


class PerJobLinesAtDebug(logging.Filter):
    """Demote arq's per-job INFO records to DEBUG, and drop them unless DEBUG is enabled."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether the (possibly demoted) record is still wanted."""
        if record.levelno != logging.INFO or record.funcName not in PER_JOB_FUNCTIONS:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_job_lines() -> None:
    """Install the filter on arq's worker logger (once, however often a worker starts)."""
    logger = logging.getLogger(ARQ_LOGGER)
    if not any(isinstance(existing, PerJobLinesAtDebug) for existing in logger.filters):
        logger.addFilter(PerJobLinesAtDebug())
