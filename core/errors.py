"""RFC 9457 problem+json errors: one shape for every failure, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
import orjson
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, EmulatedDBAPIException
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from core.auth import AuthError
from core.failures import REQUEST_ID, RETRY_AFTER_S, rls_refusal, sqlstate, unavailable_cause

log = logging.getLogger("tripsage.errors")
PROBLEM_JSON = "application/problem+json"

# SQLSTATEs: which database refusals are the client's fault, and how to answer them. The ones that
# say the database cannot serve now are in `core.failures` (503); 42501 (RLS refused a write the
# service decided to make) is the service's fault, never the client's: 503 and an ERROR log.
SQLSTATE_STATUS = {
    "23505": (409, "a record with these unique values already exists"),
    "23503": (404, "a referenced record does not exist"),
    "23514": (422, "a value is out of its allowed range"),
    "23502": (422, "a required value is missing"),
    "22001": (422, "a value is too long"),
    "22003": (422, "a number is out of range"),
    "22007": (422, "a date or time is invalid"),
    "22008": (422, "a date or time is out of range"),
    "22P02": (422, "a value has the wrong format"),
    "22021": (422, "a string contains an invalid character"),
    "54000": (413, "a value is too large"),
    "40001": (409, "a concurrent change conflicted; retry"),
    "40P01": (409, "a concurrent change conflicted; retry"),
}


class ApiError(Exception):
    """An error a client can act on, rendered as problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        """Create the error.

        Args:
            status: The HTTP status.
            detail: What went wrong, for a person.
            errors: Field errors as `{"loc": [...], "msg": ...}`.
            headers: Extra response headers.
            title: The title (the status phrase by default).
        """
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})
        self.title = title or HTTPStatus(status).phrase


def not_found(what: str = "resource") -> ApiError:
    """404 for something absent or not visible to the caller (existence is never leaked)."""
    return ApiError(404, f"{what} not found")


def problem_response(
    status: int,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Response:
    """Render a problem+json response.

    Args:
        status: The HTTP status.
        detail: What went wrong.
        errors: Field errors, for validation problems.
        headers: Extra headers.
        title: Title override.

    Returns:
        The response.
    """
    phrase = title or HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": f"https://tripsage.dev/problems/{phrase.lower().replace(' ', '-')}",
        "title": phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _loc(loc: Sequence[Any]) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


def validation_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Turn pydantic's errors into the contract's `[{loc, msg}]` without echoing input values."""
    return [{"loc": _loc(err.get("loc", ())), "msg": str(err.get("msg", "invalid"))} for err in errors]


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return problem_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers, title=exc.title)


async def _auth_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    challenge = "Bearer" if exc.missing else 'Bearer error="invalid_token"'
    return problem_response(401, exc.detail, headers={"WWW-Authenticate": challenge})


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errs = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errs):
        return problem_response(400, "the request body is not valid JSON")
    return problem_response(422, "the request is invalid", errors=validation_errors(errs))


PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this request's path.

    Starlette's 405 names the methods of the first route whose path matched, but one path's
    methods are split across routers (queries and commands): ask every route, for each method.
    """
    allowed = []
    for method in PROBED_METHODS:
        probe = {**request.scope, "method": method, "fastapi": {}}
        probe.pop("route", None)
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(exc.status_code, str(exc.detail), headers=headers)


UNAVAILABLE = "the database or Redis is unavailable right now; retry shortly"
RLS_REFUSED = "the database refused the service's own write; check auth.uid()"
RETRY = {"Retry-After": str(RETRY_AFTER_S)}


def _where(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def _unavailable(request: Request, cause: BaseException) -> Response:
    code = getattr(cause, "sqlstate", None)
    log.warning(
        "dependency unavailable, answered 503: %s%s on %s (request %s)",
        type(cause).__name__,
        f" SQLSTATE {code}" if code else "",
        _where(request),
        REQUEST_ID.get(),
    )
    return problem_response(503, UNAVAILABLE, headers=RETRY)


async def _db_error(request: Request, exc: Exception) -> Response:
    """Database and dependency failures: 503 when the dependency cannot serve, the mapped 4xx, else 500."""
    cause = unavailable_cause(exc)
    if cause is not None:
        return _unavailable(request, cause)
    refusal = rls_refusal(exc)
    if refusal is not None:
        log.error(
            "row-level security refused the service's own write: SQLSTATE 42501 on table %s in %s (request %s): %s",
            refusal.table,
            _where(request),
            REQUEST_ID.get(),
            refusal.message,
        )
        return problem_response(503, RLS_REFUSED, headers=RETRY)
    code = sqlstate(exc)
    mapped = SQLSTATE_STATUS.get(str(code))
    if mapped is None:
        log.error("database error %s in %s (request %s)", code, _where(request), REQUEST_ID.get(), exc_info=exc)
        return problem_response(500, "internal error")
    status, detail = mapped
    return problem_response(status, detail)


async def _unexpected(request: Request, exc: Exception) -> Response:
    cause = unavailable_cause(exc)
    if cause is not None:  # wrapped in something no handler above knows: still the dependency's fault
        return _unavailable(request, cause)
    log.error("unhandled error in %s (request %s)", _where(request), REQUEST_ID.get(), exc_info=exc)
    return problem_response(500, "internal error")


DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    PoolTimeoutError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    EmulatedDBAPIException,  # SQLAlchemy's adapter error, raised untranslated by `engine.raw_connection()`
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
"""Handled by `_db_error`. Registered by class, not under `Exception`: Starlette re-raises what the
`Exception` handler answered (logged as "Exception in ASGI application", closing the client's
keep-alive connection); a handler registered by class answers and the connection stays usable."""


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on an app."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error in DEPENDENCY_ERRORS:
        app.add_exception_handler(error, _db_error)
    app.add_exception_handler(Exception, _unexpected)
