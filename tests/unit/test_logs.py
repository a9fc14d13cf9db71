"""Logging set-up: JSON lines off a terminal, text on one; the level from LOG_LEVEL."""

from __future__ import annotations

import io
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import Literal

import orjson
import pytest
from platformdirs.api import RuntimeDirWarning

from core.failures import REQUEST_ID
from core.settings import Settings
from tripsage.logs import JsonFormatter, configure_logging, quiet_dependencies
from workers.job_logs import ARQ_LOGGER, PerJobLinesAtDebug, quiet_job_lines


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _record(exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("tripsage.test", logging.WARNING, __file__, 1, "hello %s", ("world",), exc_info)


def test_json_lines() -> None:
    entry = orjson.loads(JsonFormatter().format(_record()))
    assert entry["level"] == "WARNING" and entry["logger"] == "tripsage.test" and entry["msg"] == "hello world"
    assert entry["ts"].endswith("+00:00")
    assert "exc_type" not in entry


def test_json_lines_name_the_exception() -> None:
    entry = orjson.loads(JsonFormatter().format(_record(ValueError("boom"))))
    assert entry["exc_type"] == "ValueError"
    assert "boom" in entry["exc"]


@pytest.mark.parametrize(
    ("log_format", "tty", "expected"),
    [(None, False, "json"), (None, True, "text"), ("text", False, "text"), ("json", True, "json")],
)
def test_format_follows_setting_then_terminal(
    monkeypatch: pytest.MonkeyPatch, log_format: Literal["json", "text"] | None, tty: bool, expected: str
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(stream, "isatty", lambda: tty)
    monkeypatch.setattr(sys, "stderr", stream)
    settings = Settings.model_construct(log_level="DEBUG", log_format=log_format)  # no environment read
    configure_logging(settings)
    root = logging.getLogger()
    assert root.level == logging.DEBUG and len(root.handlers) == 1
    logging.getLogger("tripsage.test").info("ready")
    line = stream.getvalue().strip()
    if expected == "json":
        assert orjson.loads(line)["msg"] == "ready"
    else:
        assert line.endswith("INFO tripsage.test: ready")


def test_json_lines_carry_extra_fields_and_the_current_request_id() -> None:
    record = _record()
    record.__dict__.update(route="/api/trips/{trip_id}", status=201)
    token = REQUEST_ID.set("req-7")
    try:
        entry = orjson.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert (entry["route"], entry["status"], entry["request_id"]) == ("/api/trips/{trip_id}", 201, "req-7")
    assert "args" not in entry and "funcName" not in entry  # the record's own attributes stay out


def test_quiet_dependencies_drops_the_runtime_dir_warning_and_pgserver_info_only() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_dependencies()
        warnings.warn("XDG_RUNTIME_DIR is not set", RuntimeDirWarning, stacklevel=1)
        warnings.warn("something real", UserWarning, stacklevel=1)
    assert [str(item.message) for item in caught] == ["something real"]
    pgserver = logging.getLogger("pgserver")
    assert not pgserver.isEnabledFor(logging.INFO) and pgserver.isEnabledFor(logging.WARNING)


def test_uvicorn_logs_go_through_our_handler_and_its_access_log_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    uvicorn_logger = logging.getLogger("uvicorn")
    monkeypatch.setattr(uvicorn_logger, "handlers", [logging.NullHandler()])
    monkeypatch.setattr(uvicorn_logger, "propagate", False)
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "disabled", False)
    configure_logging(Settings.model_construct(log_level="INFO", log_format="text"))
    assert uvicorn_logger.handlers == [] and uvicorn_logger.propagate
    assert logging.getLogger("uvicorn.access").disabled


@pytest.mark.parametrize(
    ("function", "level", "debug", "kept", "level_after"),
    [
        ("run_job", logging.INFO, False, False, logging.DEBUG),
        ("run_job", logging.INFO, True, True, logging.DEBUG),
        ("record_health", logging.INFO, False, False, logging.DEBUG),
        ("run_job", logging.WARNING, False, True, logging.WARNING),  # max retries exceeded: kept as is
        ("main", logging.INFO, False, True, logging.INFO),  # start-up and shut-down lines
    ],
)
def test_arq_per_job_lines_are_debug(
    monkeypatch: pytest.MonkeyPatch, function: str, level: int, debug: bool, kept: bool, level_after: int
) -> None:
    monkeypatch.setattr(logging.getLogger(ARQ_LOGGER), "level", logging.DEBUG if debug else logging.INFO)
    record = logging.LogRecord(ARQ_LOGGER, level, "worker.py", 1, "%6.2fs → %s", (0.01, "job"), None, func=function)
    assert PerJobLinesAtDebug().filter(record) is kept
    assert record.levelno == level_after and record.levelname == logging.getLevelName(level_after)


def test_the_job_line_filter_is_installed_once() -> None:
    logger = logging.getLogger(ARQ_LOGGER)
    quiet_job_lines()
    quiet_job_lines()
    assert sum(isinstance(item, PerJobLinesAtDebug) for item in logger.filters) == 1
