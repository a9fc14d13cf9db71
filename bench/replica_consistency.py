"""Read-your-writes on a real lagging streaming replica: how many reads are fresh, stale, or wrong.

    .venv/bin/python -m bench.replica_consistency [--rounds 200] [--delay-ms 400] [--waits 2000,0]

Makes a primary and a hot standby (`pg_basebackup -R`, `recovery_min_apply_delay = --delay-ms`) on
loopback from pgserver's binaries (tests.clusters), runs the API in-process with
`READ_DATABASE_URL` on the standby and a projector on the primary, and per round as one user:
creates a trip and reads it with the command's `X-Consistency-Token`, renames it and reads it and
the list with the rename's token. A read is *right* when it holds the write; *fresh but wrong*
(`X-Consistency: fresh` without the write) must never happen (contract §5); *stale* is the allowed
answer after `CONSISTENCY_WAIT_MS`. One table row per wait setting. Needs a Redis (`--redis-url`,
else `TEST_REDIS_URL`/`REDIS_URL`, else embedded).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from bench.projection_lag import ROOT, machine, pct
from core.embedded import start_redis
from tests.clusters import replicated_pair
from tests.support import free_port, make_settings, new_user, project_forever
from tripsage.app import create_app
from tripsage.logs import quiet_dependencies

TRIP = {"title": "t", "destination": "Lisbon", "start_date": "2031-05-01", "end_date": "2031-05-05"}


@dataclass
class Tally:
    """Outcomes of one kind of read."""

    right_fresh: int = 0
    stale: int = 0
    wrong_fresh: int = 0
    waits: list[float] = field(default_factory=list)

    def add(self, response: httpx.Response, holds: bool, seconds: float) -> None:
        """Count one read: `holds` says whether its body has the write."""
        self.waits.append(seconds)
        if response.headers.get("X-Consistency") == "stale":
            self.stale += 1
        elif holds:
            self.right_fresh += 1
        else:
            self.wrong_fresh += 1


async def timed(call: Any) -> tuple[httpx.Response, float]:
    """A request and its duration in seconds."""
    started = time.perf_counter()
    response = await call
    return response, time.perf_counter() - started


async def rounds(client: httpx.AsyncClient, count: int) -> dict[str, Tally]:
    """`count` rounds of write-then-read as one new user."""
    user = new_user("replica-bench")
    tallies = {"trip after create": Tally(), "trip after rename": Tally(), "list after rename": Tally()}
    assert (await client.get("/api/users/me", headers=user.headers)).status_code == 200
    for n in range(count):
        created = await client.post("/api/trips", json={**TRIP, "title": f"c{n}"}, headers=user.headers)
        trip_id, token = created.json()["id"], created.headers["X-Consistency-Token"]
        read = {**user.headers, "X-Consistency-Token": token}
        got, seconds = await timed(client.get(f"/api/trips/{trip_id}", headers=read))
        tallies["trip after create"].add(got, got.status_code == 200 and got.json()["title"] == f"c{n}", seconds)
        renamed = await client.patch(f"/api/trips/{trip_id}", json={"title": f"r{n}"}, headers=user.headers)
        read = {**user.headers, "X-Consistency-Token": renamed.headers["X-Consistency-Token"]}
        got, seconds = await timed(client.get(f"/api/trips/{trip_id}", headers=read))
        tallies["trip after rename"].add(got, got.status_code == 200 and got.json()["title"] == f"r{n}", seconds)
        listed, seconds = await timed(client.get("/api/trips?limit=5", headers=read))
        titles = [t["title"] for t in listed.json()["items"]] if listed.status_code == 200 else []
        tallies["list after rename"].add(listed, f"r{n}" in titles, seconds)
    return tallies


async def run(args: argparse.Namespace) -> list[str]:
    """Set up primary, standby and Redis; one pass of rounds per wait setting; the table's lines."""
    handles: list[Any] = []
    redis_url = args.redis_url or os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if not redis_url:
        redis_url, handle = start_redis(ROOT / ".tripsage" / "bench")
        handles.append(handle)
    lines = [
        "| wait (ms) | read | reads | fresh, with the write | stale | fresh WITHOUT the write | read time p50 / p99 ms |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    try:
        async with replicated_pair(free_port, apply_delay_ms=args.delay_ms) as pair:
            projector = asyncio.create_task(project_forever(pair.url, 0.01))
            try:
                for wait in args.waits:
                    settings = make_settings(
                        pair.url,
                        redis_url,
                        read_database_url=pair.read_url,
                        consistency_wait_ms=wait,
                        rate_limit_commands_per_minute=0,
                        rate_limit_queries_per_minute=0,
                    )
                    app = create_app(settings)
                    async with (
                        LifespanManager(app),
                        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
                    ):
                        for kind, tally in (await rounds(client, args.rounds)).items():
                            waits = " / ".join(f"{pct(tally.waits, q):.0f}" for q in (0.5, 0.99))
                            lines.append(
                                f"| {wait} | {kind} | {len(tally.waits)} | {tally.right_fresh} | {tally.stale} | {tally.wrong_fresh} | {waits} |"
                            )
            finally:
                projector.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await projector
    finally:
        for handle in handles:
            handle.shutdown()
    return lines


def main() -> None:
    """Parse the options, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--delay-ms", type=int, default=400, help="the standby's recovery_min_apply_delay")
    parser.add_argument(
        "--waits", type=lambda v: [int(x) for x in v.split(",")], default=[2000, 0], help="CONSISTENCY_WAIT_MS values"
    )
    args = parser.parse_args()
    quiet_dependencies()  # pgserver's runtime-dir warnings
    host = machine()
    lines = asyncio.run(run(args))
    print(f"\nRead-your-writes on a streaming replica (apply delay {args.delay_ms} ms) — {host}\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
