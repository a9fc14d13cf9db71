"""Authentication over HTTP (contract §3) through the real dependencies, app and database.

A test-only app adds tiny routes that depend on `CurrentUser`, `ServicePrincipal` and `SessionDep`
to the production app; nothing test-only is added to production code.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from starlette.types import Message

from core.auth import LEEWAY_SECONDS, mint_token
from core.deps import AppContext, CurrentUser, ServicePrincipal, SessionDep
from core.settings import Settings
from tests.support import TEST_JWT_SECRET, make_settings, new_user, service_headers
from tests.support import TestServers as Servers
from tests.tokens import EC_KEY, JWKS, JWKS_PATH, RSA_KEY, JwksServer, claims, es256, raw_token, rs256, serve_jwks
from tripsage.app import create_app

router = APIRouter(prefix="/test-auth")


@router.get("/me")
async def whoami(user: CurrentUser) -> dict[str, Any]:
    """Echo the caller."""
    return {"id": str(user.user_id), "role": user.role}


@router.get("/admin")
async def admin(service: ServicePrincipal) -> dict[str, Any]:
    """Service tokens only."""
    return {"role": service.role}


@router.post("/memories", status_code=201)
async def remember(user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """Write through the unit of work (commits when the route returns)."""
    await session.execute(
        text("INSERT INTO memories (user_id, content) VALUES (:uid, 'committed before the response')"),
        {"uid": user.user_id},
    )
    return {"ok": True}


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [k for k in JWKS["keys"] if k["kid"] == "rsa-1"]}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def served_jwks() -> Iterator[JwksServer]:
    with serve_jwks() as server:
        yield server


@pytest.fixture(scope="module")
def settings_for(database_url: str, servers: Servers) -> Callable[..., Settings]:
    """Settings for the session's database and Redis, with auth overrides."""

    def build(**overrides: Any) -> Settings:
        return make_settings(database_url, servers.redis_url, **overrides)

    return build


@pytest.fixture(scope="module")
async def auth_app(
    settings_for: Callable[..., Settings], jwks_file: Path, served_jwks: JwksServer
) -> AsyncIterator[FastAPI]:
    """The production app (HS256 secret, SUPABASE_JWKS file, SUPABASE_URL) plus the test routes."""
    app = create_app(settings_for(supabase_jwks=str(jwks_file), supabase_url=served_jwks.url))
    app.include_router(router)
    async with LifespanManager(app):
        yield app


@pytest.fixture(scope="module")
async def http(auth_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=auth_app), base_url="http://test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ctx_of(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status
    return body


async def test_no_token_is_401_with_bare_challenge(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer"}, {"Authorization": ""}):
        response = await http.get("/test-auth/me", headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


def _hs(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), TEST_JWT_SECRET, algorithm="HS256")


INVALID_TOKENS: dict[str, Callable[[], str]] = {
    "expired beyond leeway": lambda: _hs(exp=int(time.time()) - LEEWAY_SECONDS - 5),
    "alg none": lambda: jwt.encode(claims(), None, algorithm="none"),  # type: ignore[arg-type]
    "unknown kid": lambda: es256(kid="unknown"),
    "wrong key": lambda: _hs() + "x",
    "wrong secret": lambda: jwt.encode(claims(), "not-the-secret-" + "k" * 40, algorithm="HS256"),
    "wrong audience": lambda: _hs(aud="other"),
    "anon role": lambda: _hs(role="anon"),
    "no role": lambda: _hs(role=None),
    "sub not a uuid": lambda: _hs(sub="42"),
    "malformed": lambda: "not.a.jwt",
    "garbage": lambda: "abc",
    "non-string kid": lambda: raw_token({"alg": "ES256", "kid": 7}, claims()),
    "rs256 header on ec key": lambda: jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "ec-1"}),
}


@pytest.mark.parametrize("case", sorted(INVALID_TOKENS))
async def test_invalid_tokens_are_401_invalid_token(http: httpx.AsyncClient, case: str) -> None:
    token = INVALID_TOKENS[case]()
    response = await http.get("/test-auth/me", headers=bearer(token))
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert token not in response.text and "Traceback" not in body["detail"]


async def test_valid_tokens_of_every_kind(http: httpx.AsyncClient, served_jwks: JwksServer) -> None:
    sub = uuid.uuid4()
    tokens = {
        "hs256": mint_token(secret=TEST_JWT_SECRET, email="a@example.com", sub=sub),
        "hs256+kid": mint_token(secret=TEST_JWT_SECRET, email="a@example.com", sub=sub, kid="legacy"),
        "hs256 within leeway": _hs(sub=str(sub), exp=int(time.time()) - LEEWAY_SECONDS + 10),
        "rs256 from SUPABASE_JWKS": rs256(sub=str(sub)),
    }
    for name, token in tokens.items():
        response = await http.get("/test-auth/me", headers=bearer(token))
        assert response.status_code == 200, (name, response.text)
        assert response.json() == {"id": str(sub), "role": "authenticated"}
    # SUPABASE_JWKS wins over SUPABASE_URL: no fetch; the ES256 key is only in the served JWKS
    assert served_jwks.paths == []
    assert (await http.get("/test-auth/me", headers=bearer(es256(sub=str(sub))))).status_code == 401


async def test_jwks_fetched_from_supabase_url_once(settings_for: Callable[..., Settings]) -> None:
    with serve_jwks() as served:
        app = create_app(settings_for(supabase_jwt_secret=None, supabase_url=served.url))
        paths = served.paths
        await _exercise_fetched_jwks(app)
    assert paths == [JWKS_PATH]


async def _exercise_fetched_jwks(app: FastAPI) -> None:
    app.include_router(router)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        sub = str(uuid.uuid4())
        for _ in range(5):
            for token in (
                es256(sub=sub),
                rs256(sub=sub),
                jwt.encode(claims(sub=sub), EC_KEY, "ES256", {"kid": "ec-1"}),
            ):
                response = await client.get("/test-auth/me", headers=bearer(token))
                assert response.status_code == 200, response.text
        hs = await client.get("/test-auth/me", headers=bearer(_hs(sub=sub)))
        assert hs.status_code == 401  # no HS256 secret configured


async def test_service_and_user_endpoints_are_kept_apart(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/test-auth/me", headers=service_headers()), 403)
    assert_problem(await http.get("/test-auth/admin", headers=new_user().headers), 403)
    assert_problem(await http.get("/test-auth/admin"), 401)
    response = await http.get("/test-auth/admin", headers=service_headers())
    assert response.json() == {"role": "service_role"}


async def _profile(app: FastAPI, user_id: uuid.UUID) -> dict[str, Any] | None:
    async with ctx_of(app).db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT p.email, p.display_name, up.user_id IS NOT NULL AS has_prefs"
                    " FROM profiles p LEFT JOIN user_preferences up ON up.user_id = p.id WHERE p.id = :id"
                ),
                {"id": user_id},
            )
        ).first()
    return dict(row._mapping) if row else None


async def test_first_request_provisions_the_profile(http: httpx.AsyncClient, auth_app: FastAPI) -> None:
    named = new_user("ada", full_name="Ada Lovelace")
    plain = new_user("grace")
    assert await _profile(auth_app, named.id) is None
    for user in (named, plain):
        assert (await http.get("/test-auth/me", headers=user.headers)).status_code == 200
    assert await _profile(auth_app, named.id) == {
        "email": named.email,
        "display_name": "Ada Lovelace",
        "has_prefs": True,
    }
    assert await _profile(auth_app, plain.id) == {
        "email": plain.email,
        "display_name": plain.email.split("@")[0],
        "has_prefs": True,
    }


async def test_provisioning_happens_once_and_keeps_later_renames(auth_app: FastAPI, http: httpx.AsyncClient) -> None:
    user = new_user("once", full_name="First Name")
    assert (await http.get("/test-auth/me", headers=user.headers)).status_code == 200
    async with ctx_of(auth_app).db.engine.begin() as conn:
        await conn.execute(text("UPDATE profiles SET display_name = 'Renamed' WHERE id = :id"), {"id": user.id})
    ctx_of(auth_app).provisioned.clear()  # a restarted process provisions again: it must not overwrite
    assert (await http.get("/test-auth/me", headers=user.headers)).status_code == 200
    profile = await _profile(auth_app, user.id)
    assert profile is not None and profile["display_name"] == "Renamed"


async def test_unit_of_work_commits_before_the_response_is_sent(auth_app: FastAPI) -> None:
    user = new_user("uow")
    seen_at_start: list[int] = []

    async def count() -> int:
        async with ctx_of(auth_app).db.engine.connect() as conn:
            found = await conn.scalar(text("SELECT count(*) FROM memories WHERE user_id = :u"), {"u": user.id})
        return int(found or 0)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            seen_at_start.append(message["status"])
            seen_at_start.append(await count())

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/test-auth/memories",
        "raw_path": b"/test-auth/memories",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"authorization", f"Bearer {user.token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
        "state": {},
    }
    await auth_app(scope, receive, send)
    assert seen_at_start == [201, 1]


async def test_provisioning_memory_is_bounded(
    auth_app: FastAPI, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("core.deps.PROVISIONED_MEMORY", 1)
    users = [new_user("bounded") for _ in range(3)]
    for user in users:
        assert (await http.get("/test-auth/me", headers=user.headers)).status_code == 200
    assert len(ctx_of(auth_app).provisioned) == 1
    for user in users:
        assert await _profile(auth_app, user.id) is not None
