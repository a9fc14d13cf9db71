"""The deployment files, exercised without a Docker engine (none runs on our machines or in CI).

The Dockerfile's build stage is replayed step by step (its `COPY` lines into a scratch tree, its
`uv sync` lines with the same flags), and the result is run the way the image runs it: the image's
`CMD` (uvicorn with two worker processes), its `HEALTHCHECK` command, `tripsage migrate`, and
nginx with `deploy/nginx.conf` in front, streaming `/api/events`. The compose files are validated
against the Compose specification's schema and the Dockerfile linted by `make lint`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.support import free_port, new_user

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
STARTUP_TIMEOUT_S = 60.0


@dataclass
class Dockerfile:
    """The instructions of the Dockerfile that matter here, continuation lines joined."""

    build: list[tuple[str, str]] = field(default_factory=list)  # (instruction, arguments) of the build stage
    runtime: list[tuple[str, str]] = field(default_factory=list)  # ... of the final stage

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        """Parse `path` into the instructions of its two stages."""
        parsed = cls()
        stage: list[tuple[str, str]] | None = None
        joined = path.read_text(encoding="utf-8").replace("\\\n", " ")
        for raw in joined.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            instruction, _, arguments = line.partition(" ")
            if instruction.upper() == "FROM":
                stage = parsed.build if " AS build" in arguments else parsed.runtime
                continue
            if stage is not None:
                stage.append((instruction.upper(), " ".join(arguments.split())))
        return parsed

    def one(self, instruction: str) -> str:
        """The arguments of the final stage's only `instruction`."""
        found = [args for name, args in self.runtime if name == instruction]
        assert len(found) == 1, f"expected one {instruction} in the final stage, found {found}"
        return found[0]


DOCKERFILE = Dockerfile.read(ROOT / "Dockerfile")


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form `CMD`/`HEALTHCHECK … CMD`."""
    return [str(part) for part in json.loads(arguments[arguments.index("[") :])]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's /app, built by replaying the Dockerfile's build stage into a scratch directory."""
    app = tmp_path_factory.mktemp("image") / "app"
    app.mkdir()
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(app / ".venv"), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    for instruction, arguments in DOCKERFILE.build:
        if instruction == "COPY":
            *sources, target = arguments.split()
            for source in sources:
                origin, dest = ROOT / source, app / target
                if origin.is_dir():
                    shutil.copytree(origin, dest, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(origin, dest / source if target.endswith("/") else dest)
        elif instruction == "RUN" and arguments.startswith("uv sync"):
            subprocess.run([UV, *shlex.split(arguments)[1:], "--quiet"], cwd=app, env=env, check=True, timeout=600)  # noqa: S603
    return app


def image_env(image: Path, settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a container of the image runs with (its ENV plus the compose file's)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TEST_", "VIRTUAL_ENV", "UV_"))}
    for name, arguments in DOCKERFILE.runtime:
        if name == "ENV":
            for assignment in shlex.split(arguments):
                key, _, value = assignment.partition("=")
                env[key] = value.replace("/app/", f"{image}/").replace("$PATH", os.environ["PATH"])
    env.update(
        DATABASE_URL=str(settings.database_url),
        REDIS_URL=str(settings.redis_url),
        SUPABASE_JWT_SECRET=str(settings.supabase_jwt_secret),
        TRIPSAGE_ENCRYPTION_KEYS=str(settings.tripsage_encryption_keys),
        **extra,
    )
    return env


def test_the_image_holds_the_service_without_dev_dependencies(image: Path, settings: Settings) -> None:
    env = image_env(image, settings)
    venv = image / ".venv" / "bin"
    assert (venv / "tripsage").exists() and (venv / "uvicorn").exists() and (venv / "arq").exists()
    assert (
        subprocess.run([venv / "python", "-c", "import pytest"], env=env, capture_output=True, check=False).returncode
        != 0
    )  # noqa: S603
    migrated = subprocess.run(
        [venv / "tripsage", "migrate"], cwd=image, env=env, capture_output=True, text=True, check=False, timeout=120
    )  # noqa: S603
    assert migrated.returncode == 0, migrated.stderr
    assert "migrations applied" in migrated.stdout
    # The final stage runs as an unprivileged numeric user and says how to check its health.
    assert DOCKERFILE.one("USER") == "10001:10001"
    assert "/healthz" in DOCKERFILE.one("HEALTHCHECK")


@pytest.fixture(scope="module")
def api(image: Path, settings: Settings) -> Iterator[tuple[int, dict[str, str], int]]:
    """The image's CMD (uvicorn, two worker processes) running from the replayed /app."""
    port = free_port()
    env = image_env(image, settings, PORT=str(port), API_WORKERS="2", LOG_LEVEL="WARNING")
    command = exec_form(DOCKERFILE.one("CMD"))
    proc = subprocess.Popen(command, cwd=image, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    try:
        health = exec_form(DOCKERFILE.one("HEALTHCHECK"))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while subprocess.run(health, env=env, capture_output=True, check=False).returncode != 0:  # noqa: S603
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "uvicorn exited"
            assert time.monotonic() < deadline, "the image's HEALTHCHECK never passed"
            time.sleep(0.3)
        yield port, env, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert code == 0, stderr
        assert "Traceback" not in stderr, stderr


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_the_image_command_serves_with_several_worker_processes(api: tuple[int, dict[str, str], int]) -> None:
    port, _, pid = api
    assert len(children(pid)) >= 2  # API_WORKERS=2: uvicorn's supervisor and two worker processes
    ids = set()
    for _ in range(20):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:  # a new connection each time
            ready = fresh.get("/readyz")
            assert ready.status_code == 200, ready.text
            ids.add(ready.headers["x-request-id"])
    assert len(ids) == 20


@pytest.fixture
def proxy(api: tuple[int, dict[str, str], int], tmp_path: Path) -> Iterator[int]:
    """nginx with deploy/nginx.conf, its upstream pointed at the API on loopback."""
    if NGINX is None:
        pytest.skip("nginx is not installed (.ci/run installs nginx-light)")
    port = free_port()
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "http://api:8000" in conf and "listen 8080;" in conf
    conf = conf.replace("http://api:8000", f"http://127.0.0.1:{api[0]}").replace(
        "listen 8080;", f"listen 127.0.0.1:{port};"
    )
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;")
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(conf + "\nerror_log stderr;\n", encoding="utf-8")
    proc = subprocess.Popen(  # noqa: S603
        [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr", "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "nginx exited"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def worker(image: Path, api: tuple[int, dict[str, str], int], proxy: int) -> Iterator[None]:
    """`tripsage worker` from the replayed image, as the compose file's `worker` service runs it.

    Started after the proxy, whose fixture skips without nginx: a skip must not stop a worker
    still starting (it would die of the SIGTERM before arq handles it).
    """
    assert proxy
    proc = subprocess.Popen(
        [image / ".venv" / "bin" / "tripsage", "worker"],
        cwd=image,
        env=api[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # noqa: S603
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert code == 0 and "Traceback" not in stderr, stderr


def read_until(lines: Iterator[str], wanted: str, timeout: float) -> list[str]:
    """Lines of an event stream up to the first one equal to `wanted`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in lines:
        seen.append(line)
        if line == wanted:
            return seen
        assert time.monotonic() < deadline, seen
    raise AssertionError(f"stream ended before {wanted!r}: {seen}")


@pytest.mark.usefixtures("worker")
def test_the_proxy_passes_requests_and_streams_live_events(proxy: int) -> None:
    user = new_user("proxied")
    auth = {"Authorization": f"Bearer {user.token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{proxy}", timeout=20) as http:
        ready = http.get("/readyz", headers={"X-Request-ID": "from-the-client"})
        assert ready.status_code == 200
        assert ready.headers["x-request-id"] == "from-the-client"
        assert http.get("/healthz").headers["x-request-id"]  # nginx makes one when the client sent none
        assert http.get("/api/users/me", headers=auth).status_code == 200
        with http.stream("GET", "/api/events", headers=auth) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            read_until(lines, ": connected", 10)
            body = {
                "title": "Behind the proxy",
                "destination": "Oslo",
                "start_date": "2031-01-01",
                "end_date": "2031-01-03",
            }
            created = http.post("/api/trips", headers=auth, json=body)
            assert created.status_code == 201, created.text
            # The worker projects the trip; the API process holding the stream pushes it through nginx.
            event = read_until(lines, "event: trip", 15)
            data = read_until(lines, "", 5)
        assert event[-2].startswith("id: ")
        assert json.loads(data[0].removeprefix("data: "))["id"] == created.json()["id"]
