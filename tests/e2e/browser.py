"""What the browser tests share: Debian's Chromium (never a downloaded one), the projector, screenshots."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support import ROOT, project_forever

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, ViewportSize

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = ROOT / "tests" / "artifacts" / "screenshots"
WIDE: ViewportSize = {"width": 1280, "height": 800}
STRAY = ("undefined", "[object", "NaN", "false", "Invalid Date")
"""What a page drawing a missing or wrong value as text would show."""
NARROW: ViewportSize = {"width": 390, "height": 844}


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.async_api import async_playwright  # noqa: PLC0415  # optional browser dependency

    assert CHROMIUM is not None
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def projector(database_url: str) -> AsyncIterator[None]:
    """The projection worker's loop running in-process (`tests.support.project_forever`) while the pages are used."""
    task = asyncio.create_task(project_forever(database_url))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def shoot(page: Page, name: str, *, docs: Path | None = None) -> None:
    """Screenshots of the page at 1280×800 and 390×844 (full page), and no sideways scrolling at 390.

    Args:
        page: The page, left at its wide viewport afterwards.
        name: The file stem under `tests/artifacts/screenshots/`.
        docs: Where the README's figure of this page is; rewritten (wide, full page) when the
            environment has `TRIPSAGE_DOCS_SCREENSHOTS=1`, so ordinary runs leave the tree clean.
    """
    text = await page.inner_text("body")
    assert not [word for word in STRAY if word in text], f"{name}: a value drawn as text: {text}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.set_viewport_size(WIDE)
    await page.screenshot(path=ARTIFACTS / f"{name}-1280.png", full_page=True)
    if docs is not None and os.environ.get("TRIPSAGE_DOCS_SCREENSHOTS") == "1":
        await page.screenshot(path=docs, full_page=True)
    await page.set_viewport_size(NARROW)
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    await page.screenshot(path=ARTIFACTS / f"{name}-390.png", full_page=True)
    await page.set_viewport_size(WIDE)
    assert overflow <= 0, f"{name}: {overflow}px of sideways scrolling at 390 px"
