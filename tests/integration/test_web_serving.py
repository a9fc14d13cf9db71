"""The web app as served by the API: page at each client-side route, modules, headers, demo sign-in."""

from __future__ import annotations

import httpx
import pytest

from core.auth import TokenVerifier
from core.settings import Settings
from tests.support import TEST_JWT_SECRET, serving
from tripsage import demo, web
from tripsage.cli.main import DEV_EMAIL


@pytest.mark.parametrize("path", ["/", "/trips/0b6a0a1e-8f5c-4d5e-9a43-0d7c6f1b2a11", "/trips/not-a-uuid", "/admin"])
async def test_every_client_route_serves_the_page_with_a_strict_policy(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/main.js">' in response.text
    assert '<meta name="tripsage-demo" content="off">' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_modules_are_served_with_their_type_and_an_etag(client: httpx.AsyncClient) -> None:
    for path, media in [("/static/js/main.js", "text/javascript"), ("/static/app.css", "text/css")]:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media)
        assert response.headers["x-content-type-options"] == "nosniff"
        again = await client.get(path, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
    for missing in ["/static/js/nope.js", "/static/../web.py", "/static/index.html.bak", "/trips/a/b"]:
        assert (await client.get(missing)).status_code == 404, missing


async def test_the_app_never_shadows_the_api_or_the_operations_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/trips")).status_code == 401
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/openapi.json")).headers["content-type"].startswith("application/json")
    assert (await client.get("/metrics")).headers["content-type"].startswith("text/plain")
    assert "swagger" in (await client.get("/docs")).text.lower()
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/static", "/trips", "/admin", "/api/demo"))]
    assert "/" not in paths


def test_the_demo_user_is_the_one_up_prints_a_token_for() -> None:
    assert demo.DEMO_EMAIL == DEV_EMAIL


def test_every_module_the_page_imports_is_in_the_package() -> None:
    assets = web._assets()  # noqa: SLF001  # the served set itself
    for name in ["js/main.js", "js/api.js", "js/views/trip.js", "app.css", "icon.svg"]:
        assert name in assets


async def test_demo_sign_in_is_off_unless_up_enabled_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/demo/session", headers={"Host": "localhost"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_demo_sign_in_answers_loopback_only(settings: Settings) -> None:
    enabled = settings.with_demo_login()
    assert enabled.demo_login and not settings.demo_login
    async with serving(enabled) as (_, http):
        page = await http.get("/")
        assert '<meta name="tripsage-demo" content="on">' in page.text
        for host in ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "localhost"]:
            response = await http.post("/api/demo/session", headers={"Host": host})
            assert response.status_code == 200, host
            assert response.headers["cache-control"] == "no-store"
        body = response.json()
        principal = await TokenVerifier(secret=TEST_JWT_SECRET, audience="authenticated").verify(body["access_token"])
        assert principal.email == demo.DEMO_EMAIL
        me = await http.get("/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.status_code == 200 and me.json()["email"] == demo.DEMO_EMAIL
        for host in ["tripsage.example:8000", "192.168.1.5", "evil.localhost.example"]:
            assert (await http.post("/api/demo/session", headers={"Host": host})).status_code == 404, host


async def test_demo_sign_in_refuses_a_remote_client(settings: Settings) -> None:
    async with serving(settings.with_demo_login()) as (app, _):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as remote:
            assert (await remote.post("/api/demo/session")).status_code == 404
