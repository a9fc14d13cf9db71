"""BEGIN and the caller's role, claims and timeouts in ONE simple-query message (one round trip).

A request transaction used to open with two round trips: asyncpg's `BEGIN`, then the `set_config`
statement as a prepared statement. PostgreSQL's simple-query protocol runs a script of several
statements in one message, so `BEGIN; SELECT set_config(...), ...` costs one. A simple query has
no parameters: the values travel as quoted escape-string literals (`quote_literal`).

Read transactions (`queries.plumbing.read_transaction`) send the script themselves. Command
transactions run in an ORM session, whose transactions SQLAlchemy's asyncpg adapter begins lazily
(its own `BEGIN` on the first statement): `begin_as` sends the script on the adapter's connection
first and hands the adapter a transaction object that ends with `COMMIT`/`ROLLBACK`, so the session
commits, rolls back and begins again exactly as before, one round trip cheaper.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.util import await_

from core.auth import Principal

DB_ROLES = frozenset({"tripsage_api", "service_role"})


def quote_literal(value: str) -> str:
    """Quote a string as a PostgreSQL escape-string literal (`E'...'`).

    Escape strings mean the same whatever `standard_conforming_strings` says: backslashes and
    single quotes are doubled; every other character stands for itself.

    Args:
        value: Any text without NUL characters.

    Returns:
        The SQL literal.

    Raises:
        ValueError: When the text holds a NUL character (PostgreSQL text cannot).
    """
    if "\x00" in value:
        raise ValueError("a SQL literal cannot hold NUL characters")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def set_config_sql(settings: list[tuple[str, str]]) -> str:
    """One `SELECT set_config(..., true), ...` statement with the values as quoted literals.

    Args:
        settings: (setting name, value) pairs; names are ours, values any text without NULs.

    Returns:
        The statement (transaction-local settings).
    """
    return "SELECT " + ", ".join(f"set_config('{name}', {quote_literal(value)}, true)" for name, value in settings)


def begin_script(principal: Principal, params: dict[str, str], *, read_only: bool) -> str:
    """`BEGIN [READ ONLY]` plus one statement setting the role, both forms of the claims and the timeouts.

    Args:
        principal: The verified caller.
        params: `core.db.claim_params` of the caller (role, claims, sub, JWT role, the timeouts).
        read_only: Open a read-only transaction.

    Returns:
        The script (one simple-query message).
    """
    if principal.db_role not in DB_ROLES:  # pragma: no cover  # db_role only yields these two
        raise ValueError(f"unexpected database role {principal.db_role!r}")
    names = {"role": "role", "claims": "request.jwt.claims", "sub": "request.jwt.claim.sub"}
    names |= {"jwt_role": "request.jwt.claim.role"}
    settings = [(names.get(key, key), value) for key, value in params.items()]
    return ("BEGIN READ ONLY; " if read_only else "BEGIN; ") + set_config_sql(settings)


class _Begun:
    """The transaction a BEGIN script opened, in the shape SQLAlchemy's asyncpg adapter drives."""

    __slots__ = ("_driver",)

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    async def start(self) -> None:  # pragma: no cover  # the script started it
        """Never called: the BEGIN script already started the transaction."""
        raise RuntimeError("already started")

    async def commit(self) -> None:
        """End the transaction with COMMIT."""
        await self._driver.execute("COMMIT")

    async def rollback(self) -> None:
        """End the transaction with ROLLBACK."""
        await self._driver.execute("ROLLBACK")


def begin_as(adapter: Any, script: str) -> bool:
    """Open the adapter's next transaction with `script` (sync: runs inside SQLAlchemy's greenlet).

    Only where the adapter would have sent a plain `BEGIN` itself: default isolation, read-write,
    not deferrable, no transaction yet. Relies on the adapter's `_transaction` slot (SQLAlchemy
    2.x's asyncpg dialect); `tests/integration/test_command_statements.py` counts the round trips.

    Args:
        adapter: SQLAlchemy's `AsyncAdapt_asyncpg_connection` (`Connection.connection.dbapi_connection`).
        script: `begin_script(..., read_only=False)`.

    Returns:
        False when the adapter is not in that state (the caller sets the claims the slow way).
    """
    if (
        getattr(adapter, "_transaction", True) is not None
        or adapter.isolation_level is not None
        or adapter.readonly
        or adapter.deferrable
    ):
        return False
    driver = adapter.driver_connection
    await_(driver.execute(script))
    adapter._transaction = _Begun(driver)  # noqa: SLF001  # pylint: disable=protected-access
    return True
