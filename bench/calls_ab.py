"""A/B over HTTP, interleaved: the write bench's commands with their engine's settings varied side by side.

One uvicorn server (one worker) per configuration, all up at once on the write bench's database;
each round runs wrk (16 connections, unique bodies, `--seconds` each) against every server in
turn, so a slow phase of a shared VM hits every configuration alike. Prints, per command and
configuration, the median and the spread over the rounds of req/s, p99 and the CPU per request of
the API process and of PostgreSQL's backends. Every server and round writes to its own 400 fresh
trips (an activity's caps count the trip's activities). Never a test.

    uv run python -m bench.calls_ab [--rounds 5] [--seconds 6] [--command activity] \
        [--config "DB_POOL_SIZE=20 DB_POOL_OVERFLOW=20" --config "DB_POOL_SIZE=4 DB_POOL_OVERFLOW=0" ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

from bench.harness import CpuSplit, LoadResult, run_wrk, uvicorn_command
from bench.read_bench import _wait_ready, cpu_idle
from bench.write_bench import BODIES, DEFAULT_URL, METHODS, TITLES, lua_script, make_targets, paths, prepare
from core.settings import normalize_database_url

DEFAULT_CONFIGS = ("DB_POOL_SIZE=20 DB_POOL_OVERFLOW=20", "DB_POOL_SIZE=4 DB_POOL_OVERFLOW=0")


@dataclass
class Results:
    """Every round's measurement of one configuration and command."""

    loads: list[LoadResult] = field(default_factory=list)
    cpus: list[CpuSplit] = field(default_factory=list)


def parse_config(text: str) -> dict[str, str]:
    """`NAME=value NAME=value` → the environment a server runs with."""
    return dict(pair.split("=", 1) for pair in text.split())


def spread(values: list[float], fmt: str) -> str:
    """Median (min–max) of the rounds."""
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("BENCH_WRITE_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--command", action="append", choices=sorted(BODIES), help="default: all three")
    parser.add_argument(
        "--config", action="append", help=f"server environment (default: {' / '.join(DEFAULT_CONFIGS)})"
    )
    args = parser.parse_args()
    commands, configs = args.command or list(BODIES), args.config or list(DEFAULT_CONFIGS)
    idle = cpu_idle()
    secret, token, _ = asyncio.run(prepare(args.url, 0))
    # Fresh trips for every server and round: an activity's size caps count the trip's activities,
    # so trips written to by earlier rounds would make later rounds slower.
    fresh = asyncio.run(make_targets(args.url, 400 * len(configs) * (args.rounds + 1)))
    dbname = str(make_url(normalize_database_url(args.url)).database)
    servers: list[tuple[str, subprocess.Popen[bytes], str]] = []
    results = {(config, command): Results() for config in configs for command in commands}
    run_id = uuid.uuid4().hex[:8]
    try:
        for i, config in enumerate(configs):
            port = 19300 + os.getpid() % 500 + i
            env = os.environ | {"BENCH_URL": args.url, "BENCH_SECRET": secret} | parse_config(config)
            command = uvicorn_command("bench.write_bench:http_app", port)
            servers.append((config, subprocess.Popen(command, env=env), f"http://127.0.0.1:{port}"))  # noqa: S603  # pylint: disable=consider-using-with  # stopped in `finally`
        for _, _, base in servers:
            _wait_ready(base)
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(args.rounds + 1):  # round 0 warms every server
                for name in commands:
                    for i, (config, server, base) in enumerate(servers):
                        start = 400 * (round_ * len(servers) + i)
                        script = os.path.join(tmp, f"{name}-{round_}-{server.pid}.lua")
                        with open(script, "w", encoding="utf-8") as out:
                            body = BODIES[name]
                            targets = fresh[start : start + 400]
                            out.write(lua_script(METHODS[name], paths(name, "d", targets), body, f"{run_id}{round_}"))
                        before = CpuSplit.sample(server.pid, dbname)
                        seconds = 2 if round_ == 0 else args.seconds
                        load = run_wrk(
                            base + "/healthz", token, connections=args.connections, seconds=seconds, script=script
                        )
                        if round_:
                            cell = results[(config, name)]
                            cell.loads.append(load)
                            cell.cpus.append(
                                CpuSplit.between(before, CpuSplit.sample(server.pid, dbname), load.requests)
                            )
    finally:
        for _, server, _ in servers:
            server.terminate()
            server.wait(timeout=30)
    print("## Engine settings A/B (interleaved)\n")
    print(f"`uv run python -m bench.calls_ab {' '.join(sys.argv[1:])}`  ")
    print(
        f"{os.cpu_count()} CPUs; CPU idle before/after: {idle:.0%} / {cpu_idle():.0%}; {args.rounds} rounds of"
        f" {args.seconds:g} s per server and command, wrk -c{args.connections}; median (min–max) over the rounds.\n"
    )
    print("| command | server environment | req/s | p99 ms | CPU ms/req API | CPU ms/req PG | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in commands:
        for config in configs:
            cell = results[(config, name)]
            print(
                f"| `{TITLES[name]}` | `{config}` | {spread([r.rps for r in cell.loads], ',.0f')}"
                f" | {spread([r.p99_ms for r in cell.loads], '.1f')} | {spread([c.api_ms for c in cell.cpus], '.2f')}"
                f" | {spread([c.db_ms for c in cell.cpus], '.2f')} | {sum(r.errors for r in cell.loads)} |"
            )


if __name__ == "__main__":
    main()
