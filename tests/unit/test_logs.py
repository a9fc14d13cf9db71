"""Logging set-up: JSON lines off a terminal, text on one; the level from LOG_LEVEL."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import Literal

import orjson
import pytest

from core.settings import Settings
from tripsage.logs import JsonFormatter, configure_logging


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
