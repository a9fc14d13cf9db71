"""`uvicorn tripsage.api.main:app` and `python -m tripsage.api.main`: the API from the environment."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from core.settings import Settings
from tests.integration.test_worker_faults import worker_env
from tests.support import free_port
from tripsage.api.main import EnvironmentApp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The session's servers as the environment the app reads; its logging set-up undone after."""
    for name, value in worker_env(settings).items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("environment")
async def test_the_app_resolves_the_environment_at_start_up_not_at_import(tmp_path: Path) -> None:
    application = EnvironmentApp(tmp_path)
    assert application.api is None  # nothing built or started yet
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
    assert application.api is None
    assert list(tmp_path.iterdir()) == []  # configured URLs: no embedded server


def _broken_app(settings: Settings) -> None:
    raise ValueError(f"no app today ({settings.log_level})")


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize(
    ("variable", "broken_app", "reason"),
    [
        ("SUPABASE_JWT_SECRET", None, "SUPABASE_JWT_SECRET is a placeholder"),
        (None, _broken_app, "ValueError: no app today"),
    ],
)
async def test_a_failed_start_up_names_its_reason(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str | None,
    broken_app: Callable[[Settings], None] | None,
    reason: str,
) -> None:
    if variable is not None:
        monkeypatch.setenv(variable, "changeme")
    if broken_app is not None:
        monkeypatch.setattr("tripsage.api.main.create_app", broken_app)
    with pytest.raises(RuntimeError, match=reason):
        async with LifespanManager(EnvironmentApp(tmp_path)):
            pass


async def test_requests_without_the_lifespan_are_refused(tmp_path: Path) -> None:
    transport = httpx.ASGITransport(app=EnvironmentApp(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        with pytest.raises(RuntimeError, match="needs its lifespan"):
            await http.get("/healthz")


def test_python_dash_m_serves_and_ctrl_c_stops_it_quietly(settings: Settings) -> None:
    port = free_port()
    env = worker_env(settings) | {"PORT": str(port), "LOG_LEVEL": "INFO", "LOG_FORMAT": "json"}
    proc = subprocess.Popen(  # noqa: S603  # our own module
        [sys.executable, "-m", "tripsage.api.main"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1].decode()
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log = stderr.decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
    access = [line for line in log.splitlines() if '"logger":"tripsage.access"' in line]
    assert len(access) == 1 and '"route":"/healthz"' in access[0]  # ours only, uvicorn's is off
