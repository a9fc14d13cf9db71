from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from core.db import create_engine
from core.settings import Settings
from tests.integration.test_worker_faults import worker_env
from tests.support import free_port, new_user

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


async def _heartbeats(settings: Settings, pid: int) -> int:
    engine = create_engine(str(settings.database_url), pool_size=1)
    try:
        async with engine.connect() as conn:
            query = text("SELECT count(*) FROM tripsage.worker_heartbeats WHERE pid = :pid")
            return int(await conn.scalar(query, {"pid": pid}) or 0)
    finally:
        await engine.dispose()


def test_up_serves_the_api_and_projects_then_ctrl_c_stops_both(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603  # our own console script
        [str(Path(sys.executable).parent / "tripsage"), "up", "--port", str(port), "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=worker_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    stopped_by_itself = False
    try:
        with httpx.Client(base_url=base, timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API did not start"
                assert proc.poll() is None, proc.communicate()[1].decode()
                time.sleep(0.1)
            user = new_user("up")
            body = {"title": "Up trip", "destination": "Nice", "start_date": "2030-02-01", "end_date": "2030-02-03"}
            created = http.post("/api/trips", json=body, headers=user.headers)
            assert created.status_code == 201, created.text
            trip = created.json()["id"]
            deadline = time.monotonic() + 10
            while http.get(f"/api/trips/{trip}", headers=user.headers).status_code != 200:
                assert time.monotonic() < deadline, "the worker inside `up` did not project the trip"
                time.sleep(0.05)
        assert asyncio.run(_heartbeats(settings, proc.pid)) == 1  # the worker inside `up` beats
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        stopped_by_itself = True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # It stopped by itself on Ctrl-C (not killed by the clean-up above), cleanly, and let go of everything.
    assert stopped_by_itself
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert asyncio.run(_heartbeats(settings, proc.pid)) == 0  # the worker removed its heartbeat row
    with socket.socket() as sock, contextlib.suppress(OSError):
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # the API no longer listens
