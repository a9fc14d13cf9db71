"""The worker's and the rebuild's own statement, lock and idle-in-transaction timeouts.

Request transactions get theirs from the API; the projection's processes set their own, so a stuck
lock or a hung statement fails (and is retried: `projections.poison` counts timeouts as transient)
instead of stalling the projection silently, and a session of theirs that sits idle inside a
transaction is ended by the server instead of pinning the feed horizon for everyone.

| process | `statement_timeout` | `lock_timeout` | `idle_in_transaction_session_timeout` |
|---|---|---|---|
| worker (`tripsage worker`, `tripsage up`) | 60 s | 10 s | 60 s |
| rebuild, rollback, verify | 300 s | 10 s | 60 s |

A worker batch is one statement per step over at most `batch_size` trips (milliseconds); 60 s
means something is wrong. The rebuild's switch and swaps set a shorter, transaction-local
`lock_timeout` of their own (`RebuildOptions.lock_timeout_s`) and retry; its `VACUUM` runs without a
statement timeout. In `session` pool mode the values are set once per connection; in
`transaction` mode (pgbouncer, Supavisor) session settings would leak to other clients of the
pooler, so they are set transaction-locally at the start of every transaction instead (one more
round trip per transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True, slots=True)
class SessionTimeouts:
    """Server-side timeouts of one process's sessions, in milliseconds (0: none)."""

    statement_ms: int
    lock_ms: int
    idle_in_transaction_ms: int

    def statement(self, *, local: bool) -> str:
        """One `SELECT set_config(...)` statement that sets all three (transaction-locally if `local`)."""
        values = (
            ("statement_timeout", self.statement_ms),
            ("lock_timeout", self.lock_ms),
            ("idle_in_transaction_session_timeout", self.idle_in_transaction_ms),
        )
        scope = "true" if local else "false"
        return "SELECT " + ", ".join(f"set_config('{name}', '{int(value)}', {scope})" for name, value in values)


WORKER = SessionTimeouts(statement_ms=60_000, lock_ms=10_000, idle_in_transaction_ms=60_000)
REBUILD = SessionTimeouts(statement_ms=300_000, lock_ms=10_000, idle_in_transaction_ms=60_000)


def apply_timeouts(engine: AsyncEngine, timeouts: SessionTimeouts, *, pool_mode: str = "session") -> AsyncEngine:
    """Make every session (or, behind a transaction pooler, every transaction) of `engine` use `timeouts`.

    Args:
        engine: A fresh engine of this process (no connection opened yet).
        timeouts: The values.
        pool_mode: `session` (set once per connection) or `transaction` (`SET LOCAL` per transaction).

    Returns:
        The same engine.
    """
    if pool_mode == "transaction":
        local = timeouts.statement(local=True)

        def on_begin(conn: Connection) -> None:
            conn.exec_driver_sql(local)

        event.listen(engine.sync_engine, "begin", on_begin)
    else:
        session = timeouts.statement(local=False)

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.run_async(lambda driver: driver.execute(session))

        event.listen(engine.sync_engine, "connect", on_connect)
    return engine
