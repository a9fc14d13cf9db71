"""The per-request plumbing, piece by piece: token verification and the ways to open an RLS read transaction."""

from __future__ import annotations

import functools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.harness import backend_cpu, counting_proxy
from core.auth import Principal, TokenVerifier
from core.db import Database, set_request_claims
from core.settings import normalize_database_url
from queries.plumbing import begin_sql, call_as, read_transaction
from queries.trips import TRIP_GET

ROUNDS = 5
RAW_GET = (
    "SELECT etag, CASE WHEN etag = ANY($1::text[]) THEN NULL ELSE doc END FROM trip_views"
    " WHERE trip_id = $2 AND $3::uuid = ANY(member_ids)"
)
GET_STATEMENT = text(
    "SELECT etag, CASE WHEN etag = ANY(CAST(:if_none_match AS text[])) THEN NULL ELSE doc END FROM trip_views"
    " WHERE trip_id = :trip_id AND CAST(:user_id AS uuid) = ANY(member_ids)"
)
"""The statement of `tripsage.trip_view_get` (migration 0006), for the forms that need it outside the function."""
Step = Callable[[Database, Principal, dict[str, object]], Awaitable[object]]


async def _core_session(db: Database, principal: Principal, params: dict[str, object]) -> object:
    """What `SessionDep` does: AsyncSession, BEGIN, set_config, data, COMMIT."""
    async with db.request_session(principal) as session:
        row = (await session.execute(GET_STATEMENT, params)).first()
        await session.commit()
    return row


async def _connection_begin(db: Database, principal: Principal, params: dict[str, object]) -> object:
    """An AsyncConnection in `begin()`: BEGIN, set_config, data, COMMIT (no ORM session)."""
    async with db.read_engine.begin() as conn:
        await set_request_claims(conn, principal)
        return (await conn.execute(GET_STATEMENT, params)).first()


async def _lean(db: Database, principal: Principal, params: dict[str, object]) -> object:
    """`queries.plumbing.read_transaction`: `BEGIN; set_config` in one message, data, COMMIT."""
    async with read_transaction(db.read_engine, principal) as conn:
        return (await conn.execute(GET_STATEMENT, params)).first()


async def _no_rls(db: Database, _principal: Principal, params: dict[str, object]) -> object:
    """Reference only, NOT SAFE: the data statement alone as the login role (RLS bypassed)."""
    async with db.read_engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        return (await conn.execute(GET_STATEMENT, params)).first()


async def _call_as(db: Database, principal: Principal, params: dict[str, object]) -> object:
    """`queries.plumbing.call_as` (the trip endpoints): one statement, the read function sets role and claims."""
    rows = await call_as(db.read_engine, principal, TRIP_GET, params["trip_id"], [])
    return rows[0] if rows else None


async def _raw_driver(db: Database, principal: Principal, params: dict[str, object]) -> object:
    """Reference only: the same three round trips, all on the driver (invisible to `before_cursor_execute`)."""
    async with db.read_engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute(begin_sql(principal))
        row = await driver.fetchrow(RAW_GET, params["if_none_match"], params["trip_id"], params["user_id"])
        await driver.execute("COMMIT")
        return row


STEPS: dict[str, Step] = {
    "core `request_session` (AsyncSession) + data + commit": _core_session,
    "AsyncConnection `begin()` + set_config + data": _connection_begin,
    "`read_transaction` (other query endpoints): `BEGIN; set_config` one message + data + COMMIT": _lean,
    "**`call_as`** (trip endpoints): one statement, a read function sets role + claims, then queries": _call_as,
    "`read_transaction` pieces all on the raw driver, no SQLAlchemy execute (reference: not counted)": _raw_driver,
    "data statement alone, login role, no RLS (unsafe; reference)": _no_rls,
}


async def _per_op(fn: Callable[[], Awaitable[object]], n: int, dbname: str = "") -> tuple[float, float, float]:
    """Wall, app CPU and PostgreSQL CPU microseconds per call of `fn` (sequential)."""
    for _ in range(min(20, n)):
        await fn()
    db0, cpu0, started = backend_cpu(dbname) if dbname else 0.0, time.process_time(), time.perf_counter()
    for _ in range(n):
        await fn()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    db = (backend_cpu(dbname) - db0) if dbname else 0.0
    return wall / n * 1e6, cpu / n * 1e6, db / n * 1e6


async def measure_plumbing(url: str, token: str, secret: str, trip_id: str, *, quick: bool) -> list[str]:
    """Time each piece in-process (sequential) and count its round trips through the proxy.

    Returns:
        Markdown lines.
    """
    n = 300 if quick else 3000
    lines = [
        "| piece (sequential, in-process) | wall µs | app CPU µs | PG CPU µs | round trips |",
        "|---|---:|---:|---:|---:|",
    ]

    async def verify_uncached() -> object:
        return await TokenVerifier(secret=secret, audience="authenticated").verify(token)

    verifier = TokenVerifier(secret=secret, audience="authenticated")
    principal = await verifier.verify(token)
    for label, fn in (("uncached (HS256)", verify_uncached), ("cached", lambda: verifier.verify(token))):
        wall, cpu, _ = await _per_op(fn, n)
        lines.append(f"| token verification, {label} | {wall:.1f} | {cpu:.1f} | 0 | 0 |")

    target = make_url(normalize_database_url(url))
    dbname = target.database or ""
    proxy, through = await counting_proxy(url)
    direct = Database.open(normalize_database_url(url))
    counted = Database.open(through)
    params: dict[str, object] = {"trip_id": uuid.UUID(trip_id), "user_id": principal.user_id, "if_none_match": []}
    try:
        stranger = Principal(
            {"sub": str(uuid.uuid4()), "role": "authenticated"}, uuid.uuid4(), "authenticated", None, 0
        )
        if await _call_as(direct, stranger, params) is not None or await _call_as(direct, principal, params) is None:
            lines.append("| **`call_as`: RLS NOT in force, or the owner cannot read** | – | – |")
        # Round-robin in ROUNDS slices, median per piece: a load change on a shared box hits every piece alike.
        samples: dict[str, list[tuple[float, float, float]]] = {label: [] for label in STEPS}
        for _ in range(ROUNDS):
            for label, step in STEPS.items():
                call = functools.partial(step, direct, principal, params)
                samples[label].append(await _per_op(call, n // ROUNDS, dbname))
        for label, step in STEPS.items():
            for _ in range(3):
                await step(counted, principal, params)
            proxy.take()
            for _ in range(5):
                await step(counted, principal, params)
            wall, cpu, db = (statistics.median(column) for column in zip(*samples[label], strict=True))
            lines.append(f"| {label} | {wall:.0f} | {cpu:.0f} | {db:.0f} | {proxy.take() / 5:g} |")
    finally:
        await direct.dispose()
        await counted.dispose()
        await proxy.close()
    return lines
