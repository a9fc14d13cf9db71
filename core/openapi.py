"""OpenAPI declarations of the problem+json errors a route can answer (one place for every route)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.errors import PROBLEM_JSON


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
    413: "Body larger than 1 MiB",
    415: "Body is not application/json",
    422: "Invalid field, path id, header, query parameter or cursor (unknown or read-only fields included)",
}

BODY_ERRORS = (400, 413, 415, 422)
"""What any route with a JSON body can answer besides its own errors."""


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these error statuses; 401 and 403 (user endpoints) always."""
    return {
        status: {
            "model": Problem,
            "description": DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in sorted({401, 403, *statuses})
    }
