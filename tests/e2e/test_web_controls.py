"""The web app's other controls, in Debian's Chromium against a real server and projector.

Filters and "Load more"; reordering, editing and removing itineraries and activities; changing a
collaborator's permission; a `view` collaborator sees no editing controls and leaves; deleting a
trip; "Continue as demo user" where `tripsage up` enabled it; signing in from the keyboard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from core.settings import Settings
from tests.e2e.browser import CHROMIUM, chromium, projector, shoot
from tests.support import User, new_user, serve
from tripsage.app import create_app

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (.ci/run installs it)")


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """A real uvicorn server on a loopback port, with the demo sign-in that `tripsage up` enables."""
    with serve(create_app(settings.with_demo_login())) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def worker(database_url: str) -> AsyncIterator[None]:
    """The projection running while the browser works."""
    async with projector(database_url):
        yield


async def post(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def seed(server: str, ada: User, grace: User) -> dict[str, Any]:
    """21 trips of Ada (one booked, with itineraries and activities, Grace may edit) and one of Grace Ada may view."""
    dates = {"start_date": "2027-06-01", "end_date": "2027-06-09"}
    async with (
        httpx.AsyncClient(base_url=server, headers=ada.headers) as a,
        httpx.AsyncClient(base_url=server, headers=grace.headers) as g,
    ):
        await g.get("/api/users/me")
        for n in range(20):
            await post(a, "/api/trips", {"title": f"Trip {n:02d}", "destination": "Oslo", **dates})
        rome = await post(a, "/api/trips", {"title": "Rome", "destination": "Rome", "status": "booked", **dates})
        base = f"/api/trips/{rome['id']}"
        day_a = await post(a, f"{base}/itineraries", {"title": "Day A", "position": 0})
        await post(a, f"{base}/itineraries", {"title": "Day B", "position": 1})
        for position, title in enumerate(["A1", "A2"]):
            await post(a, f"{base}/itineraries/{day_a['id']}/activities", {"title": title, "position": position})
        await post(a, f"{base}/collaborators", {"email": grace.email, "permission": "edit"})
        theirs = await post(g, "/api/trips", {"title": "Grace's Bergen", "destination": "Bergen", **dates})
        await post(g, f"/api/trips/{theirs['id']}/collaborators", {"email": ada.email, "permission": "view"})
    return rome


@pytest.mark.usefixtures("worker")
async def test_lists_editing_permissions_and_demo_sign_in(server: str) -> None:
    ada, grace = new_user("ada", full_name="Ada Lovelace"), new_user("grace", full_name="Grace Hopper")
    rome = await seed(server, ada, grace)
    from playwright.async_api import expect  # noqa: PLC0415  # optional browser dependency

    async with chromium() as browser:
        page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
        page.set_default_timeout(10_000)
        await page.goto(server + "/")
        await page.wait_for_selector("#token:focus")  # the sign-in page starts at the token field
        assert (
            await page.evaluate("document.querySelector('a, button, input, textarea').textContent") == "Skip to content"
        )
        await page.fill("#token", ada.token)
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")  # the focused "Sign in" button

        # 22 trips: 20, then "Load more"; filters narrow the list.
        await page.wait_for_selector("#load-more")
        assert await page.locator(".trip-card").count() == 20
        await page.click("#load-more")
        await expect(page.locator(".trip-card")).to_have_count(22)
        assert await page.locator("#load-more").count() == 0
        async with httpx.AsyncClient(base_url=server, headers=grace.headers) as g:  # the list is live
            await post(g, f"/api/trips/{rome['id']}/itineraries", {"title": "Day C", "position": 2})
        await expect(page.locator(".trip-card").first).to_contain_text("Itineraries: Day A, Day B, Day C")
        await page.select_option("#filter-status", "booked")
        await expect(page.locator(".trip-card")).to_have_count(1)
        await page.select_option("#filter-status", "")
        await page.fill("#filter-q", "trip 1")
        await expect(page.locator(".trip-card")).to_have_count(10)
        await page.fill("#filter-q", "")
        await page.select_option("#filter-role", "shared")
        await expect(page.locator(".trip-card")).to_have_count(1)
        assert "Owner: Grace Hopper · You: Can view" in await page.inner_text(".trip-card")

        # A `view` collaborator: no editing controls; leaves.
        await page.click('a:has-text("Grace\'s Bergen")')
        await page.wait_for_selector("#leave-trip")
        for control in ["#edit-trip", "#delete-trip", "form[data-key=share]", "details[data-key=add-itinerary]"]:
            assert await page.locator(control).count() == 0, control
        await shoot(page, "trip-as-viewer")
        await page.click("#leave-trip")
        await page.click("#leave-trip")
        await page.wait_for_selector("#notice:has-text('You left')")
        await page.wait_for_selector("#trip-list[aria-busy=false]")
        assert await page.locator(".trip-card").count() == 0  # still filtered to "shared"
        await page.select_option("#filter-role", "")

        # Reorder, edit and remove itineraries and activities.
        await page.goto(f"{server}/trips/{rome['id']}")
        await page.wait_for_selector(".itinerary-title")
        day_a = page.locator(".itinerary", has_text="Day A")
        await day_a.locator("button[aria-label^='Move itinerary']").nth(1).click()
        await expect(page.locator(".itinerary-title").first).to_have_text("Day B")
        await page.locator("button[aria-label='Move activity “A2” up']").click()
        await expect(page.locator(".activity-title").first).to_have_text("A2")
        activity = page.locator(".activity", has_text="A1")
        await activity.locator("button:has-text('Edit')").click()
        editor = page.locator("form[aria-label='Edit activity “A1”']")
        await editor.locator("[name=title]").fill("A1 late")
        await editor.locator("[name=price]").fill("12.345")
        await editor.locator("button[type=submit]").click()
        await editor.locator(".field-error:has-text('at most 2 decimals')").wait_for()
        await editor.locator("[name=price]").fill("12.50")
        await editor.locator("button[type=submit]").click()
        await page.wait_for_selector(".activity-title:has-text('A1 late')")
        assert "USD 12.50" in await page.inner_text("#totals")
        remove = page.locator("button[aria-label='Remove activity “A2”']")
        await remove.click()
        await remove.click()
        await expect(page.locator(".activity-title")).to_have_text(["A1 late"])

        # Change a collaborator's permission, then delete the trip.
        await page.select_option(f"#perm-{grace.id}", "admin")
        await page.wait_for_selector(f"#perm-{grace.id} option[value=admin][selected]", state="attached")
        async with httpx.AsyncClient(base_url=server, headers=grace.headers) as g:
            view = (await g.get(f"/api/trips/{rome['id']}")).json()
            assert [c["permission"] for c in view["collaborators"]] == ["admin"]
        await page.click("#delete-trip")
        await page.click("#delete-trip")
        await page.wait_for_selector("#notice:has-text('Deleted “Rome”.')")
        await page.wait_for_selector("#trip-list[aria-busy=false]")
        assert await page.locator(".trip-card", has_text="Rome").count() == 0

        # "Continue as demo user" (this server was built as `tripsage up` builds it).
        demo = await (await browser.new_context(viewport={"width": 390, "height": 844})).new_page()
        await demo.goto(server + "/")
        await demo.click("#demo")
        await demo.wait_for_selector("#who:has-text('dev')")
        await demo.wait_for_selector("text=No trips yet. Create one above.")
