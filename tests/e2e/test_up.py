"""`tripsage up` as a newcomer runs it: no DATABASE_URL/REDIS_URL, embedded PostgreSQL and Redis.

A real subprocess: wait for /readyz, call an authenticated endpoint with the printed dev token,
then Ctrl-C (SIGINT) and check that it exits cleanly and leaves no server running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support import free_port

STARTUP_TIMEOUT_S = 120.0
CLEARED = (
    "DATABASE_URL",
    "READ_DATABASE_URL",
    "REDIS_URL",
    "TEST_DATABASE_URL",
    "TEST_REDIS_URL",
    "SUPABASE_URL",
    "SUPABASE_JWT_SECRET",
    "SUPABASE_JWKS",
    "TRIPSAGE_ENCRYPTION_KEYS",
)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for a parent that is not us counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def server_pids(data_dir: Path) -> dict[str, int]:
    """The embedded postgres and redis-server processes serving `data_dir`."""
    pids = {"postgres": int((data_dir / "pg" / "postmaster.pid").read_text(encoding="utf-8").split()[0])}
    registry = json.loads((data_dir / "redis.db.settings").read_text(encoding="utf-8"))
    pids["redis"] = int(Path(registry["pidfile"]).read_text(encoding="utf-8").strip())
    return pids


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ts-up-", dir="/tmp") as path:
        yield Path(path)


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(encoding="utf-8")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"not ready in time:\n{log.read_text(encoding='utf-8')}")


def dev_token(output: str) -> str:
    lines = output.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("Dev token"))
    return lines[index + 1].strip()


def test_up_embedded_serves_and_stops_cleanly(data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # A fresh server's environment: no XDG_RUNTIME_DIR (platformdirs warned on every call).
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and k != "XDG_RUNTIME_DIR"} | {"LOG_FORMAT": "json"}
    log = data_dir / "up.log"
    command = [str(Path(sys.executable).with_name("tripsage")), "up", "--data-dir", str(data_dir), "--port", str(port)]
    pids: dict[str, int] = {}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=data_dir)  # noqa: S603
    try:
        wait_ready(base, proc, log)
        pids = server_pids(data_dir)
        assert all(alive(pid) for pid in pids.values())
        output = log.read_text(encoding="utf-8")
        assert f"TripSage API: {base}" in output
        token = dev_token(output)
        assert token not in output.replace(token, "", 1)  # printed once, never logged

        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/readyz", timeout=5).json()["checks"]["database"] == "ok"
        assert httpx.get(f"{base}/api/users/me", timeout=5).status_code == 401
        me = httpx.get(f"{base}/api/users/me", headers=headers, timeout=5)
        assert me.status_code == 200, me.text
        assert me.json()["email"] == "dev@example.com"
        trip = {"title": "Up", "destination": "Nice", "start_date": "2030-02-01", "end_date": "2030-02-02"}
        created = httpx.post(f"{base}/api/trips", json=trip, headers=headers, timeout=5)
        assert created.status_code == 201, created.text  # its nudge runs an arq job: no INFO line for it
        tracked = {**headers, "X-Consistency-Token": created.headers["X-Consistency-Token"]}
        projected = httpx.get(f"{base}/api/trips/{created.json()['id']}", headers=tracked, timeout=5)
        assert projected.headers["X-Consistency"] == "fresh"
        secret = json.loads((data_dir / "dev-secrets.json").read_text(encoding="utf-8"))["jwt_secret"]
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience="authenticated")
        assert claims["sub"] == me.json()["id"]
        demo = httpx.post(f"{base}/api/demo/session", timeout=5)  # `up` offers the web app's demo sign-in
        assert demo.status_code == 200, demo.text
        assert (
            jwt.decode(demo.json()["access_token"], secret, algorithms=["HS256"], audience="authenticated")["sub"]
            == claims["sub"]
        )
        assert '<meta name="tripsage-demo" content="on">' in httpx.get(f"{base}/trips/x", timeout=5).text
        minted = subprocess.run(  # noqa: S603  # `tripsage token` for the same email: the same user
            [command[0], "token", "--user", "dev@example.com", "--data-dir", str(data_dir)],
            env=env,
            cwd=data_dir,
            capture_output=True,
            text=True,
            check=True,
        )
        assert jwt.decode(minted.stdout.strip(), options={"verify_signature": False})["sub"] == claims["sub"]
        assert minted.stderr == ""  # no platformdirs warning, no pgserver chatter
        second = subprocess.run(  # noqa: S603  # a second `up` on the same port
            command, env=env, cwd=data_dir, capture_output=True, text=True, check=False, timeout=60
        )
        assert second.returncode == 1 and f"127.0.0.1:{port} is already in use" in second.stderr
        assert f"make up PORT={port + 1}" in second.stderr and "Errno" not in second.stderr

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text(encoding="utf-8")
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {name: alive(pid) for name, pid in pids.items()} == {"postgres": False, "redis": False}
        assert not (data_dir / "pg" / "postmaster.pid").exists()
        final = log.read_text(encoding="utf-8")
        assert "Traceback" not in final and token not in final.replace(token, "", 1)
        assert "RuntimeDirWarning" not in final and '"logger":"pgserver"' not in final
        assert '"logger":"tripsage.access"' in final and '"route":"/api/users/me"' in final
        assert "→" not in final and "←" not in final  # arq's per-job lines are DEBUG
        assert '"logger":"arq.worker"' in final  # its start-up and shut-down lines stay
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
