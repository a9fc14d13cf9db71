"""Scratch databases next to a server's (for tests and benchmarks): create uniquely named, drop."""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy.engine import make_url


def driver_dsn(url: str) -> str:
    """The plain `postgresql://` DSN asyncpg takes, from any SQLAlchemy PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(admin_url: str, prefix: str = "tripsage_test") -> str:
    """Create a fresh database `<prefix>_<random>` on `admin_url`'s server and return its URL.

    Args:
        admin_url: A URL of a role that may create databases.
        prefix: The new database's name prefix.

    Returns:
        The new database's URL (same driver, credentials and host as `admin_url`).
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(driver_dsn(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by `create_database`, terminating connections left open."""
    conn = await asyncpg.connect(driver_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()
