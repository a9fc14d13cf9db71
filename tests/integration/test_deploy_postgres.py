"""The compose file's PostgreSQL scripts, run for real: `deploy/postgres/primary-init.sh` on a fresh
primary, then `deploy/postgres/replica.sh` cloning it into a streaming hot standby.

The scripts run as the compose file runs them (as the server's own user, with the same environment
variables), on throwaway loopback clusters made from pgserver's binaries; only the port, the socket
directory and `max_connections` (a standby may not have fewer than the test primary's 200) are
added, as arguments the replica script passes through to `postgres`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.clusters import RUN_AS, _prepare, init_cluster, pg_bin, remove_cluster, run_pg
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "deploy" / "postgres"
PASSWORD = "replication-secret"


def script_env(data: Path, port: int) -> dict[str, str]:
    """The environment the compose file gives the scripts, pointed at a loopback cluster."""
    return {
        "PATH": f"{Path(pg_bin('postgres')).parent}:{os.environ['PATH']}",
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "postgres",
        "PGDATA": str(data),
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PRIMARY_HOST": "127.0.0.1",
        "REPLICATION_PASSWORD": PASSWORD,
    }


def as_server_user() -> str | None:
    """The user the scripts run as: the server's (pgserver's) when we are root, as in the image."""
    return RUN_AS if os.geteuid() == 0 else None


@pytest.fixture(scope="module")
def primary() -> Iterator[tuple[Path, int]]:
    """A fresh primary on which primary-init.sh has run (as the image's entrypoint runs it)."""
    base = Path(tempfile.mkdtemp(prefix="tripsage-deploy-pg-"))
    port = free_port()
    data = init_cluster(base / "primary", port, "postgres")
    try:
        done = subprocess.run(  # noqa: S603
            ["bash", str(SCRIPTS / "primary-init.sh")],
            env=script_env(data, port),
            user=as_server_user(),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        run_pg([pg_bin("pg_ctl"), "-D", str(data), "reload"])
        yield data, port
    finally:
        remove_cluster(data)
        shutil.rmtree(base, ignore_errors=True)


async def test_primary_init_makes_the_replication_login_slot_and_hba_rule(primary: tuple[Path, int]) -> None:
    data, port = primary
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
    try:
        role = await conn.fetchrow(
            "SELECT rolreplication, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'replicator'"
        )
        assert role is not None and role["rolreplication"] and role["rolcanlogin"] and not role["rolsuper"]
        assert (
            await conn.fetchval("SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'standby1'") == "physical"
        )
    finally:
        await conn.close()
    hba = (data / "pg_hba.conf").read_text(encoding="utf-8").splitlines()
    assert hba[-1].split() == ["host", "replication", "replicator", "all", "scram-sha-256"]


async def test_replica_script_clones_the_primary_into_a_streaming_hot_standby(primary: tuple[Path, int]) -> None:
    _, primary_port = primary
    base = Path(tempfile.mkdtemp(prefix="tripsage-deploy-standby-"))
    parent = _prepare(base)  # a directory the server's user owns, as the volume in the image
    data = parent / "standby"
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603
        [
            "bash",
            str(SCRIPTS / "replica.sh"),
            "-c",
            f"port={port}",
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
            "-k",
            str(parent),
        ],
        env=script_env(data, primary_port),
        user=as_server_user(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    primary_conn = await asyncpg.connect(host="127.0.0.1", port=primary_port, user="postgres", database="postgres")
    try:
        standby = await connect_when_up(port, proc)
        try:
            assert await standby.fetchval("SELECT pg_is_in_recovery()")
            await primary_conn.execute(
                "CREATE TABLE IF NOT EXISTS deploy_probe (v text); INSERT INTO deploy_probe VALUES ('streamed')"
            )
            deadline = time.monotonic() + 30
            while True:
                found = await standby.fetchval("SELECT to_regclass('deploy_probe') IS NOT NULL")
                if found and await standby.fetchval("SELECT count(*) FROM deploy_probe WHERE v = 'streamed'"):
                    break
                assert time.monotonic() < deadline, "the write never reached the standby"
                await asyncio.sleep(0.1)
            active = await primary_conn.fetchval("SELECT active FROM pg_replication_slots WHERE slot_name = 'standby1'")
            assert active, "the standby does not stream through the slot primary-init.sh made"
        finally:
            await standby.close()
    finally:
        await primary_conn.close()
        proc.terminate()  # SIGTERM: postgres's smart shutdown
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        remove_cluster(data)
        remove_cluster(parent)


async def connect_when_up(port: int, proc: subprocess.Popen[bytes]) -> asyncpg.Connection:
    """A connection to the standby once it accepts them (the script first runs pg_basebackup)."""
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "replica.sh exited"
        try:
            return await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
        except (OSError, asyncpg.PostgresError):
            assert time.monotonic() < deadline, "the standby never accepted connections"
            await asyncio.sleep(0.2)
