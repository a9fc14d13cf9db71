"""What the rebuild and the rollback share: their options, their error, and lock-wait retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger("tripsage.rebuild")

RETRYABLE = ("55P03", "40P01")
"""Lock wait timed out; deadlock (should not happen, see `shadow.lock_live`, but is safe to retry)."""
T = TypeVar("T")
ProgressHook = Callable[[str, int, int], None]
"""Called with (phase, done, total): `build` in trips, `catch-up` in trips, `switch` 0/1 then 1/1."""


@dataclass(frozen=True, slots=True)
class RebuildOptions:  # pylint: disable=too-many-instance-attributes  # one field per tuning knob
    """Tuning of a rebuild; the defaults suit a live primary on a small machine.

    Attributes:
        batch_size: Trips per build or catch-up transaction.
        concurrency: Parts built at once.
        pause_s: Sleep between build batches (eases load).
        catch_up_until: Catch-up rounds (outside any lock) go on until at most this many captured
            changes remain.
        catch_up_batches: At most this many catch-up rounds before each switch attempt.
        max_switch_trips: The switch refreshes the trips still captured under its exclusive lock
            only if they are at most this many; otherwise it lets go of the lock, catches up outside
            it and tries again. This bounds how long readers and the worker wait for the switch.
        lock_timeout_s: How long one switch (or rollback) attempt waits for the read tables' locks.
        lock_attempts: Switch (or rollback) attempts before giving up with a clear error.
    """

    batch_size: int = 500
    concurrency: int = 2
    pause_s: float = 0.0
    catch_up_until: int = 100
    catch_up_batches: int = 200
    max_switch_trips: int = 500
    lock_timeout_s: float = 1.0
    lock_attempts: int = 30


class RebuildError(RuntimeError):
    """A rebuild or rollback that cannot proceed (the message says why)."""


def sqlstate(exc: DBAPIError) -> str:
    """The SQLSTATE of a database error (asyncpg keeps it on the driver exception or its cause)."""
    orig = exc.orig
    return str(getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None) or "")


def busy_error(what: str, options: RebuildOptions) -> RebuildError:
    """The error once every attempt at the read tables' locks timed out (nothing was changed)."""
    return RebuildError(
        f"{what}: the read tables stayed busy (long queries or transactions held them) through"
        f" {options.lock_attempts} attempts of {options.lock_timeout_s:g} s; nothing was switched."
        " Run the same command again (a rebuild resumes where it was)."
    )


async def retrying(action: Callable[[], Awaitable[T]], options: RebuildOptions, what: str) -> T:
    """Run `action`, again after a pause when it gave up waiting for a table lock (55P03).

    Raises:
        RebuildError: Every attempt timed out waiting for a lock.
    """
    for attempt in range(1, options.lock_attempts + 1):
        try:
            return await action()
        except DBAPIError as exc:
            if sqlstate(exc) not in RETRYABLE:
                raise
            if attempt == options.lock_attempts:
                raise busy_error(what, options) from exc
            log.info("%s: tables busy (attempt %d of %d), retrying", what, attempt, options.lock_attempts)
            await asyncio.sleep(backoff(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def backoff(attempt: int) -> float:
    """Seconds to wait after the `attempt`-th failed attempt: 0.1, 0.2, 0.4… capped at 2."""
    return float(min(0.05 * 2**attempt, 2.0))


def lock_timeout_ms(options: RebuildOptions) -> int:
    """How long one attempt waits for a lock, in milliseconds."""
    return max(1, int(options.lock_timeout_s * 1000))


def lock_timeout(options: RebuildOptions) -> dict[str, str]:
    """Parameters of `shadow.LOCK_TIMEOUT`."""
    return {"timeout": f"{lock_timeout_ms(options)}ms"}
