"""Admin reads for operators holding the `service_role` key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from core.deps import ContextDep, ServicePrincipal
from projections.status import read_report

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get(
    "/projections",
    summary="Projection status",
    responses={
        401: {"description": "Not authenticated"},
        403: {"description": "A service_role token is required"},
    },
)
async def projection_status(ctx: ContextDep, _service: ServicePrincipal) -> dict[str, Any]:
    """Per projection: version, backlog, lag (positions and seconds), dead letters, last heartbeat."""
    async with ctx.db.engine.connect() as conn:
        report = await read_report(conn)
    return report.to_json()
