"""The FastAPI app factory: no module-level app or engine; everything opens in the lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

import commands.api
import queries.api
from core.auth import TokenVerifier, load_jwks
from core.db import Database, Timeouts
from core.deps import AppContext
from core.errors import install_error_handlers
from core.jwks import jwks_file
from core.limits import RateLimiter
from core.nudge import Nudger
from core.openapi import declare_bearer_auth
from core.settings import Settings
from projections import metrics as projection_metrics
from queries import consistency
from queries.documents import DocumentCache
from queries.live.hub import LiveHub
from queries.live.shutdown import streams_end_on_signals
from queries.live.stream import LiveStreams
from tripsage import demo, ops, web
from tripsage.middleware import GuardMiddleware

log = logging.getLogger("tripsage.app")


def build_context(settings: Settings) -> AppContext:
    """Open what the app needs for its lifetime (engines, verifier, nudger).

    Args:
        settings: Fully resolved settings (URLs and secrets set).

    Returns:
        The app context.
    """
    if settings.database_url is None or settings.redis_url is None:
        raise RuntimeError("settings must be resolved (embedded servers started) before the app is built")
    verifier = TokenVerifier(
        secret=settings.supabase_jwt_secret,
        audience=settings.jwt_audience,
        jwks=load_jwks(settings.supabase_jwks) if settings.supabase_jwks else None,
        supabase_url=settings.supabase_url,
        jwks_path=jwks_file(settings.supabase_jwks),
    )
    timeouts = Timeouts(
        statement_ms=settings.db_statement_timeout_ms,
        lock_ms=settings.db_lock_timeout_ms,
        idle_in_transaction_ms=settings.db_idle_in_transaction_timeout_ms,
        connect_s=settings.db_connect_timeout_s,
        pool_s=settings.db_pool_timeout_s,
    )
    db = Database.open(
        settings.database_url,
        settings.effective_read_url,
        pool_mode=settings.db_pool_mode,
        timeouts=timeouts,
        pool_size=settings.db_pool_size,
        pool_overflow=settings.db_pool_overflow,
    )
    limiter = RateLimiter(settings.redis_url, timeout_s=settings.rate_limit_redis_timeout_ms / 1000)
    return AppContext(
        settings=settings,
        db=db,
        verifier=verifier,
        nudger=Nudger(settings.redis_url),
        provisioned=set(),
        limiter=limiter,
    )


class TripSageAPI(FastAPI):
    """FastAPI with `LiveStreams` outside every middleware: an idle live stream keeps none of their frames."""

    def build_middleware_stack(self) -> ASGIApp:
        """The usual stack, wrapped by `LiveStreams` (the guards log a stream as it opens)."""
        return LiveStreams(super().build_middleware_stack())


def create_app(settings: Settings) -> FastAPI:
    """Create the API application.

    Args:
        settings: Fully resolved settings.

    Returns:
        The app; its lifespan opens and closes the database and Redis connections.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = build_context(settings)
        app.state.ctx = ctx
        app.state.documents = DocumentCache(settings.read_cache_mb * 2**20)
        app.state.live = LiveHub(ctx.db.engine, consistency.listener_for(str(settings.database_url)))
        # Move everything allocated so far (modules, routes, schemas) out of the collector's sight:
        # full collections then skip it, which measurably cuts tail latency under load.
        gc.collect()
        gc.freeze()
        try:
            with streams_end_on_signals(app.state.live):
                yield
        finally:
            await app.state.live.close()
            await consistency.close_listener(str(settings.database_url))
            await ctx.nudger.close()
            await ctx.limiter.close()
            await ctx.db.dispose()

    app = TripSageAPI(
        title="TripSage",
        version="0.1.0",
        summary="Trip planning as a CQRS service: async commands, projected read model, one-statement queries.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    declare_bearer_auth(app)
    projection_metrics.register()
    app.add_middleware(GuardMiddleware)
    # Routes are matched in order, and each route passed costs a request measurable time (~3 µs):
    # the trip reads and commands (most of the traffic) come first, every router mounted on the app
    # itself (a router of routers is matched again at each level). No two routers share a path + method.
    queries.api.include_trip_reads(app)
    commands.api.include_trip_commands(app)
    queries.api.include_other_reads(app)
    commands.api.include_other_commands(app)
    app.include_router(ops.router)
    app.include_router(demo.router)
    app.include_router(web.router)
    return app
