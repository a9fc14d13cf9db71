"""What every `tripsage` subcommand shares: the data-dir option, settings, an engine for one job."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.embedded import DEFAULT_DATA_DIR, resolve_settings
from core.settings import Settings, describe_errors
from projections.timeouts import SessionTimeouts, apply_timeouts
from tripsage.logs import configure_logging

T = TypeVar("T")

DataDir = Annotated[Path, typer.Option("--data-dir", help="Embedded servers' data dir (embedded mode only).")]
Host = Annotated[str, typer.Option(help="Bind address.")]
Port = Annotated[int, typer.Option(help="Port.")]
__all__ = [
    "DEFAULT_DATA_DIR",
    "DataDir",
    "ensure_port_free",
    "load_settings",
    "run_with_engine",
    "resolved_settings",
]


def load_settings() -> Settings:
    """Read the settings; an unsafe or invalid configuration exits with a clear message (status 2)."""
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(describe_errors(exc), err=True)
        raise typer.Exit(2) from None


def ensure_port_free(host: str, port: int) -> None:
    """Exit with a clear message (status 1) when the API's address is taken, before anything starts.

    Binds as uvicorn will (`SO_REUSEADDR`), so a port in `TIME_WAIT` is not reported as taken.

    Args:
        host: The bind address.
        port: The port.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                reason = "is already in use (another `tripsage up` or `serve`?)"
            else:
                reason = f"cannot be bound: {exc.strerror}"
            typer.echo(
                f"error: {host}:{port} {reason}. Pick another port: `make up PORT={port + 1}`, "
                f"or `tripsage up --port {port + 1}` / `tripsage serve --port {port + 1}`.",
                err=True,
            )
            raise typer.Exit(1) from None


@contextmanager
def resolved_settings(data_dir: Path, *, redis: bool = True) -> Iterator[Settings]:
    """Resolved settings (embedded servers started where URLs are unset) with logging configured.

    The embedded servers this started stop when the block ends, however it ends.
    """
    settings, services = resolve_settings(load_settings(), data_dir, redis=redis)
    try:
        configure_logging(settings)
        yield settings
    finally:
        services.stop()


def run_with_engine(
    data_dir: Path,
    work: Callable[[Settings, AsyncEngine], Awaitable[T]],
    *,
    pool_size: int = 1,
    redis: bool = True,
    timeouts: SessionTimeouts | None = None,
) -> T:
    """Resolve settings, open an engine as the login role, run `work`, close everything.

    Args:
        data_dir: The embedded servers' data dir.
        work: The job, given the settings and the engine.
        pool_size: Connections the job may hold at once.
        redis: Whether the job needs Redis (embedded Redis is started only if so).
        timeouts: The job's own session timeouts (`projections.timeouts`), if any.

    Returns:
        What `work` returned.
    """

    async def main(settings: Settings) -> T:
        assert settings.database_url is not None
        engine = create_engine(str(settings.database_url), pool_mode=settings.db_pool_mode, pool_size=pool_size)
        if timeouts is not None:
            apply_timeouts(engine, timeouts, pool_mode=settings.db_pool_mode)
        try:
            return await work(settings, engine)
        finally:
            await engine.dispose()

    with resolved_settings(data_dir, redis=redis) as settings:
        return asyncio.run(main(settings))
