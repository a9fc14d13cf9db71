"""Throwaway PostgreSQL clusters on loopback, from pgserver's binaries, for tests that need a whole server.

Tests that change roles cluster-wide (`tests.supabase_like`) or restart the server
(`tests.faults`) cannot use the machine's PostgreSQL or the shared embedded one: each gets its own
cluster in a fresh directory, on a free 127.0.0.1 port, with `fsync` off. As root (CI), initdb and
postgres run as pgserver's own system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

RUN_AS = "pgserver"


def pg_bin(name: str) -> str:
    """The path of one of pgserver's PostgreSQL programs."""
    from pgserver import _commands  # pylint: disable=import-outside-toplevel  # heavy; only here

    return str(Path(_commands.POSTGRES_BIN_PATH) / name)


class PgCommandError(RuntimeError):
    """A PostgreSQL program failed; the message holds its output."""


def run_pg(args: list[str]) -> None:
    """Run a PostgreSQL program (as pgserver's system user when we are root).

    Raises:
        PgCommandError: When it exits non-zero (with its stdout and stderr).
    """
    user = RUN_AS if os.geteuid() == 0 else None
    done = subprocess.run(args, check=False, capture_output=True, user=user)  # noqa: S603  # our own binaries
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace").strip()
        raise PgCommandError(f"{Path(args[0]).name} exited {done.returncode}: {output}")


def _prepare(base: Path) -> Path:
    data = base / "pgdata"
    data.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        from pgserver.utils import (  # pylint: disable=import-outside-toplevel
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(RUN_AS)
        ensure_prefix_permissions(base)  # the server's user must traverse every parent
        entry = pwd.getpwnam(RUN_AS)
        for path in (base, data):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        base.chmod(0o755)
    return data


def init_cluster(base: Path, port: int, superuser: str) -> Path:
    """Create and start a cluster in `base/pgdata` on 127.0.0.1:`port`, bootstrapped by `superuser`.

    Args:
        base: A fresh directory (its parents must be traversable by the server's user).
        port: A free loopback port.
        superuser: The bootstrap superuser's name.

    Returns:
        The data directory.
    """
    data = _prepare(base)
    run_pg([pg_bin("initdb"), "-D", str(data), "-U", superuser, "--auth=trust", "--encoding=utf8"])
    (data / "port").write_text(str(port), encoding="utf-8")
    start_cluster(data)
    return data


def start_cluster(data: Path) -> None:
    """Start (or start again) a cluster made by `init_cluster`, waiting until it accepts connections."""
    port = (data / "port").read_text(encoding="utf-8").strip()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data} -c fsync=off -c max_connections=200"
    run_pg([pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start"])


def restart_cluster(data: Path, mode: str) -> None:
    """Stop the cluster in `mode` (`fast`: clean shutdown; `immediate`: a crash, recovered on start), then start it.

    A `fast` stop that does not finish in time (a loaded machine) is completed as `immediate`, so
    the server still goes down and comes back, which is the fault being injected.
    """
    try:
        stop_cluster(data, mode)
    except PgCommandError:
        if mode == "immediate":
            raise
        stop_cluster(data, "immediate")
    start_cluster(data)


def remove_cluster(data: Path, *, keep_log: bool = False) -> None:
    """Stop a cluster (if running) and delete its directory (its server log kept beside it if asked)."""
    if (data / "postmaster.pid").exists():
        try:
            run_pg([pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        except PgCommandError:
            pass  # already gone
    if keep_log and (data / "log").exists():
        shutil.copy(data / "log", data.parent.parent / f"{data.parent.name}-postgresql.log")
    shutil.rmtree(data.parent, ignore_errors=True)


def init_replica(primary_port: int, base: Path, port: int, *, apply_delay_ms: int = 0) -> Path:
    """Create and start a hot standby of the cluster on `primary_port`, streaming, optionally delayed.

    `pg_basebackup -R` copies the primary and writes its connection settings; with
    `recovery_min_apply_delay` the standby replays each commit that much later than the primary
    made it, like a replica under load or far away.

    Args:
        primary_port: The primary's loopback port (initdb's trust rules allow replication there).
        base: A fresh directory for the standby.
        port: A free loopback port for the standby.
        apply_delay_ms: `recovery_min_apply_delay`.

    Returns:
        The standby's data directory.
    """
    data = _prepare(base)
    data.rmdir()  # pg_basebackup creates it
    run_pg(
        [
            pg_bin("pg_basebackup"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary_port),
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
        ]
    )
    with (data / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
        conf.write(f"recovery_min_apply_delay = '{apply_delay_ms}ms'\nhot_standby = on\n")
    (data / "port").write_text(str(port), encoding="utf-8")
    start_cluster(data)
    return data


def stop_cluster(data: Path, mode: str = "fast") -> None:
    """Stop a cluster, keeping its data for a later `start_cluster`."""
    run_pg([pg_bin("pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "120", "stop"])


@dataclass(frozen=True)
class Pair:
    """A primary (migrated) and its streaming hot standby, both on loopback."""

    url: str
    read_url: str
    standby: Path


@asynccontextmanager
async def replicated_pair(free_port: Callable[[], int], *, apply_delay_ms: int) -> AsyncIterator[Pair]:
    """A fresh primary, migrated, and a standby replaying it `apply_delay_ms` late; removed afterwards.

    Args:
        free_port: Gives a free loopback port.
        apply_delay_ms: The standby's `recovery_min_apply_delay`.

    Yields:
        The primary's and the standby's URLs (asyncpg) and the standby's data directory.
    """
    from core.migrate import migrate  # pylint: disable=import-outside-toplevel  # keep this module light

    base = Path(tempfile.mkdtemp(prefix="tripsage-replica-"))
    primary_port, standby_port = free_port(), free_port()
    primary = await asyncio.to_thread(init_cluster, base / "primary", primary_port, "postgres")
    standby: Path | None = None
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{primary_port}/postgres"
        await asyncio.to_thread(migrate, url)
        standby = await asyncio.to_thread(
            init_replica, primary_port, base / "standby", standby_port, apply_delay_ms=apply_delay_ms
        )
        yield Pair(url, f"postgresql+asyncpg://postgres@127.0.0.1:{standby_port}/postgres", standby)
    finally:
        if standby is not None:
            await asyncio.to_thread(remove_cluster, standby)
        await asyncio.to_thread(remove_cluster, primary)
        shutil.rmtree(base, ignore_errors=True)
