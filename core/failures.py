"""Which failures belong to a dependency (PostgreSQL, Redis) rather than to the request or the code.

A database that is down, restarting or out of connections, a statement or lock timeout, an
exhausted pool, a pooled connection a restart killed: the request was fine and a retry soon will
likely succeed, so the answer is 503 with `Retry-After`, never 500. The classification reads the
exception and every exception it wraps (SQLAlchemy's `orig`, `__cause__`, `__context__`), because
the same refusal arrives wrapped differently depending on whether SQLAlchemy or the driver
raised it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import asyncpg
import redis.exceptions
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

RETRY_AFTER_S = 1
"""What a 503 tells the client to wait: restarts and failovers measured here recover within a second."""

REQUEST_ID: ContextVar[str | None] = ContextVar("tripsage_request_id", default=None)
"""The current request's id (set by the HTTP middleware), for logs that must name the request."""

UNAVAILABLE_SQLSTATES = frozenset(
    {
        "53300",  # too_many_connections
        "57014",  # query_canceled: the request's statement timeout
        "55P03",  # lock_not_available: the request's lock timeout
        "25P03",  # idle_in_transaction_session_timeout
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
    }
)
"""SQLSTATEs that say the database cannot serve the request now; class 08 (connection) too."""

CONNECTION_ENDING_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "57P04",  # database_dropped
        "57P05",  # idle_session_timeout
        "25P03",  # idle_in_transaction_session_timeout
    }
)
"""SQLSTATEs the server sends as it ends the connection (FATAL): the connection never serves again."""

INSUFFICIENT_PRIVILEGE = "42501"
_RLS_TABLE = re.compile(r'row-level security policy for table "([^"]+)"')


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every exception it wraps (or groups), each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [getattr(current, "orig", None), current.__cause__, current.__context__]
        if isinstance(current, BaseExceptionGroup):  # raised out of a task group
            wrapped.extend(current.exceptions)
        todo.extend(item for item in wrapped if isinstance(item, BaseException))


def sqlstate(exc: BaseException) -> str | None:
    """The first SQLSTATE carried anywhere in the exception's chain."""
    for item in chain(exc):
        code = getattr(item, "sqlstate", None)
        if isinstance(code, str) and code:
            return code
    return None


def _is_unavailable(item: BaseException) -> bool:
    if isinstance(item, DBAPIError) and item.connection_invalidated:
        return True
    code = getattr(item, "sqlstate", None)
    if isinstance(code, str) and (code in UNAVAILABLE_SQLSTATES or code.startswith("08")):
        return True
    return isinstance(
        item,
        PoolTimeoutError  # the pool is exhausted: no connection within the pool timeout
        | OSError  # refused, reset, unreachable, and TimeoutError (a connect timeout)
        | asyncpg.exceptions.InterfaceError  # "connection is closed", "another operation is in progress"
        | asyncpg.exceptions.InternalClientError  # a connection left mid-protocol by a server that went away
        | redis.exceptions.ConnectionError
        | redis.exceptions.TimeoutError,
    )


def ends_connection(exc: BaseException) -> bool:
    """Whether the error leaves the connection it came from unusable (the server ended it, or the driver lost it).

    Such a connection must be invalidated, never pooled: the driver raises the server's FATAL
    before it has seen the socket close, and reused at that moment the connection fails the next
    request with "another operation is in progress".
    """
    code = sqlstate(exc)
    if code is not None:
        return code in CONNECTION_ENDING_SQLSTATES or code.startswith("08")
    return True  # no answer from the server: the connection's state is unknown


def unavailable_cause(exc: BaseException) -> BaseException | None:
    """The exception in the chain that makes this a dependency failure (503), or None."""
    return next((item for item in chain(exc) if _is_unavailable(item)), None)


@dataclass(frozen=True, slots=True)
class RlsRefusal:
    """Row-level security refused a write the service itself decided to make."""

    table: str | None
    message: str


def rls_refusal(exc: BaseException) -> RlsRefusal | None:
    """The refusal when the chain holds SQLSTATE 42501 (insufficient privilege / RLS), else None."""
    for item in chain(exc):
        if getattr(item, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
            message = str(getattr(item, "message", None) or item)
            table = getattr(item, "table_name", None)
            if not table and (found := _RLS_TABLE.search(message)):
                table = found.group(1)
            return RlsRefusal(table=table, message=message)
    return None
