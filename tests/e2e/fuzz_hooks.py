"""schemathesis hooks of tests/e2e/test_fuzz.py (loaded by the `st` process through SCHEMATHESIS_HOOKS).

JSON Schema cannot say "end_date >= start_date": most generated trips and activities would be
refused for their order alone (422), and the stateful phase would have few trips to work on.
Swapping a pair of valid, misordered dates keeps every case as valid or invalid as it was and
lets the fuzzer reach past the order check. Likewise the fuzzer reuses its few `Idempotency-Key`s
across different bodies, which the contract answers with 422: a valid key gets a unique suffix.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import schemathesis
from schemathesis.hooks import HookContext

IDEMPOTENCY_KEY = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_serial = itertools.count()

ORDERED: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("start_date", "end_date", date.fromisoformat),
    ("starts_at", "ends_at", datetime.fromisoformat),
)


@schemathesis.hook
def map_body(_context: HookContext, body: Any) -> Any:
    """Put a misordered pair of valid dates (or timestamps) in order."""
    if not isinstance(body, dict):
        return body
    for first, last, parse in ORDERED:
        try:
            in_order = parse(body[first]) <= parse(body[last])
        except (KeyError, TypeError, ValueError):  # absent, not a string, or not an ISO date
            continue
        if not in_order:
            body = {**body, first: body[last], last: body[first]}
    return body


@schemathesis.hook
def map_headers(_context: HookContext, headers: Any) -> Any:
    """Make a valid `Idempotency-Key` unique (an invalid one stays as generated)."""
    if not isinstance(headers, dict):
        return headers
    key = headers.get(IDEMPOTENCY_KEY)
    if isinstance(key, str) and 1 <= len(key) <= MAX_KEY_LENGTH:
        suffix = f"~{next(_serial)}"
        headers = {**headers, IDEMPOTENCY_KEY: key[: MAX_KEY_LENGTH - len(suffix)] + suffix}
    return headers
