"""The web app in Debian's Chromium against a real uvicorn server and a real projector, for two users.

sign in → the list shows owner and itinerary names → create → it appears at once → the second user
cannot open its URL (404 page) → share by email → the second user sees it and, with `edit`, adds an
activity → the first user's open page shows it live → unshare → gone. Screenshots of every page at
1280×800 and 390×844 go to `tests/artifacts/screenshots/` (gitignored).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from core.auth import mint_token
from core.settings import Settings
from tests.e2e.browser import CHROMIUM, chromium, projector, shoot
from tests.support import ROOT, TEST_JWT_SECRET, User, new_user, serve
from tripsage.app import create_app

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (.ci/run installs it)")
DOCS = ROOT / "docs"
LIVE_S = 5_000  # ms a live update may take to reach the other page


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """A real uvicorn server on a loopback port."""
    with serve(create_app(settings)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def worker(database_url: str) -> AsyncIterator[None]:
    """The projection running while the browser works."""
    async with projector(database_url):
        yield


async def seed(server: str, user: User) -> None:
    """A trip of the first user, with an itinerary, made through the API."""
    async with httpx.AsyncClient(base_url=server, headers=user.headers) as http:
        trip = await http.post(
            "/api/trips",
            json={
                "title": "Lisbon in spring",
                "destination": "Lisbon",
                "start_date": "2027-04-01",
                "end_date": "2027-04-05",
            },
        )
        assert trip.status_code == 201
        tid = trip.json()["id"]
        day = await http.post(f"/api/trips/{tid}/itineraries", json={"title": "Alfama walk", "day": "2027-04-02"})
        assert day.status_code == 201
        await http.post(
            f"/api/trips/{tid}/itineraries/{day.json()['id']}/activities",
            json={"title": "Tram 28", "price": "3.00", "currency": "EUR"},
        )
        assert (await http.get("/api/users/me")).status_code == 200


async def sign_in(page: Page, server: str, token: str, path: str = "/") -> None:
    """Open `path` signed out, paste the token, sign in."""
    await page.goto(server + path)
    await page.fill("#token", token)
    await page.click("#signin button[type=submit]")


@pytest.mark.usefixtures("worker")
async def test_two_people_plan_a_trip_in_the_browser(server: str) -> None:
    ada = new_user("ada", full_name="Ada Lovelace")
    grace = new_user("grace", full_name="Grace Hopper")
    await seed(server, ada)
    async with chromium() as browser:
        a = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
        a.set_default_timeout(10_000)
        b = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
        b.set_default_timeout(10_000)
        errors: list[str] = []
        for page in (a, b):
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # expected refusals (the 422 of the empty title, the 404 page) are logged as failed loads: not errors
            page.on(
                "console",
                lambda msg: (
                    errors.append(msg.text)
                    if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                    else None
                ),
            )

        # Sign in: the list shows the owner and the itinerary names.
        await a.goto(server + "/")
        await a.wait_for_selector("#token")
        await shoot(a, "signin")
        await sign_in(a, server, ada.token)
        card = a.locator(".trip-card", has_text="Lisbon in spring")
        await card.wait_for()
        assert "Owner: Ada Lovelace" in await card.inner_text()
        assert "Itineraries: Alfama walk" in await card.inner_text()
        await a.wait_for_selector("#who:has-text('Ada Lovelace')")
        await a.reload()  # the session survives a reload (sessionStorage)
        await card.wait_for()
        await shoot(a, "trips")

        # Create: an empty title is refused next to its field, in words; then it appears at once.
        await a.click("#new-trip summary")
        await a.fill("#new-trip-destination", "Porto")
        await a.fill("#new-trip-start_date", "2027-05-01")
        await a.fill("#new-trip-end_date", "2027-04-28")
        await a.click("text=Create trip")
        await a.wait_for_selector("#new-trip-title-error:has-text('Required')")
        assert "Must not be before the start date" in await a.inner_text("#new-trip-end_date-error")
        await a.fill("#new-trip-title", "Porto weekend")
        await a.fill("#new-trip-end_date", "2027-05-03")
        await a.fill("#new-trip-currency", "EUR")
        started = time.perf_counter()
        await a.click("text=Create trip")
        await a.locator(".trip-card", has_text="Porto weekend").wait_for(timeout=3_000)
        created_s = time.perf_counter() - started
        await shoot(a, "trips-after-create", docs=DOCS / "web-trips.png")
        await a.click("a:has-text('Porto weekend')")
        await a.wait_for_url(re.compile(r"/trips/[0-9a-f-]{36}$"))
        trip_url = a.url
        await a.click("details[data-key=add-itinerary] summary")
        await a.fill("#add-itinerary-title", "Ribeira")
        await a.click("form[data-key=add-itinerary] button[type=submit]")
        await a.wait_for_selector(".itinerary-title:has-text('Ribeira')")

        # The second user cannot open it.
        await sign_in(b, server, grace.token, trip_url.removeprefix(server))
        await b.wait_for_selector("#not-found")
        await shoot(b, "not-found")

        # Share by email with `edit`: the second user sees it in the list and adds an activity.
        await a.fill("#share-email", grace.email.upper())
        await a.select_option("#share-permission", "edit")
        await a.click("form[data-key=share] button[type=submit]")
        await a.wait_for_selector("#collaborators:has-text('Grace Hopper')")
        await b.wait_for_selector("#page-title:has-text('Porto weekend')", timeout=LIVE_S)  # its 404 page, live
        await b.click("text=All trips")
        await b.locator(".trip-card", has_text="Porto weekend").wait_for()
        await b.click("a:has-text('Porto weekend')")
        await b.click(".itinerary summary:has-text('Add activity')")
        await b.fill("[id^='add-activity'][id$='-title']", "Port tasting")
        await b.fill("[id^='add-activity'][id$='-price']", "25.50")
        await b.click(".itinerary form button[type=submit]")
        await b.wait_for_selector(".activity-title:has-text('Port tasting')")

        # The first user's open page shows it live (no reload), totals included.
        await a.wait_for_selector(".activity-title:has-text('Port tasting')", timeout=LIVE_S)
        assert "EUR 25.50" in await a.inner_text("#totals")
        await shoot(a, "trip", docs=DOCS / "web-trip.png")
        await shoot(b, "trip-as-editor")

        # Unshare: the second user's open page says so, and the list no longer has it.
        await a.click(f"#unshare-{grace.id}")
        await a.click(f"#unshare-{grace.id}")
        await a.wait_for_selector("text=Not shared with anyone yet.")
        await b.wait_for_selector("#not-found", timeout=LIVE_S)
        await b.click("text=Back to your trips")
        await b.wait_for_selector("#trip-list[aria-busy=false]")
        assert await b.locator(".trip-card", has_text="Porto weekend").count() == 0

        # A stale edit (this page missed the change: its live stream is blocked) gets 412: reloaded, said so.
        c = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
        c.set_default_timeout(10_000)
        await c.route("**/api/events", lambda route: route.abort())
        await sign_in(c, server, ada.token, trip_url.removeprefix(server))
        await c.click("#edit-trip")
        async with httpx.AsyncClient(headers=ada.headers) as http:
            changed = await http.patch(
                trip_url.replace("/trips/", "/api/trips/"), json={"title": "Porto, long weekend"}
            )
            assert changed.status_code == 200
        await c.fill("#trip-destination", "Porto and the Douro")
        await c.click("text=Save trip")
        await c.wait_for_selector("#notice:has-text('Someone changed this trip — reloaded.')")
        await c.wait_for_selector("#page-title:has-text('Porto, long weekend')")
        await c.click("text=Save trip")  # the typed change is kept: saving again applies it
        await c.wait_for_selector(".meta:has-text('Porto and the Douro')")
        await a.wait_for_selector("#page-title:has-text('Porto, long weekend')", timeout=LIVE_S)

        # The admin view: status and the lag chart, for a service_role token.
        admin = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
        await sign_in(admin, server, mint_token(secret=TEST_JWT_SECRET, email="", service_role=True), "/admin")
        await admin.wait_for_selector("#projections th:has-text('trip_views')")
        await admin.wait_for_selector("#lag-caption:has-text('backlog')")
        await shoot(admin, "admin")

        await a.click("#sign-out")
        await a.wait_for_selector("#token")
        assert await a.evaluate("sessionStorage.length") == 0
        assert not errors, errors
    print(f"created trip visible in the list after {created_s:.2f} s")  # noqa: T201  # shown with -s
