"""The fault run, short: every dependency fails in turn under load, and nothing is lost or doubled.

The long run is `uv run python -m tests.faults.harness` (README "Reliability").
"""

from __future__ import annotations

from pathlib import Path

from tests.faults.harness import run


async def test_faults_lose_nothing_and_answer_only_503(tmp_path: Path) -> None:
    report = await run(tmp_path / "stack", scale=0.3, clients=6, users=4)
    print(report.table())  # noqa: T201  # shown with -s, and in the failure output
    assert report.acknowledged > 20, report.table()  # a loaded 2-core machine still writes this many
    assert report.lost == [] and report.duplicated == [], report.table()
    assert report.unexpected_5xx == 0, report.table()
    assert report.api_errors == [], report.table()
    assert report.differences == 0 and report.stale_gets == 0, report.table()
    assert report.cuts > 0, "the proxy cut no response: the idempotent replay path went untested"
    assert report.gave_up == 0, report.table()
    assert all(seconds < 15 for seconds in report.recovery_s.values()), report.recovery_s
