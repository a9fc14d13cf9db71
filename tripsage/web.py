"""The small web page: paste a token, list your trips, create one (static HTML + fetch)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import HTMLResponse

router = APIRouter(include_in_schema=False)
PAGE = Path(__file__).parent / "static" / "index.html"


@cache
def _page() -> bytes:
    return PAGE.read_bytes()


@router.get("/")
async def index() -> HTMLResponse:
    """The web page."""
    return HTMLResponse(
        _page(),
        headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
        },
    )
