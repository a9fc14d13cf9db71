"""The web app: its page at every client-side route, and its ES modules and stylesheet, from the package.

No build step: `tripsage/static/` holds what the browser runs. The page allows scripts and styles
from this origin only (no inline script); every asset is sent with `nosniff` and an ETag. The
client-side routes are listed one by one, so the app never shadows `/api`, `/docs`, `/metrics`…
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response

from core.deps import ContextDep
from core.errors import not_found

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "index.html"
DEMO_OFF = b'<meta name="tripsage-demo" content="off">'
DEMO_ON = b'<meta name="tripsage-demo" content="on">'
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
APP_ROUTES = ("/", "/trips/{trip_id}", "/admin")
"""The client-side routes (`tripsage/static/js/routes.js`): each serves the page, the app draws the rest."""


@dataclass(frozen=True, slots=True)
class Asset:
    """A static file as served: bytes, media type and ETag."""

    body: bytes
    media_type: str
    etag: str


def _asset(body: bytes, media_type: str) -> Asset:
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')


@cache
def _assets() -> dict[str, Asset]:
    """Every servable file under `static/`, by its path relative to it (read once per process)."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC.rglob("*")):
        media_type = MEDIA_TYPES.get(path.suffix)
        if media_type and path.is_file():
            found[path.relative_to(STATIC).as_posix()] = _asset(path.read_bytes(), media_type)
    return found


@cache
def _page(demo: bool) -> Asset:
    """The app's page; its demo marker tells the client whether "continue as demo user" is offered."""
    body = PAGE.read_bytes()
    return _asset(body.replace(DEMO_OFF, DEMO_ON) if demo else body, "text/html; charset=utf-8")


def _send(asset: Asset, request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


async def app_page(request: Request, ctx: ContextDep) -> Response:
    """The web app's page (every client-side route)."""
    return _send(_page(ctx.settings.demo_login), request)


for _route in APP_ROUTES:
    router.add_api_route(_route, app_page, methods=["GET"])


@router.get("/static/{path:path}")
async def static_file(path: str, request: Request) -> Response:
    """A module, stylesheet or image of the web app."""
    asset = _assets().get(path)
    if asset is None:
        raise not_found("file")
    return _send(asset, request)
