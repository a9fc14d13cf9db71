"""Pure-ASGI guards in front of the routes: body size (413), content type (415), request id, latency, access log."""

from __future__ import annotations

import logging
import time
import uuid

from prometheus_client import Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import problem_response
from core.failures import REQUEST_ID

MAX_BODY_BYTES = 1024 * 1024
TOO_LARGE = "the request body is larger than 1 MiB"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
REQUEST_ID_HEADER = b"x-request-id"
access_log = logging.getLogger("tripsage.access")

REQUEST_LATENCY = Histogram(
    "tripsage_http_request_duration_seconds",
    "HTTP request latency by route template, method and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class BodyTooLarge(StarletteHTTPException):
    """The request body passed the size limit while streaming.

    An HTTPException, because FastAPI turns any other exception raised while it reads a body into
    a 400; this one it re-raises, and the problem+json handler renders the 413.
    """

    def __init__(self) -> None:
        """Create the 413."""
        super().__init__(413, TOO_LARGE)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _request_id(scope: Scope) -> str:
    """The caller's `X-Request-ID` when it is a short printable token, else a new one."""
    given = _header(scope, REQUEST_ID_HEADER)
    if given and len(given) <= 128 and all(33 <= char < 127 for char in given):
        return given.decode()
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's full path template (`/api/trips/{trip_id}`), or `unmatched`.

    FastAPI (≥ 0.165) keeps an included router's routes with their own, prefix-less path and puts
    the route as included (with the prefix) in `scope["fastapi"]`; older versions put the full
    path on `scope["route"]`.
    """
    included = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(included, "path_format", None) or getattr(scope.get("route"), "path", None)
    return str(template) if template else "unmatched"


def _log_access(request_id: str, method: str, route: str, status: int, elapsed_s: float) -> None:
    """One line per request; the route template, never the path or query (they may hold secrets)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    duration_ms = round(elapsed_s * 1000, 1)
    access_log.info(
        "%s %s %d %.1f ms (request %s)",
        method,
        route,
        status,
        duration_ms,
        request_id,
        extra={
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
        },
    )


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class GuardMiddleware:
    """Rejects oversized and non-JSON bodies before any route runs, and records latency."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap an ASGI app."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = {"status": 500}
        request_id = _request_id(scope)
        REQUEST_ID.set(request_id)  # the logs of this request name it; each ASGI call runs in its own context

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        try:
            rejection = self._reject(scope)
            if rejection is not None:
                await rejection(scope, receive, send_wrapper)
                return
            # A streamed body passing the limit raises BodyTooLarge inside the app, where the
            # problem+json handler of HTTPException answers 413.
            await self.app(scope, self._limited(receive), send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            template = route_template(scope)
            status = status_holder["status"]
            REQUEST_LATENCY.labels(scope["method"], template, str(status)).observe(elapsed)
            _log_access(request_id, scope["method"], template, status, elapsed)

    @staticmethod
    def _reject(scope: Scope) -> ASGIApp | None:
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return problem_response(400, "invalid Content-Length")
            if declared > MAX_BODY_BYTES:
                return problem_response(413, TOO_LARGE)
        else:
            declared = 0
        has_body = declared > 0 or _header(scope, b"transfer-encoding") is not None
        if scope["method"] in BODY_METHODS and has_body and not _is_json(_header(scope, b"content-type")):
            return problem_response(415, "the request body must be application/json")
        return None

    @staticmethod
    def _limited(receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY_BYTES:
                    raise BodyTooLarge
            return message

        return limited
