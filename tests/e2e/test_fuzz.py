"""schemathesis against the service's own OpenAPI: every check, the stateful phase, two real users.

The fuzzer runs as its CLI (`st run`, what an outside tester runs) against a real uvicorn on a
loopback port, signed in as two users through a Web Fuzzing Commons auth file (so the
object-level authorization check can replay one user's reads as the other). It must end with
0 failures: no 5xx, no response outside the document, no schema-violating request accepted, an
exact `Allow` on every 405.

CI runs a bounded number of examples per operation (a couple of minutes on 2 cores); the longer
run is the same test with `TRIPSAGE_FUZZ_EXAMPLES` raised, e.g.::

    TRIPSAGE_FUZZ_EXAMPLES=500 uv run pytest -q tests/e2e/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy.ext.asyncio import create_async_engine

from core.settings import Settings
from projections.apply import drain
from tests.support import User, free_port, make_settings, new_user
from tripsage.app import create_app

EXAMPLES = int(os.environ.get("TRIPSAGE_FUZZ_EXAMPLES", "50"))
"""Examples per operation and phase; CI's default keeps the whole run to about two minutes."""
SEED = int(os.environ.get("TRIPSAGE_FUZZ_SEED", "20261206"))
"""A fixed seed, so a CI failure replays the same cases."""
ST = Path(sys.executable).with_name("st")
CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("fuzz_hooks.py")


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """The API on a loopback port (its own engines and event loop, in a thread)."""
    # A short read-your-writes wait: the fuzzer sends well-formed tokens of transactions that never
    # happened, and each would otherwise wait the full default 2 s.
    fuzz_settings = make_settings(str(settings.database_url), str(settings.redis_url), consistency_wait_ms=20)
    port = free_port()
    config = uvicorn.Config(
        create_app(fuzz_settings), host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        threading.Event().wait(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def projector(database_url: str) -> Iterator[None]:
    """The projection worker's loop, in a thread with its own event loop, so queries see the writes."""
    stop = threading.Event()

    async def run() -> None:
        engine = create_async_engine(database_url)
        try:
            while not stop.is_set():
                await drain(engine)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.to_thread(stop.wait, 0.02), 1)
        finally:
            await engine.dispose()

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


def _auth_file(path: Path, users: list[User]) -> Path:
    """A Web Fuzzing Commons auth document naming each user's bearer token."""
    doc = {
        "schemaVersion": "0.2.0",
        "auth": [
            {"name": user.email, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {user.token}"}]}
            for user in users
        ],
    }
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.usefixtures("projector")
def test_schemathesis_finds_nothing(server: str, tmp_path: Path) -> None:
    auth = _auth_file(tmp_path / "auth.json", [new_user("fuzz-a"), new_user("fuzz-b")])
    report = tmp_path / "report"
    command = [
        str(ST),
        f"--config-file={CONFIG}",
        "run",
        f"{server}/openapi.json",
        "--checks=all",
        "--phases=examples,coverage,fuzzing,stateful",
        f"--max-examples={EXAMPLES}",
        f"--seed={SEED}",
        f"--auth-wfc={auth}",
        os.environ.get("TRIPSAGE_FUZZ_PATHS", "--include-path-regex=^/api/"),
        "--exclude-path=/api/events",
        "--workers=1",
        "--request-timeout=10",
        "--report=ndjson",
        f"--report-dir={report}",
        "--continue-on-failure",
        "--no-color",
        *os.environ.get("TRIPSAGE_FUZZ_ARGS", "").split(),
    ]
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "SCHEMATHESIS_HOOKS": str(HOOKS), "NO_COLOR": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, env=env, cwd=tmp_path)
    print(run.stdout, run.stderr)  # noqa: T201  # the run's own report, shown by pytest on failure and with -s
    assert run.returncode == 0, run.stdout[-3000:]
