from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.integration.test_worker_faults import worker_env
from tests.support import free_port, new_user

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


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
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode is not None
