"""Consistency tokens: a command's transaction id, handed out so a later query can read its write.

A token is `v1.<xid8>`: the writer's `pg_current_xact_id()`. The change feed rows of that write
carry the same xid; once none is left unprojected, the read model includes the write.
"""

from __future__ import annotations

from core.errors import ApiError

PREFIX = "v1."
HEADER = "X-Consistency-Token"
MAX_XID = 2**63 - 1


def make_token(xid: int) -> str:
    """The token for a committed transaction id."""
    return f"{PREFIX}{xid}"


def parse_token(token: str) -> int:
    """The transaction id in a token; 422 when it is not one of ours."""
    digits = token[len(PREFIX) :] if token.startswith(PREFIX) else ""
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19 or int(digits) > MAX_XID:
        raise ApiError(
            422,
            "the consistency token is invalid",
            errors=[{"loc": ["header", HEADER], "msg": "invalid consistency token"}],
        )
    return int(digits)
