"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from sqlalchemy import text
from starlette.responses import JSONResponse, Response

from core.deps import AppContext, ContextDep
from projections import metrics as projection_metrics
from projections.horizon import horizon_note
from projections.rebuild.status import readiness_notes
from projections.status import heartbeat_age

router = APIRouter(tags=["operations"])
CHECK_TIMEOUT_S = 2.0
WORKER_STALE_S = 15.0


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """200 while the process lives."""
    return {"status": "ok"}


async def _check_database(ctx: AppContext) -> None:
    async with ctx.db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_read_database(ctx: AppContext) -> None:
    async with ctx.db.read_engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_redis(ctx: AppContext) -> None:
    assert ctx.settings.redis_url is not None
    client = Redis.from_url(ctx.settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _check_worker(ctx: AppContext) -> str | None:
    """The projection worker's heartbeat: None when no worker ever registered (API-only use)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), ctx.db.engine.connect() as conn:
            age = await heartbeat_age(conn)
    except Exception:  # noqa: BLE001  # the database check already reports an unreachable database
        return None
    if age is None:
        return None
    return "ok" if age <= WORKER_STALE_S else f"failed: no worker heartbeat for {age:.0f} s"


async def readiness(ctx: AppContext) -> dict[str, str]:
    """Check each dependency; returns `{name: "ok" | reason}`."""
    checks = {"database": _check_database, "redis": _check_redis}
    if ctx.db.read_engine is not ctx.db.engine:  # READ_DATABASE_URL: the queries' replica
        checks["read_database"] = _check_read_database
    result: dict[str, str] = {}
    for name, check in checks.items():
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await check(ctx)
            result[name] = "ok"
        except Exception as exc:  # noqa: BLE001  # any failure means not ready; the reason is reported
            result[name] = f"failed: {type(exc).__name__}"
    worker = await _check_worker(ctx)
    if worker is not None:
        result["worker"] = worker
    return result


@router.get("/readyz", summary="Readiness", responses={503: {"description": "A dependency is not ready"}})
async def readyz(ctx: ContextDep) -> Response:
    """200 when the database and Redis answer (and the projection worker beats, once one ran), else 503."""
    checks = await readiness(ctx)
    ready = all(value == "ok" for value in checks.values())
    body: dict[str, object] = {"status": "ok" if ready else "unavailable", "checks": checks}
    notes = await readiness_notes(ctx.db.engine)
    if horizon := await horizon_note(ctx.db.engine):
        notes["feed_horizon"] = horizon  # an old open transaction stalls the projection: not the API's fault
    if notes:
        body["notes"] = notes  # e.g. a projection rebuild is due: informational, the old model is served
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(ctx: ContextDep) -> Response:
    """Prometheus text exposition (restrict it at the network)."""
    await projection_metrics.COLLECTOR.refresh(ctx.db.engine)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
