"""OpenAPI declarations of the problem+json errors a route can answer (one place for every route)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from core.errors import PROBLEM_JSON
from core.models import drop_null_branch


class Problem(BaseModel):
    """An RFC 9457 problem document (every error response)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="`[{loc, msg}]` for validation errors")


DESCRIPTIONS = {
    400: "Malformed JSON",
    401: "Not authenticated (missing or invalid bearer token)",
    403: "Not allowed: you can see the resource but may not change it, or a token of the wrong kind",
    404: "Absent, or not visible to you",
    409: "A duplicate of a unique thing, or the same Idempotency-Key still running",
    412: "If-Match does not match the trip's current version",
    413: "Body larger than 1 MiB, or a size limit reached (itineraries per trip, activities per itinerary or trip)",
    415: "Body is not application/json",
    422: "Invalid field, path id, header, query parameter or cursor (unknown or read-only fields included)",
    429: "Rate limit reached: your per-minute budget is used up; retry after `Retry-After` seconds",
    503: "The database or Redis cannot serve the request now (down, restarting, a statement or lock timeout, "
    "the pool exhausted): retry after `Retry-After` seconds",
}

RETRY_AFTER_DOC = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}

BODY_ERRORS = (400, 413, 415, 422)
"""What any route with a JSON body can answer besides its own errors."""


def _problem_doc(status: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in (429, 503):
        doc["headers"] = RETRY_AFTER_DOC
    return doc


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these error statuses; 401 and 403 (user endpoints) always.

    503 is added to every `/api` operation by `declare_bearer_auth` (each one reads the database).
    """
    return {status: {"model": Problem, **_problem_doc(status)} for status in sorted({401, 403, *statuses})}


RATE_LIMITED = problem_responses(429)
"""`responses=` of a router or route behind a rate limit (`core.deps.COMMAND_LIMIT` and the like)."""


BEARER_SCHEME = {"type": "http", "scheme": "bearer", "description": "A Supabase access token"}


def declare_bearer_auth(app: FastAPI) -> None:
    """Declare the bearer scheme and the 503 of an unavailable database on every `/api` operation.

    Optional header and query parameters are documented as a string (or absent), not as `null`.

    `core.deps` reads the `Authorization` header itself (no `HTTPBearer` dependency to solve on
    every request), so the scheme is added to the generated document here.

    Args:
        app: The app whose `openapi()` to extend (called once; the result is cached by FastAPI).
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["HTTPBearer"] = BEARER_SCHEME
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/api/"):
                for operation in operations.values():
                    operation["security"] = [{"HTTPBearer": []}]
                    operation.setdefault("responses", {}).setdefault("503", _problem_doc(503))
                    for parameter in operation.get("parameters", []):
                        # `X | None = None` makes FastAPI document a `null` value; a header or query
                        # parameter is a string or absent, and the text "null" is not valid.
                        drop_null_branch(parameter["schema"])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document


def header_parameter(name: str, description: str, **schema: object) -> dict[str, Any]:
    """An optional string header as FastAPI documents a `Header()` parameter (for routes that read it themselves)."""
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": {"description": description, "title": name, "type": "string", **schema},
        "description": description,
    }


def path_parameter(name: str, title: str) -> dict[str, Any]:
    """A UUID path parameter as FastAPI documents one (for routes that read it with `core.deps.path_uuid`)."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid", "title": title},
    }
