"""`POST /api/demo/session`: the web app's "continue as demo user", for `tripsage up` on this machine only.

Off (404) unless the settings came from `Settings.with_demo_login()`, which only `tripsage up`
calls; even then it answers only a loopback client that addressed a loopback host name (so a page
of another site cannot reach it by rebinding its name to 127.0.0.1). It mints the token `tripsage up`
prints: the dev user's, signed with the configured HS256 secret, for one hour. Not in the OpenAPI
document: it is not part of the API.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Request, Response

from core.auth import mint_token
from core.deps import ContextDep
from core.embedded import dev_user_id
from core.errors import not_found

router = APIRouter(include_in_schema=False)
DEMO_EMAIL = "dev@example.com"
"""The demo user: the same one as the token `tripsage up` prints."""
DEMO_TTL_S = 3600
LOOPBACK_NAMES = frozenset({"localhost"})


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The name part of a `Host` header (`[::1]:8000` → `[::1]`, `localhost:8000` → `localhost`)."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def local_request(request: Request) -> bool:
    """True when both the peer and the host it addressed are loopback."""
    peer = request.client.host if request.client else ""
    return _is_loopback(peer) and _is_loopback(_host_name(request.headers.get("host", "")))


@router.post("/api/demo/session")
async def demo_session(request: Request, response: Response, ctx: ContextDep) -> dict[str, Any]:
    """A demo user's access token (embedded quickstart only)."""
    secret = ctx.settings.supabase_jwt_secret
    if not (ctx.settings.demo_login and secret and local_request(request)):
        raise not_found()
    response.headers["Cache-Control"] = "no-store"
    token = mint_token(
        secret=secret,
        email=DEMO_EMAIL,
        sub=dev_user_id(DEMO_EMAIL, secret),
        ttl=DEMO_TTL_S,
        audience=ctx.settings.jwt_audience,
    )
    return {"access_token": token, "token_type": "bearer", "expires_in": DEMO_TTL_S, "email": DEMO_EMAIL}
