"""schemathesis against the service's own OpenAPI: every check, the stateful phase, two real users.

The fuzzer runs as its CLI (`st run`, what an outside tester runs) against a real uvicorn on a
loopback port, signed in as two users through a Web Fuzzing Commons auth file (so the
object-level authorization check can replay one user's reads as the other). It must end with
0 failures: no 5xx, no response outside the document, no schema-violating request accepted, an
exact `Allow` on every 405.

CI runs 50 examples per operation and phase (under a minute on 2 cores). The longer run is the
same test with more examples and, to explore other cases, another seed (300 examples: about 3
minutes); extra `st run` options go in `TRIPSAGE_FUZZ_ARGS`, e.g. an NDJSON report of every call::

    TRIPSAGE_FUZZ_EXAMPLES=300 TRIPSAGE_FUZZ_SEED=7 uv run pytest -q -s tests/e2e/test_fuzz.py
    TRIPSAGE_FUZZ_ARGS="--report=ndjson --report-dir=/tmp/fuzz" uv run pytest -q -s tests/e2e/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from core.settings import Settings
from projections.apply import drain
from tests.support import User, make_settings, new_user, serve
from tripsage.app import create_app

EXAMPLES = int(os.environ.get("TRIPSAGE_FUZZ_EXAMPLES", "50"))
"""Examples per operation and phase: the default run takes under a minute on 2 cores (3,860 cases)."""
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
    fuzz_settings = make_settings(
        str(settings.database_url),
        str(settings.redis_url),
        consistency_wait_ms=20,
        rate_limit_commands_per_minute=0,  # thousands of cases from two users: budgets would answer 429
        rate_limit_queries_per_minute=0,
    )
    with serve(create_app(fuzz_settings)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def projector(database_url: str) -> Iterator[None]:
    """The projection worker's loop, in a thread with its own event loop, so queries see the writes."""
    stop = threading.Event()

    async def run() -> None:
        engine = create_async_engine(database_url)
        try:
            while not stop.is_set():
                await drain(engine)
                await asyncio.sleep(0.02)
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
        "--include-path-regex=^/api/",
        "--exclude-path=/api/events",  # a stream (text/event-stream) that never ends: not for this fuzzer
        "--workers=1",
        "--request-timeout=10",
        "--continue-on-failure",
        "--no-color",
        *os.environ.get("TRIPSAGE_FUZZ_ARGS", "").split(),
    ]
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "SCHEMATHESIS_HOOKS": str(HOOKS), "NO_COLOR": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, env=env, cwd=tmp_path)
    print(run.stdout, run.stderr)  # noqa: T201  # the run's own report, shown by pytest on failure and with -s
    assert run.returncode == 0, run.stdout[-3000:]
    cases = re.search(r"Test cases:\s+(\d+) generated, (\d+) passed", run.stdout)
    assert cases is not None and cases.group(1) == cases.group(2) and int(cases.group(1)) >= 10 * EXAMPLES
    tested, selected = re.search(r"Tested: (\d+)", run.stdout), re.search(r"Selected: (\d+)/", run.stdout)
    assert tested is not None and selected is not None and tested.group(1) == selected.group(1)
