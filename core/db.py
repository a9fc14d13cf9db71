"""The database engine, sessions and the request transaction (role and JWT claims for RLS).

One async engine per process and database URL; no sync engine anywhere. A request transaction runs
as the PostgreSQL role of the caller (`authenticated` or `service_role`) with the caller's JWT
claims set transaction-locally, exactly as Supabase's PostgREST does, so Row Level Security holds
even where application code forgot a filter.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction

from core.auth import Principal

# Both settings in one statement, one round trip: set_config('role', ..., true) is SET LOCAL ROLE.
SET_CLAIMS = text("SELECT set_config('role', :role, true), set_config('request.jwt.claims', :claims, true)")
PRINCIPAL_KEY = "tripsage.principal"


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
        connection.execute(SET_CLAIMS, {"role": principal.db_role, "claims": claims_json(principal)})


POOL_MODE_OPTION = "tripsage_pool_mode"
"""The engine execution option that says how the connections are pooled (`session`/`transaction`)."""


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def create_engine(url: str, *, pool_mode: str = "session", pool_size: int = 20, echo: bool = False) -> AsyncEngine:
    """Create the process's async engine for one database URL.

    Args:
        url: A `postgresql+asyncpg://` URL.
        pool_mode: `transaction` behind pgbouncer/Supavisor: no server-side prepared statements survive.
        pool_size: Connections kept open.
        echo: Log SQL (off by default).

    Returns:
        The engine.
    """
    connect_args: dict[str, Any] = {"server_settings": {"application_name": "tripsage", "jit": "off"}}
    if pool_mode == "transaction":
        connect_args |= {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unique_statement_name,
        }
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,
        pool_recycle=1800,
        echo=echo,
        # Errors and echo never show bound values (user data, ciphertexts): logs stay free of them.
        hide_parameters=True,
        connect_args=connect_args,
        # Read back by code that sends statements on the driver itself (`queries.plumbing.call_as`).
        execution_options={POOL_MODE_OPTION: pool_mode},
    )


def claims_json(principal: Principal) -> str:
    """Return the claims as PostgREST sets them in `request.jwt.claims`."""
    return orjson.dumps(principal.claims).decode()


async def set_request_claims(conn: AsyncSession | AsyncConnection, principal: Principal) -> None:
    """Switch the current transaction to the caller's role and claims (transaction-local).

    Args:
        conn: A session or connection inside a transaction.
        principal: The verified caller.
    """
    await conn.execute(SET_CLAIMS, {"role": principal.db_role, "claims": claims_json(principal)})


@dataclass(slots=True)
class Database:
    """The engines and session factory of one process."""

    engine: AsyncEngine
    read_engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]

    @classmethod
    def open(cls, url: str, read_url: str | None = None, *, pool_mode: str = "session") -> Database:
        """Create the engines (the read engine is the write engine unless a replica is configured).

        Args:
            url: The primary database URL.
            read_url: The replica URL for query endpoints, if any.
            pool_mode: `session` or `transaction`.

        Returns:
            The database handle.
        """
        engine = create_engine(url, pool_mode=pool_mode)
        read_engine = engine if not read_url or read_url == url else create_engine(read_url, pool_mode=pool_mode)
        return cls(
            engine, read_engine, async_sessionmaker(engine, expire_on_commit=False, sync_session_class=RequestSession)
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
        async with self.sessionmaker(info={PRINCIPAL_KEY: principal}) as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
