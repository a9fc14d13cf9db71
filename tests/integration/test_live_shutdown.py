"""Every way of running the API ends its open live streams promptly on SIGTERM and SIGINT, and exits 0.

A stream never ends by itself, so a server that lets open responses finish before its shutdown
(uvicorn does) would otherwise wait for the clients, or for its graceful timeout, and then cancel
them with a traceback. Each test runs the API as a real subprocess with a stream open.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from core.settings import Settings
from tests.integration.live_procs import WAYS, api_process
from tests.support import free_port, new_user

PROMPT_S = 10.0
"""Generous: the box is shared. A hang would last until the client's read timeout (60 s here)."""


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_ends_open_streams_and_the_process_exits_0(
    settings: Settings, way: str, sig: signal.Signals
) -> None:
    port = free_port()
    user = new_user("leaving")
    with api_process(settings, port, way) as proc:
        timeout = httpx.Timeout(10, read=60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as http:
            assert (await http.patch("/api/users/me", json={}, headers=user.headers)).status_code == 200
            async with http.stream("GET", "/api/events", headers=user.headers) as response:
                chunks = response.aiter_raw()
                opening = await anext(chunks)
                assert b": connected" in opening
                proc.send_signal(sig)
                signalled = time.monotonic()
                rest = b"".join([chunk async for chunk in chunks])  # EOF, not a reset connection
                ended = time.monotonic() - signalled
        _, stderr = await asyncio.to_thread(proc.communicate, timeout=PROMPT_S * 3)
    log = stderr.decode()
    assert ended < PROMPT_S, f"the stream ended {ended:.1f} s after the signal"
    assert b": closing" in rest, rest  # a last comment: the server ended the stream, not the network
    assert proc.returncode == 0, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log and "CancelledError" not in log, log
