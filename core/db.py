"""The database engine, sessions and the request transaction (role and JWT claims for RLS).

One async engine per process and database URL; no sync engine anywhere. A request transaction runs
as the PostgreSQL role of the caller with the caller's JWT claims set transaction-locally: users as
`tripsage_api` (the service's own role: no BYPASSRLS, and one that Supabase's Data API cannot switch
to; migration 0007), service tokens as `service_role`. Row Level Security holds even where
application code forgot a filter. The claims are set the way both definitions of `auth.uid()` that a
Supabase database may have read them: `request.jwt.claims` (the Auth server's) and the legacy
`request.jwt.claim.sub`/`.role` (the database image's). The same statement sets the request's
statement, lock and idle-in-transaction timeouts; an ORM session sends it in the same message as its
`BEGIN` (`core.begin`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction

from core.auth import Principal
from core.begin import begin_as, begin_script

USER_DB_ROLE = "tripsage_api"
"""The role user requests run as (see migration 0007)."""

# Every setting in one statement, one round trip: set_config('role', ..., true) is SET LOCAL ROLE.
SET_CLAIMS = text(
    "SELECT set_config('role', :role, true), set_config('request.jwt.claims', :claims, true),"
    " set_config('request.jwt.claim.sub', :sub, true), set_config('request.jwt.claim.role', :jwt_role, true),"
    " set_config('statement_timeout', :statement_timeout, true), set_config('lock_timeout', :lock_timeout, true),"
    " set_config('idle_in_transaction_session_timeout', :idle_in_transaction_session_timeout, true)"
)
PRINCIPAL_KEY = "tripsage.principal"
TIMEOUTS_KEY = "tripsage.timeouts"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a request may wait on the database (milliseconds; seconds for connect and pool).

    Attributes:
        statement_ms: `statement_timeout` of every statement of a request.
        lock_ms: `lock_timeout`: a request never queues behind a lock for longer.
        idle_in_transaction_ms: `idle_in_transaction_session_timeout`: a transaction left open by a
            stuck request is ended by the server, so it cannot pin the projection's feed horizon.
        connect_s: How long opening a connection may take.
        pool_s: How long a request waits for a pooled connection before it gets a 503.
    """

    statement_ms: int = 5000
    lock_ms: int = 2000
    idle_in_transaction_ms: int = 10000
    connect_s: float = 5.0
    pool_s: float = 5.0

    def server_settings(self) -> dict[str, str]:
        """The three server-side timeouts by setting name (connection settings, `SET_CLAIMS` parameters)."""
        return {
            "statement_timeout": str(self.statement_ms),
            "lock_timeout": str(self.lock_ms),
            "idle_in_transaction_session_timeout": str(self.idle_in_transaction_ms),
        }


DEFAULT_TIMEOUTS = Timeouts()


class RequestSession(Session):
    """A session that runs every transaction it begins as the principal in `info[PRINCIPAL_KEY]`.

    The role and claims are transaction-local, so a handler that commits and goes on using the
    session would otherwise continue as the login role, outside Row Level Security. Sessions
    without a principal (workers, migrations) are untouched.
    """


@event.listens_for(RequestSession, "after_begin")
def _apply_claims(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
    principal = session.info.get(PRINCIPAL_KEY)
    if isinstance(principal, Principal):
        params = claim_params(principal, session.info.get(TIMEOUTS_KEY, DEFAULT_TIMEOUTS))
        # BEGIN and the settings in one message where the adapter allows (`core.begin`), else two.
        try:
            begun = begin_as(connection.connection.dbapi_connection, begin_script(principal, params, read_only=False))
        except Exception as exc:
            # Sent on the driver, past SQLAlchemy's error handling: whatever failed (a connection the
            # server ended, a settings error inside the opened transaction), the connection's state
            # is unknown, so it is dropped rather than pooled.
            connection.invalidate(exc)
            raise
        if not begun:
            connection.execute(SET_CLAIMS, params)


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: a connection the server closed while pooled is replaced, not handed out."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


POOL_MODE_OPTION = "tripsage_pool_mode"
"""The engine execution option that says how the connections are pooled (`session`/`transaction`)."""


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def create_engine(
    url: str,
    *,
    pool_mode: str = "session",
    pool_size: int = 20,
    max_overflow: int | None = None,
    echo: bool = False,
    timeouts: Timeouts | None = None,
) -> AsyncEngine:
    """Create the process's async engine for one database URL.

    Args:
        url: A `postgresql+asyncpg://` URL.
        pool_mode: `transaction` behind pgbouncer/Supavisor: no server-side prepared statements survive.
        pool_size: Connections kept open.
        max_overflow: Connections opened beyond `pool_size` under load, closed again when returned to
            a full pool (None: as many as `pool_size`).
        echo: Log SQL (off by default).
        timeouts: The API's request timeouts: connect and pool waits, and (in session pool mode, where
            startup settings reach the server) the server-side timeouts as connection defaults, so
            even the one-statement read functions run under them. None: the process's defaults
            (workers and the CLI set their own).

    Returns:
        The engine.
    """
    server_settings = {"application_name": "tripsage", "jit": "off"}
    if timeouts is not None and pool_mode == "session":
        server_settings |= timeouts.server_settings()
    connect_args: dict[str, Any] = {"server_settings": server_settings}
    if timeouts is not None:
        connect_args["timeout"] = timeouts.connect_s
    if pool_mode == "transaction":
        connect_args |= {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unique_statement_name,
        }
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_timeout=timeouts.pool_s if timeouts is not None else 10,
        pool_recycle=1800,
        echo=echo,
        # Errors and echo never show bound values (user data, ciphertexts): logs stay free of them.
        hide_parameters=True,
        connect_args=connect_args,
        # Read back by code that sends statements on the driver itself (`queries.plumbing.call_as`).
        execution_options={POOL_MODE_OPTION: pool_mode},
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def claims_json(principal: Principal) -> str:
    """Return the claims as PostgREST sets them in `request.jwt.claims` (already free of NULs)."""
    return orjson.dumps(principal.claims).decode()


def claim_params(principal: Principal, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> dict[str, str]:
    """The parameters of `SET_CLAIMS` for a caller.

    Args:
        principal: The verified caller.
        timeouts: The request timeouts.

    Returns:
        The role, both forms of the claims, and the timeouts.
    """
    return {
        "role": principal.db_role,
        "claims": claims_json(principal),
        "sub": str(principal.user_id) if principal.user_id else "",
        "jwt_role": principal.role,
        **timeouts.server_settings(),  # bound by their setting names
    }


async def set_request_claims(
    conn: AsyncSession | AsyncConnection, principal: Principal, timeouts: Timeouts = DEFAULT_TIMEOUTS
) -> None:
    """Switch the current transaction to the caller's role, claims and timeouts (transaction-local).

    Args:
        conn: A session or connection inside a transaction.
        principal: The verified caller.
        timeouts: The request timeouts.
    """
    await conn.execute(SET_CLAIMS, claim_params(principal, timeouts))


@dataclass(slots=True)
class Database:
    """The engines and session factory of one process."""

    engine: AsyncEngine
    read_engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    timeouts: Timeouts = DEFAULT_TIMEOUTS

    @classmethod
    def open(
        cls,
        url: str,
        read_url: str | None = None,
        *,
        pool_mode: str = "session",
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        pool_size: int = 20,
        pool_overflow: int | None = None,
    ) -> Database:
        """Create the engines (the read engine is the write engine unless a replica is configured).

        Args:
            url: The primary database URL.
            read_url: The replica URL for query endpoints, if any.
            pool_mode: `session` or `transaction`.
            timeouts: The request timeouts.
            pool_size: Connections each engine keeps open (`DB_POOL_SIZE`).
            pool_overflow: Connections each engine may open beyond them (`DB_POOL_OVERFLOW`; None: as
                many as `pool_size`).

        Returns:
            The database handle.
        """

        def engine_for(target: str) -> AsyncEngine:
            return create_engine(
                target,
                pool_mode=pool_mode,
                timeouts=timeouts,
                pool_size=pool_size,
                max_overflow=pool_overflow,
            )

        engine = engine_for(url)
        read_engine = engine if not read_url or read_url == url else engine_for(read_url)
        return cls(
            engine,
            read_engine,
            async_sessionmaker(engine, expire_on_commit=False, sync_session_class=RequestSession),
            timeouts,
        )

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()

    @asynccontextmanager
    async def request_session(self, principal: Principal) -> AsyncIterator[AsyncSession]:
        """A unit of work as `principal`: rolls back unless committed, and on any exception.

        Args:
            principal: The verified caller.

        Yields:
            A session whose every transaction runs with the caller's role and claims (one
            statement, sent by `RequestSession` as each transaction begins).
        """
        async with self.sessionmaker(info={PRINCIPAL_KEY: principal, TIMEOUTS_KEY: self.timeouts}) as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
