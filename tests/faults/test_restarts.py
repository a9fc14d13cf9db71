"""PostgreSQL restarted again and again under load: only 503s, never a 500, and no ERROR in the API's log.

Regression: a restart's FATAL reached the one-round-trip calls as a server error, so the
connection went back to the pool before the driver saw it close, and the next request on it
failed with asyncpg's "another operation is in progress" (500). Seen about once per two
restarts at ten clients before the fix; none in 25 restarts after.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.harness import restart_storm


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_repeated_restarts_answer_only_503(tmp_path: Path, mode: str) -> None:
    report = await restart_storm(tmp_path / "stack", restarts=6, mode=mode)
    assert report.statuses["201"] > 0 and report.statuses["503"] > 0, report.statuses
    assert report.unexpected_5xx == 0, (report.statuses, report.api_errors[:5])
    assert report.api_errors == [], report.api_errors[:5]
