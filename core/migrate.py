"""Apply Alembic migrations programmatically (idempotent: `upgrade head` twice is a no-op)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    """An Alembic config for the repository's migrations and the given database."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    """Upgrade the database to `revision` (blocking; run it outside an event loop or in a thread)."""
    command.upgrade(alembic_config(database_url), revision)


def execute_script(sql: str) -> None:
    """Run a multi-statement SQL script inside the current migration's transaction.

    asyncpg prepares every statement it is given through SQLAlchemy, and a prepared statement holds
    one command; the driver's simple-query path runs a whole script in one message.

    Args:
        sql: Statements separated by semicolons.
    """
    fetch_notices(sql)


def fetch_notices(sql: str) -> list[str]:
    """Run a script like `execute_script` and return the NOTICE messages it raised, in order.

    Migrations report what they created or removed (roles, Supabase shims) this way, so the
    migration log says what changed on a database that is not only ours.

    Args:
        sql: Statements separated by semicolons.

    Returns:
        The notices' messages.
    """
    from alembic import op  # pylint: disable=import-outside-toplevel  # only inside a migration
    from sqlalchemy.util import await_  # pylint: disable=import-outside-toplevel

    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    notices: list[str] = []

    def listener(_conn: object, message: object) -> None:
        notices.append(str(getattr(message, "message", message)))

    driver.add_log_listener(listener)
    try:
        await_(driver.execute(sql))
    finally:
        driver.remove_log_listener(listener)
    return notices
