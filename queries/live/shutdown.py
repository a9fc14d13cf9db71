"""Open live streams end when the server is told to stop, however the API is run.

uvicorn (`tripsage serve`, `tripsage up`, `python -m tripsage.api.main`, `uvicorn
tripsage.api.main:app`) handles SIGTERM and SIGINT by letting open responses finish before it runs
the app's shutdown. A live stream never finishes by itself, so the server would wait for the
clients (or for its graceful timeout, then cancel them with an error). While the app runs, its
lifespan puts a handler in front of the server's: it ends every stream (each sends `: closing` and
returns), then hands the signal on to the server's own handler, which stops as usual and exits 0.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from queries.live.hub import LiveHub

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True, slots=True)
class ClosingHandler:
    """A signal handler that ends the hub's streams, then calls the handler it replaced."""

    hub: LiveHub
    previous: Callable[[int, FrameType | None], Any]

    def __call__(self, sig: int, frame: FrameType | None) -> None:
        """End the streams (thread- and signal-safe), then let the server stop as on Ctrl-C.

        SIGTERM is passed on as SIGINT: uvicorn re-raises the signal it stopped on once it is done,
        and a re-raised SIGTERM would kill the process with status 143 after a clean stop, where
        SIGINT becomes the KeyboardInterrupt every entry point (and uvicorn's own CLI) exits 0 on.
        """
        self.hub.request_close()
        self.previous(signal.SIGINT if sig == signal.SIGTERM else sig, frame)


@contextlib.contextmanager
def streams_end_on_signals(hub: LiveHub) -> Iterator[None]:
    """While the block runs, SIGTERM/SIGINT first end the hub's streams, then reach the previous handler.

    Only in the main thread (the only one that receives signals), and only over a Python handler
    (a server's): a process that dies on the signal by default keeps doing so. On exit the previous
    handlers come back, unless someone replaced ours meanwhile.

    Args:
        hub: The app's live-update hub.

    Yields:
        Nothing; the handlers are in place until the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed: list[tuple[signal.Signals, ClosingHandler]] = []
    for sig in SIGNALS:
        previous = signal.getsignal(sig)
        if callable(previous):
            installed.append((sig, ClosingHandler(hub, previous)))
            signal.signal(sig, installed[-1][1])
    try:
        yield
    finally:
        for sig, ours in installed:
            previous = ours.previous
            if signal.getsignal(sig) is ours:
                signal.signal(sig, previous)
