"""Commands and queries through a real transaction pooler (pgbouncer, `pool_mode = transaction`).

`DB_POOL_MODE=transaction` is for Supavisor's port 6543 and pgbouncer: a server connection belongs
to a client for one transaction only, so nothing may rely on session state or on a prepared
statement outliving its transaction. Sixteen concurrent clients share four server connections
here, so a statement split across server connections would fail within a few requests (the same
load in `session` mode fails almost at once: checked while writing this test).

Needs the `pgbouncer` binary (`.ci/run` installs it) and a database reachable over TCP (the
machine's PostgreSQL); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url

from core.settings import Settings
from tests.support import free_port, make_settings, new_user
from tripsage.app import create_app

CLIENTS = 16
ROUNDS = 5


@pytest.fixture
def pooler_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A pgbouncer in transaction mode in front of the session's database; yields its URL."""
    binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    target = make_url(database_url)
    if binary is None or not target.host or target.host.startswith("/"):
        pytest.skip("needs pgbouncer and a database reachable over TCP")
    run_as = ["-u", "postgres"] if os.geteuid() == 0 else []  # pgbouncer refuses to run as root
    user = target.username or getpass.getuser()
    port = free_port()
    tmp_path.chmod(0o777)
    (tmp_path / "users.txt").write_text(f'"{user}" ""\n', encoding="utf-8")
    (tmp_path / "pgbouncer.ini").write_text(
        f"""[databases]
{target.database} = host={target.host} port={target.port or 5432} dbname={target.database} user={user}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {tmp_path / "users.txt"}
pool_mode = transaction
default_pool_size = 4
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,jit,application_name
""",
        encoding="utf-8",
    )
    for name in ("users.txt", "pgbouncer.ini"):
        (tmp_path / name).chmod(0o644)
    process = subprocess.Popen(  # noqa: S603  # our own config, loopback only
        [binary, *run_as, str(tmp_path / "pgbouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"pgbouncer did not start: {process.stderr.read() if process.stderr else b''!r}")
                time.sleep(0.05)
        yield target.set(host="127.0.0.1", port=port, password=None).render_as_string(hide_password=False)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def pooled_client(pooler_url: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API app with every engine behind the pooler, `DB_POOL_MODE=transaction`."""
    app = create_app(make_settings(pooler_url, str(settings.redis_url), db_pool_mode="transaction"))
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            yield http


async def test_commands_and_queries_through_a_transaction_pooler(pooled_client: httpx.AsyncClient) -> None:
    users = [new_user(f"pooled{i}") for i in range(CLIENTS)]
    body = {"title": "Pooled", "destination": "Porto", "start_date": "2027-05-01", "end_date": "2027-05-03"}

    async def one_client(index: int) -> list[int]:
        headers = users[index].headers
        statuses = []
        for _ in range(ROUNDS):
            created = await pooled_client.post("/api/trips", json=body, headers=headers)
            trip_id = created.json().get("id")
            statuses += [
                created.status_code,
                (await pooled_client.get("/api/trips?limit=5", headers=headers)).status_code,
                (await pooled_client.get(f"/api/trips/{trip_id}", headers=headers)).status_code,
                (await pooled_client.get("/api/users/me", headers=headers)).status_code,
            ]
        return statuses

    results = await asyncio.gather(*(one_client(i) for i in range(CLIENTS)))
    for statuses in results:
        # 201 for the command; 200 for the list and the profile; the single trip is 200 once
        # projected and 404 before (no worker runs here): never an error from the pooler.
        assert statuses[0::4] == [201] * ROUNDS
        assert statuses[1::4] == [200] * ROUNDS and statuses[3::4] == [200] * ROUNDS
        assert set(statuses[2::4]) <= {200, 404}
    # and RLS held: each user's list holds only their own trips
    page = (await pooled_client.get("/api/trips?limit=100", headers=users[0].headers)).json()
    assert all(item["owner"]["id"] == str(users[0].id) for item in page["items"])
