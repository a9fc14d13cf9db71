"""The small web page, driven in a real headless Chromium against a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from core.settings import Settings
from projections.apply import drain
from tests.support import new_user, serve
from tripsage.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (.ci/run installs it)")


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """A real uvicorn server on a loopback port, in a thread with its own event loop."""
    with serve(create_app(settings)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def projector(database_url: str) -> AsyncIterator[None]:
    """A worker loop draining the change feed while the page is used."""
    engine = create_async_engine(database_url)
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            await drain(engine)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    task = asyncio.create_task(loop())
    yield
    stop.set()
    await task
    await engine.dispose()


@pytest.mark.usefixtures("projector")
async def test_create_and_list_a_trip_in_the_browser(server: str) -> None:
    from playwright.async_api import async_playwright  # noqa: PLC0415  # optional browser dependency

    user = new_user("browser", full_name="Ada Lovelace")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            page = await browser.new_page()
            await page.goto(server + "/")
            assert await page.title() == "TripSage"
            await page.fill("#token", user.token)
            await page.click("#load")
            await page.wait_for_selector("text=No trips yet.")
            await page.fill("#title", "Lisbon in spring")
            await page.fill("#destination", "Lisbon")
            await page.fill("#start", "2027-04-01")
            await page.fill("#end", "2027-04-05")
            await page.click("button[type=submit]")
            await page.wait_for_selector("text=Created “Lisbon in spring”.")
            card = page.locator("#trips .card")
            await card.first.wait_for(timeout=10_000)
            assert await card.count() == 1
            assert "Lisbon in spring — Lisbon" in await card.first.inner_text()
            assert "owner Ada Lovelace" in await card.first.inner_text()
            assert "Signed in as Ada Lovelace" in await page.inner_text("#who")
            await page.fill("#title", "")
            await page.fill("#title", "x" * 5)
            await page.fill("#end", "2027-03-01")
            await page.click("button[type=submit]")
            await page.wait_for_selector("#message.error")
            assert "end_date" in await page.inner_text("#message")
        finally:
            await browser.close()
