"""The fault run: mixed load from concurrent clients while dependencies crash, pause and restart.

Clients (one user each, several users shared by two clients) mix commands, all with an
`Idempotency-Key` where the contract offers one and retried on connection errors, 503 and 409 (a
retry racing its first attempt), with queries. Meanwhile the faults run in turn: SIGKILL the
worker (restarted), SIGSTOP it, stop Redis, restart PostgreSQL `fast` and `immediate`, SIGKILL the
API (restarted), and cut connections after the request was sent through the proxy, so that
commits lose their responses and the retries must be answered from the idempotency record.

Afterwards: every write a client was told succeeded is in the write model exactly once, and no
write is there twice; once the worker has caught up, `verify` finds no difference between the read
model and a fresh build, and every trip's GET shows the write model's version; no 5xx but 503.

`python -m tests.faults.harness [--scale 1.0]` runs the long version (about two minutes) and prints
the report; `tests/faults/test_faults.py` runs a short one in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from core.db import create_engine
from projections.rebuild.verify import verify
from tests.faults.stack import Stack
from tests.support import User, new_user

RETRY_FOR_S = 30.0
RETRIED = {409, 503}


@dataclass
class Tally:
    """What the clients saw: statuses per fault window, and the writes they were told succeeded."""

    window: str = "warm-up"
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    acknowledged: dict[str, str] = field(default_factory=dict)  # marker → table
    attempted: dict[str, str] = field(default_factory=dict)
    gave_up: int = 0
    trips: dict[uuid.UUID, list[str]] = field(default_factory=lambda: defaultdict(list))  # user → trip ids
    tokens: dict[str, str] = field(default_factory=dict)  # trip id → consistency token of its last write

    def saw(self, what: str) -> None:
        """Count one response (or connection error) in the current window."""
        self.statuses[self.window][what] += 1


@dataclass
class Client:
    """One client: a user, an HTTP connection pool through the proxy, and the tally."""

    user: User
    http: httpx.AsyncClient
    tally: Tally
    rng: random.Random

    async def send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        key: str | None = None,
        consistency: str | None = None,
    ) -> httpx.Response | None:
        """Send until a final answer (retrying connection errors, 409 and 503), or give up after a while."""
        headers = dict(self.user.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        if consistency is not None:
            headers["X-Consistency-Token"] = consistency
        deadline, delay = time.monotonic() + RETRY_FOR_S, 0.02
        while time.monotonic() < deadline:
            try:
                response = await self.http.request(method, path, json=body, headers=headers)
            except httpx.TransportError as exc:
                self.tally.saw(f"conn:{type(exc).__name__}")
            else:
                self.tally.saw(str(response.status_code))
                if response.status_code not in RETRIED:
                    return response
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        self.tally.gave_up += 1
        return None

    async def write(
        self, path: str, table: str, body: dict[str, Any], *, method: str = "POST"
    ) -> dict[str, Any] | None:
        """A command whose body carries a unique marker (its title) and, for POST, the same Idempotency-Key."""
        marker = body.get("title") or body["description"]
        self.tally.attempted[marker] = table
        response = await self.send(method, path, body, key=marker if method == "POST" else None)
        if response is not None and response.is_success:
            self.tally.acknowledged[marker] = table
            result: dict[str, Any] = response.json()
            trip_id = str(result.get("trip_id") or result["id"])
            self.tally.tokens[trip_id] = response.headers["X-Consistency-Token"]
            return result
        return None

    async def step(self) -> None:
        """One operation, chosen at random among the mix."""
        mine = self.tally.trips[self.user.id]
        roll = self.rng.random()
        marker = f"m-{uuid.uuid4().hex}"
        if roll < 0.2 or not mine:
            trip = await self.write(
                "/api/trips",
                "trips",
                {"title": marker, "destination": "D", "start_date": "2027-03-01", "end_date": "2027-03-09"},
            )
            if trip is not None:
                mine.append(trip["id"])
            return
        trip_id = self.rng.choice(mine)
        if roll < 0.4:
            itinerary = await self.write(f"/api/trips/{trip_id}/itineraries", "itineraries", {"title": marker})
            if itinerary is not None:
                await self.write(
                    f"/api/trips/{trip_id}/itineraries/{itinerary['id']}/activities",
                    "activities",
                    {"title": f"a-{marker}", "price": "12.50", "currency": "EUR"},
                )
        elif roll < 0.55:
            await self.write(f"/api/trips/{trip_id}", "trip_descriptions", {"description": marker}, method="PATCH")
        elif roll < 0.8:
            await self.send("GET", f"/api/trips/{trip_id}", consistency=self.tally.tokens.get(trip_id))
        else:
            await self.send("GET", "/api/trips?limit=10")


@dataclass
class Fault:
    """A named fault: `inject` breaks something, `restore` mends it after `hold` seconds."""

    name: str
    inject: Callable[[], Awaitable[None]]
    restore: Callable[[], Awaitable[None]]
    hold: float


def faults(stack: Stack, scale: float) -> list[Fault]:
    """The faults, in the order they are run."""

    async def nothing() -> None:
        return None

    async def kill_worker() -> None:
        stack.kill(stack.worker)

    async def start_worker() -> None:
        stack.start_worker()

    async def stop_worker() -> None:
        stack.pause(stack.worker, paused=True)

    async def cont_worker() -> None:
        stack.pause(stack.worker, paused=False)

    async def kill_redis() -> None:
        stack.kill(stack.redis)

    async def start_redis() -> None:
        stack.start_redis()

    async def pg_fast() -> None:
        await stack.restart_postgres("fast")

    async def pg_immediate() -> None:
        await stack.restart_postgres("immediate")

    async def kill_api() -> None:
        stack.kill(stack.api)

    async def start_api() -> None:
        stack.start_api()

    async def cut_on() -> None:
        assert stack.proxy is not None
        stack.proxy.cut_ratio = 0.3

    async def cut_off() -> None:
        assert stack.proxy is not None
        stack.proxy.cut_ratio = 0.0

    return [
        Fault("worker SIGKILL", kill_worker, start_worker, 1.0 * scale),
        Fault("worker SIGSTOP", stop_worker, cont_worker, 5.0 * scale),
        Fault("Redis stopped", kill_redis, start_redis, 5.0 * scale),
        Fault("PostgreSQL restart -m fast", pg_fast, nothing, 0.0),
        Fault("PostgreSQL restart -m immediate", pg_immediate, nothing, 0.0),
        Fault("API SIGKILL", kill_api, start_api, 1.0 * scale),
        Fault("responses cut after commit (30 %)", cut_on, cut_off, 5.0 * scale),
    ]


@dataclass
class Report:
    """The run's outcome."""

    statuses: dict[str, Counter[str]]
    recovery_s: dict[str, float]
    acknowledged: int
    lost: list[str]
    duplicated: list[str]
    unexpected_5xx: int
    differences: int
    trips_checked: int
    stale_gets: int
    cuts: int
    gave_up: int
    api_errors: list[str] = field(default_factory=list)

    def table(self) -> str:
        """The report as Markdown tables."""
        lines = ["| window | requests by status |", "|---|---|"]
        for window, counts in self.statuses.items():
            shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
            lines.append(f"| {window} | {shown} |")
        lines += ["", "| fault | API answering again after the fault ended (s) |", "|---|---:|"]
        lines += [f"| {name} | {seconds:.2f} |" for name, seconds in self.recovery_s.items()]
        lines += [
            "",
            f"acknowledged writes {self.acknowledged}; lost {len(self.lost)}; written twice {len(self.duplicated)}; "
            f"5xx other than 503: {self.unexpected_5xx}; responses cut by the proxy: {self.cuts}; "
            f"requests given up: {self.gave_up}; read model differences: {self.differences} "
            f"(of {self.trips_checked} trips); GETs behind the write model: {self.stale_gets}",
        ]
        if self.api_errors:
            lines += ["", "API log, ERROR lines (first 5):", *(f"- {line}" for line in self.api_errors[:5])]
        return "\n".join(lines)


def api_errors(log: Path) -> list[str]:
    """The API's ERROR log lines, each as logger, message and the exception's last line."""
    found = []
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in {"ERROR", "CRITICAL"}:
            last = str(entry.get("exc", "")).strip().splitlines()[-1:] or [""]
            found.append(f"{entry.get('logger')}: {str(entry.get('msg', '')).strip()} {last[0]}".strip())
    return found


@asynccontextmanager
async def under_load(url: str, tally: Tally, people: list[User], *, clients: int, seed: int) -> AsyncIterator[None]:
    """Clients looping over the operation mix at `url` for as long as the block runs.

    Args:
        url: Where the clients send (the API, or the cutting proxy in front of it).
        tally: Where they count what they saw.
        people: The users (their profiles are provisioned first).
        clients: How many concurrent clients, cycling over the users.
        seed: Seed of the operation mix.

    Yields:
        Once every client runs; on exit the clients finish their current operation and stop.
    """
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for person in people:  # provision every profile before the faults begin
            await http.get("/api/users/me", headers=person.headers)
        rng = random.Random(seed)
        workers = [
            Client(person, http, tally, random.Random(rng.random()))
            for person in itertools.islice(itertools.cycle(people), clients)
        ]

        async def loop(client: Client) -> None:
            while not stop.is_set():
                await client.step()

        tasks = [asyncio.create_task(loop(c)) for c in workers]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def _written_counts(stack: Stack, markers: list[str]) -> dict[str, int]:
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT title, count(*) FROM (SELECT title FROM trips UNION ALL SELECT title FROM itineraries"
                    " UNION ALL SELECT title FROM activities) w WHERE title = ANY(:m) GROUP BY title"
                ),
                {"m": markers},
            )
            return {str(title): int(n) for title, n in rows}
    finally:
        await engine.dispose()


async def _converged(stack: Stack, users: list[User]) -> tuple[int, int, int]:
    """Wait for the worker to catch up; then verify, and compare each trip's GET with the write model."""
    engine = create_engine(stack.database_url, pool_size=2)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                if not await conn.scalar(text("SELECT EXISTS (SELECT 1 FROM tripsage.changes)")):
                    break
            await asyncio.sleep(0.2)
        report = await verify(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, version, owner_id FROM trips"))).all()
    finally:
        await engine.dispose()
    versions: dict[uuid.UUID, int] = {row[0]: row[1] for row in rows}
    owners: dict[uuid.UUID, uuid.UUID] = {row[0]: row[2] for row in rows}
    by_id = {user.id: user for user in users}
    stale = 0
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as http:
        for trip_id, version in versions.items():
            response = await http.get(f"/api/trips/{trip_id}", headers=by_id[owners[trip_id]].headers)
            if response.status_code != 200 or response.json()["version"] != version:
                stale += 1
    return len(report.differences), report.checked, stale


async def run(base: Path, *, scale: float = 1.0, clients: int = 8, users: int = 5, seed: int = 7) -> Report:
    """Run the whole fault sequence under load and check the outcome.

    Args:
        base: A fresh directory for the stack's processes and logs.
        scale: Multiplies every fault's hold and the calm periods (1.0: the long run, ~2 minutes).
        clients: Concurrent clients.
        users: Distinct users among them.
        seed: Seed of the operation mix.

    Returns:
        The report.
    """
    stack = Stack(base)
    await stack.start()
    tally = Tally()
    people = [new_user(f"f{i}") for i in range(users)]
    recovery: dict[str, float] = {}
    try:
        async with under_load(stack.proxy_url, tally, people, clients=clients, seed=seed):
            calm = 3.0 * scale
            tally.window = "baseline"
            await asyncio.sleep(calm)
            for fault in faults(stack, scale):
                tally.window = fault.name
                await fault.inject()
                await asyncio.sleep(fault.hold)
                await fault.restore()
                recovery[fault.name] = await stack.wait_ready()
                tally.window = f"after {fault.name}"
                await asyncio.sleep(calm)
        counts = await _written_counts(stack, [m for m, t in tally.attempted.items() if t != "trip_descriptions"])
        differences, checked, stale = await _converged(stack, people)
    finally:
        await stack.stop()
    acknowledged_rows = [m for m, table in tally.acknowledged.items() if table != "trip_descriptions"]
    return Report(
        statuses=dict(tally.statuses),
        recovery_s=recovery,
        acknowledged=len(tally.acknowledged),
        lost=[m for m in acknowledged_rows if counts.get(m, 0) == 0],
        duplicated=[m for m, n in counts.items() if n > 1],
        unexpected_5xx=sum(
            n
            for window in tally.statuses.values()
            for status, n in window.items()
            if status.startswith("5") and status != "503"
        ),
        differences=differences,
        trips_checked=checked,
        stale_gets=stale,
        cuts=stack.proxy.cuts if stack.proxy else 0,
        gave_up=tally.gave_up,
        api_errors=api_errors(base / "api.log"),
    )


@dataclass
class StormReport:
    """What clients saw while PostgreSQL restarted again and again."""

    statuses: Counter[str]
    api_errors: list[str]

    @property
    def unexpected_5xx(self) -> int:
        """Answers 5xx other than 503."""
        return sum(n for status, n in self.statuses.items() if status.startswith("5") and status != "503")


async def restart_storm(base: Path, *, restarts: int, mode: str, clients: int = 10, users: int = 4) -> StormReport:
    """Restart PostgreSQL `restarts` times (`pg_ctl stop -m MODE`, then start) under a steady load.

    Each restart ends every pooled connection at once, some mid-statement: the run shows whether
    any of them reaches a later request as anything but a 503.

    Args:
        base: A fresh directory for the stack's processes and logs.
        restarts: How many restarts.
        mode: `fast` or `immediate`.
        clients: Concurrent clients (straight to the API, no cutting proxy).
        users: Distinct users among them.

    Returns:
        The statuses seen and the API's ERROR log lines.
    """
    stack = Stack(base)
    await stack.start()
    tally = Tally(window="storm")
    try:
        async with under_load(
            stack.api_url, tally, [new_user(f"s{i}") for i in range(users)], clients=clients, seed=11
        ):
            for _ in range(restarts):
                await asyncio.sleep(0.7)
                await stack.restart_postgres(mode)
                await stack.wait_ready()
    finally:
        await stack.stop()
    return StormReport(statuses=tally.statuses["storm"], api_errors=api_errors(base / "api.log"))


def main() -> None:
    """`python -m tests.faults.harness [--scale S] [--clients N] [--restarts N --mode fast|immediate]`: run, print."""
    parser = argparse.ArgumentParser(description="TripSage fault run (loopback only)")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=0, help="instead: restart PostgreSQL N times under load")
    parser.add_argument("--mode", choices=["fast", "immediate"], default="fast", help="with --restarts")
    args = parser.parse_args()
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="tripsage-faults-"))
    if args.restarts:
        storm = asyncio.run(
            restart_storm(base, restarts=args.restarts, mode=args.mode, clients=args.clients, users=args.users)
        )
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(storm.statuses.items()))
        print(f"{args.restarts} restarts (-m {args.mode}): {shown}; 5xx other than 503: {storm.unexpected_5xx}")  # noqa: T201
        if storm.api_errors:
            print("\n".join(["API log, ERROR lines:", *storm.api_errors[:5]]))  # noqa: T201
    else:
        report = asyncio.run(run(base, scale=args.scale, clients=args.clients, users=args.users))
        print(report.table())  # noqa: T201  # the command's output
    print(f"\nrun took {time.monotonic() - started:.0f} s")  # noqa: T201


if __name__ == "__main__":
    main()
