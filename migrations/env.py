"""Alembic environment: async engine, URL from the caller or core.settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import await_

config = context.config


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from core.settings import Settings  # pylint: disable=import-outside-toplevel  # only when run by bare `alembic`

        url = Settings().database_url
    if not url:
        raise RuntimeError("no database URL: set DATABASE_URL or run `tripsage migrate`")
    return str(url)


MIGRATION_LOCK = 7201893452
VERSION_SCHEMA = "tripsage_meta"

# Migration bookkeeping is internal: it lives outside `public`, which Supabase's Data API serves. A
# database migrated before the move keeps its revision: the table is moved, not recreated.
MOVE_VERSION_TABLE = f"""
CREATE SCHEMA IF NOT EXISTS {VERSION_SCHEMA};
REVOKE ALL ON SCHEMA {VERSION_SCHEMA} FROM PUBLIC;
DO $$
BEGIN
  IF to_regclass('public.alembic_version') IS NOT NULL AND to_regclass('{VERSION_SCHEMA}.alembic_version') IS NULL THEN
    ALTER TABLE public.alembic_version SET SCHEMA {VERSION_SCHEMA};
    RAISE NOTICE 'moved public.alembic_version to {VERSION_SCHEMA}';
  END IF;
  IF to_regclass('{VERSION_SCHEMA}.alembic_version') IS NOT NULL THEN
    REVOKE ALL ON {VERSION_SCHEMA}.alembic_version FROM PUBLIC;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
      REVOKE ALL ON {VERSION_SCHEMA}.alembic_version FROM anon, authenticated;
    END IF;
  END IF;
END $$;
"""


def _run(connection: Connection) -> None:
    # Serialise concurrent `migrate` runs (several processes starting at once): a session-level lock,
    # taken before Alembic reads the current revision and held across every migration's transaction.
    connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
    connection.commit()
    try:
        driver = connection.connection.driver_connection
        assert driver is not None
        await_(driver.execute(MOVE_VERSION_TABLE))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=None,
            transaction_per_migration=True,
            version_table_schema=VERSION_SCHEMA,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
        connection.commit()


async def _main() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported")
asyncio.run(_main())
