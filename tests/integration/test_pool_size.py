"""`DB_POOL_SIZE` / `DB_POOL_OVERFLOW`: a fixed pool by default; a burst queues for it instead of opening connections.

Real PostgreSQL, the app in-process. SQLAlchemy closes an overflow connection when it comes back to
a full pool, so under load above the pool size an overflow pool opens and closes connections all
the time (measured: 20 + 20 at 48 connections ran at 0.41× the fixed pool's throughput, README
"Reliability"). The tests count the connections the engine really opened (its `connect` event).
"""

from __future__ import annotations

import asyncio

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from core.db import Database
from core.settings import Settings
from tests.support import new_user
from tripsage.app import build_context, create_app

BODY = {"title": "Pooled", "destination": "Porto", "start_date": "2026-06-01", "end_date": "2026-06-03"}
BURST, ROUNDS = 16, 3


def test_engines_take_the_configured_sizes(settings: Settings) -> None:
    url = str(settings.database_url)
    replica = make_url(url).set(username="replica").render_as_string(hide_password=False)
    db = Database.open(url, replica, pool_size=3, pool_overflow=0)  # engines connect lazily: none here
    assert db.read_engine is not db.engine  # a replica URL: its own engine, the same sizes
    for engine in (db.engine, db.read_engine):
        assert (engine.pool.size(), engine.pool._max_overflow) == (3, 0)  # type: ignore[attr-defined]
    # The app's engines take the settings (by default a fixed pool of 20; engines connect lazily).
    engine = build_context(settings).db.engine
    assert (settings.db_pool_size, settings.db_pool_overflow) == (20, 0)
    assert (engine.pool.size(), engine.pool._max_overflow) == (20, 0)  # type: ignore[attr-defined]


async def _bursts(app: FastAPI, label: str) -> tuple[int, int]:
    """ROUNDS bursts of BURST concurrent trip creations: (connections the engine opened, peak checked out)."""
    user = new_user(label)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        engine = app.state.ctx.db.engine
        assert (await client.get("/api/users/me", headers=user.headers)).status_code == 200
        opened, peak = 0, 0

        def count(*_: object) -> None:
            nonlocal opened
            opened += 1

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, engine.pool.checkedout())
                await asyncio.sleep(0)

        event.listen(engine.sync_engine, "connect", count)
        watcher = asyncio.create_task(watch())
        try:
            for round_ in range(ROUNDS):
                answers = await asyncio.gather(
                    *(
                        client.post("/api/trips", json=BODY | {"title": f"{label} {round_}-{i}"}, headers=user.headers)
                        for i in range(BURST)
                    )
                )
                assert [a.status_code for a in answers] == [201] * BURST
        finally:
            watcher.cancel()
            event.remove(engine.sync_engine, "connect", count)
        async with engine.connect() as conn:
            written = await conn.scalar(
                text("SELECT count(*) FROM trips WHERE owner_id = :u AND title LIKE :t"),
                {"u": user.id, "t": f"{label} %"},
            )
        assert written == BURST * ROUNDS
    return opened, peak


async def test_a_burst_larger_than_a_fixed_pool_queues_on_the_connections_it_has(settings: Settings) -> None:
    fixed = create_app(settings.model_copy(update={"db_pool_size": 2, "db_pool_overflow": 0}))
    opened, peak = await _bursts(fixed, "fixed")
    assert peak == 2  # the bursts used the whole pool and never more
    assert opened <= 1  # at most the second pooled connection was still to open: nothing reopened


async def test_an_overflow_pool_reopens_connections_under_the_same_bursts(settings: Settings) -> None:
    """Why the default overflow is 0: the same bursts make a 2 + 2 pool open connections again and again."""
    overflowing = create_app(settings.model_copy(update={"db_pool_size": 2, "db_pool_overflow": 2}))
    opened, peak = await _bursts(overflowing, "overflow")
    assert peak == 4
    assert opened >= 2 * ROUNDS  # a new overflow pair for every burst: closed on return, opened again
