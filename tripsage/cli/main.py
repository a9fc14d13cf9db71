"""The `tripsage` console script."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated

import typer
import uvicorn

from core.auth import mint_token
from core.embedded import DEFAULT_DATA_DIR, dev_secrets, dev_user_id
from core.migrate import migrate as run_migrations
from core.settings import Settings
from tripsage.app import create_app
from tripsage.cli import keys as keys_cli
from tripsage.cli import projections as projections_cli
from tripsage.cli.support import DataDir, Host, Port, ensure_port_free, load_settings, resolved_settings
from tripsage.logs import quiet_dependencies
from workers.jobs import run_worker
from workers.jobs import serve as serve_worker

app = typer.Typer(help="TripSage CQRS service.", no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(keys_cli.app, name="keys")
app.add_typer(projections_cli.app, name="projections")
DEV_EMAIL = "dev@example.com"


@app.callback()
def _quiet() -> None:
    """TripSage CQRS service."""
    quiet_dependencies()  # before any subcommand imports pgserver


async def _serve(settings: Settings, host: str, port: int) -> None:
    # The app's lifespan ends its live streams on SIGTERM/SIGINT (queries.live.shutdown).
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_config=None, access_log=False)
    await uvicorn.Server(config).serve()


@app.command()
def up(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Quickstart: migrate, then run the API and the projection worker (embedded servers if unset)."""
    ensure_port_free(host, port)
    with resolved_settings(data_dir) as settings:
        assert settings.database_url is not None
        run_migrations(settings.database_url)
        if settings.supabase_jwt_secret:
            secret = settings.supabase_jwt_secret
            dev_token = mint_token(secret=secret, email=DEV_EMAIL, sub=dev_user_id(DEV_EMAIL, secret))
            typer.echo(f"TripSage API: http://{host}:{port}  (docs: http://{host}:{port}/docs)")
            typer.echo(f"Dev token ({DEV_EMAIL}, 1 h; `make token EMAIL=...` mints more):\n{dev_token}")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops: no traceback
            # Only `up` offers the web app's "continue as demo user" (loopback clients only: tripsage.demo).
            asyncio.run(serve_worker(settings, until=_serve(settings.with_demo_login(), host, port)))


@app.command()
def worker(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Run the projection worker only (arq; `arq workers.main.WorkerSettings` works too)."""
    with resolved_settings(data_dir) as settings:
        run_worker(settings)


@app.command()
def serve(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Run the API only (uvicorn)."""
    ensure_port_free(host, port)
    with resolved_settings(data_dir) as settings, contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: no traceback
        asyncio.run(_serve(settings, host, port))


@app.command()
def migrate(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Apply schema migrations (idempotent)."""
    with resolved_settings(data_dir, redis=False) as settings:
        assert settings.database_url is not None
        run_migrations(settings.database_url)
        typer.echo("migrations applied")


@app.command()
def token(
    user: Annotated[str, typer.Option("--user", help="The user's email.")],
    sub: Annotated[
        str | None,
        typer.Option(
            help="The user id (UUID). If absent: in embedded mode derived from the email (same email, same user), else random."
        ),
    ] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
    service_role: Annotated[bool, typer.Option("--service-role", help="Mint a service_role key.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Mint a Supabase-format access token signed with the configured secret."""
    settings = load_settings()
    secret = settings.supabase_jwt_secret
    if not secret and settings.embedded:
        secret = dev_secrets(data_dir)["jwt_secret"]
    if not secret:
        raise typer.BadParameter("SUPABASE_JWT_SECRET is not set")
    try:
        subject = uuid.UUID(sub) if sub else None
    except ValueError as exc:
        raise typer.BadParameter("--sub must be a UUID") from exc
    if subject is None and settings.embedded and not service_role:
        subject = dev_user_id(user, secret)
    typer.echo(
        mint_token(
            secret=secret,
            email=user,
            sub=subject,
            ttl=ttl,
            service_role=service_role,
            audience=settings.jwt_audience,
        )
    )


def main() -> None:
    """Entry point of the console script."""
    app()
