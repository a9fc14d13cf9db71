"""What an idle live stream holds in the API process: Python heap per stream, by allocation site.

    uv run python -m bench.live_memory [--streams 1000] [--frames 1]

Runs the app in uvicorn in this process (a thread) on a scratch database (`--database-url`, else
`TEST_DATABASE_URL` / `DATABASE_URL`) and a Redis (`--redis-url`, else `TEST_REDIS_URL` /
`REDIS_URL`); the clients (raw sockets, one `GET /api/events` each) run in a child process so
their allocations are not counted. After a warm-up of 200 streams, `tracemalloc` compares the heap
before and after `--streams` idle streams have opened. Prints the heap and RSS per stream and the
allocation sites that hold at least 64 bytes per stream. RSS here includes tracemalloc's own
bookkeeping; `bench.live_bench` measures RSS without it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import httpx

from core.auth import mint_token
from core.migrate import migrate
from core.scratch import create_database, drop_database
from tests.support import TEST_JWT_SECRET, make_settings, serve
from tripsage.app import create_app

CLIENTS = """
import asyncio, sys

async def one(port, token, ready):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /api/events HTTP/1.1\\r\\nHost: b\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n".encode())
    while line := await reader.readline():
        if line.startswith(b": connected"):
            ready.append(1)

async def main():
    port, tokens, ready, tasks = int(sys.argv[1]), open(sys.argv[2]).read().split(), [], []
    for token in tokens:
        tasks.append(asyncio.create_task(one(port, token, ready)))
        if len(tasks) % 100 == 0:
            await asyncio.sleep(0.05)
    while len(ready) < len(tokens):
        await asyncio.sleep(0.1)
    print("READY", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def rss() -> int:
    """This process's resident set size in bytes."""
    return int(Path(f"/proc/{os.getpid()}/statm").read_text(encoding="utf-8").split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_streams(port: int, tokens: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    """A child process holding one idle stream per token, returned once every stream is open."""
    (workdir / "tokens.txt").write_text("\n".join(tokens), encoding="utf-8")
    (workdir / "clients.py").write_text(CLIENTS, encoding="utf-8")
    child = subprocess.Popen(  # noqa: S603  # this interpreter, our own script
        [sys.executable, str(workdir / "clients.py"), str(port), str(workdir / "tokens.txt")], stdout=subprocess.PIPE
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != b"READY":
        raise RuntimeError("the client process did not open its streams")
    return child


async def measure(args: argparse.Namespace, url: str, redis_url: str) -> list[str]:
    """Serve the app, open the streams, and return the report's lines."""
    settings = make_settings(url, redis_url, rate_limit_commands_per_minute=0, rate_limit_queries_per_minute=0)
    tokens = [
        mint_token(secret=TEST_JWT_SECRET, email=f"m{i}@example.com", sub=uuid.uuid4()) for i in range(args.streams)
    ]
    with serve(create_app(settings)) as port, tempfile.TemporaryDirectory() as scratch:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            gate = asyncio.Semaphore(16)

            async def provision(token: str) -> None:
                async with gate:
                    response = await http.patch("/api/users/me", json={}, headers={"Authorization": f"Bearer {token}"})
                    response.raise_for_status()

            await asyncio.gather(*(provision(token) for token in tokens))
        warm = await asyncio.to_thread(open_streams, port, tokens[:200], Path(scratch))
        warm.kill()
        warm.wait()
        await asyncio.sleep(2)
        tracemalloc.start(args.frames)
        gc.collect()
        rss_before, before = rss(), tracemalloc.take_snapshot()
        streams = await asyncio.to_thread(open_streams, port, tokens, Path(scratch))
        try:
            await asyncio.sleep(2)
            gc.collect()
            rss_after, after = rss(), tracemalloc.take_snapshot()
        finally:
            streams.kill()
            streams.wait()
            tracemalloc.stop()
    stats = after.compare_to(before, "traceback" if args.frames > 1 else "lineno")
    count = args.streams
    lines = [
        f"{count} idle streams: Python heap {sum(s.size_diff for s in stats) / count / 1024:.2f} KiB per stream; "
        f"RSS {(rss_after - rss_before) / count / 1024:.1f} KiB per stream (tracemalloc's bookkeeping included)",
        "",
        "| bytes/stream | objects/stream | allocated at |",
        "|---:|---:|---|",
    ]
    for stat in stats:
        if stat.size_diff < count * 64:
            continue
        where = " ← ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(stat.traceback))
        lines.append(f"| {stat.size_diff / count:.0f} | {stat.count_diff / count:.1f} | {where} |")
    return lines


async def run(args: argparse.Namespace) -> list[str]:
    """Create the scratch database, measure, drop it."""
    admin = args.database_url or os.environ.get("TEST_DATABASE_URL") or os.environ["DATABASE_URL"]
    admin = admin.replace("postgresql://", "postgresql+asyncpg://", 1)
    redis_url = args.redis_url or os.environ.get("TEST_REDIS_URL") or os.environ["REDIS_URL"]
    url = await create_database(admin, "tripsage_live_memory")
    try:
        await asyncio.to_thread(migrate, url)
        return await measure(args, url, redis_url)
    finally:
        await drop_database(admin, url)


def main() -> None:
    """Parse the arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=1, help="traceback depth of each allocation site")
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    started = time.monotonic()
    lines = asyncio.run(run(args))
    print("\n".join([*lines, "", f"run took {time.monotonic() - started:.0f} s"]))  # noqa: T201  # the report


if __name__ == "__main__":
    main()
