"""`uvicorn tripsage.api.main:app` and `python -m tripsage.api.main`: the API, configured from the environment.

Importing this module starts nothing: `app` resolves its settings (`.env` and the environment,
with embedded PostgreSQL and Redis under `.tripsage/` where `DATABASE_URL`/`REDIS_URL` are unset,
exactly as `tripsage serve` does) when the server runs its lifespan, then builds the app of
`tripsage.app.create_app` and runs that app's lifespan inside its own. Migrations are not applied
here: run `tripsage migrate` (or `tripsage up`) first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from contextlib import AsyncExitStack
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from core.embedded import DEFAULT_DATA_DIR, resolve_settings
from core.settings import Settings, describe_errors
from tripsage.app import create_app
from tripsage.logs import configure_logging, quiet_dependencies


class EnvironmentApp:
    """An ASGI app whose settings and servers are resolved at start-up, not at import."""

    def __init__(self, data_dir: Path = DEFAULT_DATA_DIR) -> None:
        """Create the app; nothing is read or started yet.

        Args:
            data_dir: The embedded servers' data dir (embedded mode only).
        """
        self.data_dir = data_dir
        self.api: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call: the lifespan here, everything else by the built app."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.api is None:
            raise RuntimeError("tripsage.api.main:app needs its lifespan (uvicorn's default `--lifespan auto`)")
        await self.api(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Run the lifespan protocol; a start-up failure is reported as the server expects.

        As Starlette does, a failed start-up sends `lifespan.startup.failed` with the reason (uvicorn
        logs it as one line and exits) and then raises it (for servers and test managers that wait
        for an exception).
        """
        await receive()  # lifespan.startup
        async with AsyncExitStack() as stack:
            try:
                await self._start(stack)
            except ValidationError as exc:
                failure: str | None = describe_errors(exc)
            except Exception as exc:  # the server reports it and exits; nothing to serve
                failure = f"{type(exc).__name__}: {exc}"
            else:
                failure = None
            if failure is not None:
                await send({"type": "lifespan.startup.failed", "message": failure})
                raise RuntimeError(failure)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            self.api = None
        await send({"type": "lifespan.shutdown.complete"})

    async def _start(self, stack: AsyncExitStack) -> None:
        quiet_dependencies()
        settings, services = await asyncio.to_thread(resolve_settings, Settings(), self.data_dir)
        stack.callback(services.stop)
        configure_logging(settings)
        api = create_app(settings)
        await stack.enter_async_context(api.router.lifespan_context(api))
        self.api = api


app = EnvironmentApp()


def main() -> None:
    """Serve `app` with uvicorn on `HOST`:`PORT` (default 127.0.0.1:8000); Ctrl-C stops it."""
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after its clean shut-down
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
