"""`Idempotency-Key` on POST commands: a retry returns the first response and creates nothing.

The key lives in the command's own transaction: the first request takes a transaction-scoped
advisory lock on (caller, key), runs the command, and stores its response in `idempotency_keys`
before committing, so a failed command leaves no key behind and a stored key always belongs to a
committed write. A second request with the same key

- finds the lock taken: the first is still running → 409 (retry later);
- finds the stored row: same request → the stored status, headers and body; another request
  (method, path or canonical body differ) → 422.

A key is scoped to the caller (RLS and the primary key `(user_id, key)`). Keys are kept for
`KEEP_KEYS_FOR` (a retry window far longer than any client's); the worker prunes older ones hourly
(`prune_keys`, in bounded batches over the `created_at` index), so the table stays bounded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from commands.unit import UnitOfWork
from core.errors import ApiError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
STORED_HEADERS = ("location", "etag", "x-consistency-token")
KEEP_KEYS_FOR = timedelta(hours=24)
PRUNE_BATCH = 5000

PRUNE = text(
    """
    DELETE FROM idempotency_keys
    WHERE ctid = ANY(ARRAY(
      SELECT ctid FROM idempotency_keys WHERE created_at < now() - CAST(:keep AS interval) ORDER BY created_at LIMIT :batch
    ))
    """
)
"""Delete one bounded batch of keys older than the retry window (walks the `created_at` index)."""

BEGIN = text(
    """
    SELECT pg_try_advisory_xact_lock(hashtextextended(CAST(:user_id AS text) || '/' || :key, 0)) AS acquired,
           k.request_hash, k.status_code, k.response_headers, k.response_body
    FROM (SELECT 1) AS one
    LEFT JOIN idempotency_keys AS k ON k.user_id = :user_id AND k.key = :key
    """
)
"""Take the key's lock (never waiting) and read what an earlier request stored under the key."""

SAVE = text(
    """
    INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response_headers, response_body)
    VALUES (:user_id, :key, :request_hash, :status_code, CAST(:headers AS jsonb), :body)
    ON CONFLICT (user_id, key) DO NOTHING
    RETURNING 1
    """
)
"""Store the response with the command's writes (nothing when another request stored the key first)."""


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A POST that carried an `Idempotency-Key`: the key and the fingerprint of the request."""

    key: str
    request_hash: str


def fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 of the method, the path and the canonical JSON body (sorted keys, sent fields only)."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(f"{method} {path}\n".encode() + canonical).hexdigest()


def idempotent_request(key: str | None, method: str, path: str, body: Any) -> IdempotentRequest | None:
    """The idempotency of a POST, or None without the header; 422 for a key of bad length."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ApiError(
            422,
            "the request is invalid",
            errors=[{"loc": ["header", HEADER], "msg": f"must be 1 to {MAX_KEY_LENGTH} characters"}],
        )
    return IdempotentRequest(key, fingerprint(method, path, body))


async def begin(uow: UnitOfWork, request: IdempotentRequest) -> Response | None:
    """Claim the key for this transaction, or answer from what the first request stored.

    Args:
        uow: The command's unit of work.
        request: The key and fingerprint.

    Returns:
        The first response to replay, or None when this request is the first: run the command.

    Raises:
        ApiError: 409 while the first request runs; 422 when the key was used for another request.
    """
    params = {"user_id": uow.user_id, "key": request.key}
    row = (await uow.session.execute(BEGIN, params)).mappings().one()
    if not row["acquired"]:
        raise ApiError(409, "a request with this Idempotency-Key is still running", headers={"Retry-After": "1"})
    if row["request_hash"] is None:
        return None
    if row["request_hash"] != request.request_hash:
        raise ApiError(
            422,
            "this Idempotency-Key was used for a different request",
            errors=[{"loc": ["header", HEADER], "msg": "already used with another method, path or body"}],
        )
    headers = dict(row["response_headers"] or {}) | {REPLAYED_HEADER: "true"}
    return Response(
        bytes(row["response_body"] or b""),
        status_code=row["status_code"],
        headers=headers,
        media_type="application/json",
    )


async def save(uow: UnitOfWork, request: IdempotentRequest, response: Response) -> None:
    """Store the response in the command's transaction (committed with its writes).

    Raises:
        ApiError: 409 when a request with the same key committed meanwhile (this one is rolled back;
            a retry gets the stored response).
    """
    headers = {name: value for name, value in response.headers.items() if name in STORED_HEADERS}
    params = {
        "user_id": uow.user_id,
        "key": request.key,
        "request_hash": request.request_hash,
        "status_code": response.status_code,
        "headers": orjson.dumps(headers).decode(),
        "body": bytes(response.body),
    }
    if (await uow.session.execute(SAVE, params)).first() is None:
        raise ApiError(409, "a request with this Idempotency-Key completed meanwhile; retry to get its response")


async def prune_keys(engine: AsyncEngine, *, keep: timedelta = KEEP_KEYS_FOR, batch: int = PRUNE_BATCH) -> int:
    """Delete stored keys older than `keep`, one short transaction per batch (as the login role).

    Args:
        engine: An engine of the login role (the worker's).
        keep: How long a key still replays its first response.
        batch: Rows per transaction.

    Returns:
        How many keys were deleted.
    """
    deleted = 0
    while True:
        async with engine.begin() as conn:
            count = (await conn.execute(PRUNE, {"keep": keep, "batch": batch})).rowcount
        deleted += count
        if count < batch:
            return deleted
