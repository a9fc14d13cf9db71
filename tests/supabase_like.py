"""A PostgreSQL cluster set up the way Supabase's Postgres image sets one up, for boundary tests.

Written from Supabase's documented set-up (not copied from it): the bootstrap superuser is
`supabase_admin`; `postgres` is a login role WITHOUT superuser (CREATEDB, CREATEROLE, REPLICATION,
BYPASSRLS) that migrations and the service use; `anon`, `authenticated` (NOLOGIN) and
`service_role` (NOLOGIN, BYPASSRLS) are granted to `postgres` and to `authenticator` (LOGIN,
NOINHERIT: the Data API's login, which switches to one of the three per request); default
privileges give the three API roles ALL on whatever `postgres` or `supabase_admin` creates in
`public`; the `auth` schema belongs to `supabase_admin`, with `auth.uid()` in one of the two
definitions a Supabase database may have:

- `image`: the database image's, reading only `request.jwt.claim.sub`;
- `auth_server`: the Auth server's later one, reading `request.jwt.claim.sub` or `request.jwt.claims`.

The per-database part is applied to `template1` too, so databases created later (the test suite
creates one per session) are Supabase-like as well. The binaries are pgserver's (PostgreSQL 16):
there a CREATEROLE role may pass on only memberships it holds WITH ADMIN OPTION, so `postgres` gets
the API roles that way (on PostgreSQL 15, which Supabase projects run, CREATEROLE alone allows it).

`python -m tests.supabase_like start DIR [--uid image|auth_server]` starts one and prints the URL
of `postgres` (for running the whole suite against it); `stop DIR` stops it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg

from tests.clusters import init_cluster, remove_cluster

UidDefinition = Literal["image", "auth_server"]

CLUSTER = """
CREATE ROLE postgres LOGIN NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS;
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated, service_role TO authenticator;
GRANT anon, authenticated, service_role TO postgres WITH ADMIN OPTION;
ALTER ROLE anon INHERIT;
ALTER ROLE authenticated INHERIT;
ALTER ROLE service_role INHERIT;
"""

UID_SQL: dict[UidDefinition, str] = {
    "image": "SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid",
    "auth_server": (
        "SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),"
        " (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid"
    ),
}


def database_sql(uid: UidDefinition, database: str) -> str:
    """The per-database part of the set-up (run as `supabase_admin` in that database)."""
    return f"""
GRANT ALL ON DATABASE {database} TO postgres;
GRANT ALL ON SCHEMA public TO postgres;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
CREATE SCHEMA auth AUTHORIZATION supabase_admin;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$ {UID_SQL[uid]} $$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS
  $$ SELECT nullif(current_setting('request.jwt.claim.role', true), '')::text $$;
CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS
  $$ SELECT nullif(current_setting('request.jwt.claim.email', true), '')::text $$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT ALL ON SCHEMA auth TO postgres;
GRANT ALL ON ALL ROUTINES IN SCHEMA auth TO postgres;
"""


@dataclass(frozen=True)
class SupabaseLike:
    """A running Supabase-like cluster on loopback."""

    data: Path
    port: int
    uid: UidDefinition

    def url(self, user: str = "postgres", database: str = "postgres") -> str:
        """A SQLAlchemy asyncpg URL for one of its roles (trust authentication, loopback only)."""
        return f"postgresql+asyncpg://{user}@127.0.0.1:{self.port}/{database}"

    def dsn(self, user: str = "postgres", database: str = "postgres") -> str:
        """The same as a plain DSN for asyncpg."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


async def start(base: Path, port: int, uid: UidDefinition = "image") -> SupabaseLike:
    """Create and start a Supabase-like cluster under `base` (a fresh directory) on 127.0.0.1:`port`.

    Args:
        base: A directory for the cluster (created; the data directory goes inside it).
        port: A free loopback port.
        uid: Which definition of `auth.uid()` the database gets.

    Returns:
        The running cluster.
    """
    data = init_cluster(base, port, "supabase_admin")
    cluster = SupabaseLike(data, port, uid)
    conn = await asyncpg.connect(cluster.dsn("supabase_admin"))
    try:
        await conn.execute(CLUSTER)
    finally:
        await conn.close()
    for database in ("postgres", "template1"):
        conn = await asyncpg.connect(cluster.dsn("supabase_admin", database))
        try:
            await conn.execute(database_sql(uid, database))
        finally:
            await conn.close()
    return cluster


def stop(data: Path) -> None:
    """Stop a cluster started by `start` and remove its directory."""
    remove_cluster(data)


def main() -> None:
    """`start DIR [--port N] [--uid ...]` (prints the `postgres` URL) or `stop DIR`."""
    import asyncio  # pylint: disable=import-outside-toplevel

    from tests.support import free_port  # pylint: disable=import-outside-toplevel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uid", choices=list(UID_SQL), default="image")
    args = parser.parse_args()
    if args.action == "stop":
        stop(args.dir / "pgdata")
        return
    cluster = asyncio.run(start(args.dir, args.port or free_port(), args.uid))
    print(cluster.url())  # noqa: T201  # the command's output


if __name__ == "__main__":
    main()
