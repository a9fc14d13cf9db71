"""API keys: encrypted at rest, only `last4` ever leaves the server, per-user isolation, rotation."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import text
from typer.testing import CliRunner, Result

from core.auth import Principal
from core.crypto import DecryptionError, KeyRing, get_decrypted_key, keyring_for, rotate_all
from core.deps import AppContext
from tests import support
from tests.support import TEST_ENCRYPTION_KEY, TEST_JWT_SECRET, User, count_statements, new_user
from tripsage.cli import app as cli_app


def plaintext_key() -> str:
    return "sk-live-" + secrets.token_urlsafe(24)


def ctx_of(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


def principal_of(user: User) -> Principal:
    claims = {"sub": str(user.id), "role": "authenticated", "email": user.email, "aud": "authenticated"}
    return Principal(claims=claims, user_id=user.id, role="authenticated", email=user.email, expires_at=0)


async def warm(client: httpx.AsyncClient, user: User) -> None:
    assert (await client.get("/api/keys", headers=user.headers)).status_code == 200


async def create_key(
    client: httpx.AsyncClient, user: User, service: str = "openai", name: str | None = None, key: str | None = None
) -> tuple[dict[str, Any], str]:
    plaintext = key or plaintext_key()
    body: dict[str, Any] = {"service": service, "key": plaintext}
    if name is not None:
        body["name"] = name
    response = await client.post("/api/keys", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json(), plaintext


async def test_create_list_delete(client: httpx.AsyncClient) -> None:
    user = new_user()
    created, plaintext = await create_key(client, user, name="work")
    assert set(created) == {"id", "service", "name", "last4", "created_at"}
    assert created["service"] == "openai"
    assert created["name"] == "work"
    assert created["last4"] == plaintext[-4:]
    assert created["created_at"].endswith("Z")
    default, _ = await create_key(client, user, service="anthropic")
    assert default["name"] == "default"

    listed = (await client.get("/api/keys", headers=user.headers)).json()
    assert [item["id"] for item in listed["items"]] == [default["id"], created["id"]]
    assert listed["items"][1] == created
    assert listed["next_cursor"] is None

    assert (await client.delete(f"/api/keys/{created['id']}", headers=user.headers)).status_code == 204
    again = await client.delete(f"/api/keys/{created['id']}", headers=user.headers)
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"
    listed = (await client.get("/api/keys", headers=user.headers)).json()
    assert [item["id"] for item in listed["items"]] == [default["id"]]


async def test_key_is_stripped_and_stored_encrypted(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    plaintext = plaintext_key()
    created, _ = await create_key(client, user, key=f"  {plaintext}\n")
    assert created["last4"] == plaintext[-4:]
    async with ctx_of(app).db.engine.connect() as conn:
        token = (
            await conn.execute(text("SELECT ciphertext FROM api_keys WHERE id = :id"), {"id": created["id"]})
        ).scalar_one()
    assert plaintext.encode() not in token
    assert KeyRing.from_secrets([TEST_ENCRYPTION_KEY]).decrypt(token) == plaintext


async def test_duplicate_is_409_without_the_key(client: httpx.AsyncClient) -> None:
    user = new_user()
    _, first = await create_key(client, user, service="maps", name="home")
    second = plaintext_key()
    response = await client.post(
        "/api/keys", json={"service": "maps", "name": "home", "key": second}, headers=user.headers
    )
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "already exists" in response.json()["detail"]
    for secret in (first, second, first[:-4], second[:-4]):
        assert secret not in response.text
    # Another name, or the same name for another user, is fine.
    await create_key(client, user, service="maps", name="work")
    await create_key(client, new_user(), service="maps", name="home")


@pytest.mark.parametrize(
    "body",
    [
        {"service": "openai"},
        {"key": "KEY"},
        {"service": "", "key": "KEY"},
        {"service": "x" * 51, "key": "KEY"},
        {"service": "openai", "name": "", "key": "KEY"},
        {"service": "open\u0000ai", "key": "KEY"},
        {"service": "openai", "key": "short"},
        {"service": "openai", "key": "   abcd         "},
        {"service": "openai", "key": "KEY\u0000"},
        {"service": "openai", "key": "KEY" + "x" * 4096},
        {"service": "openai", "key": "KEY", "id": str(uuid.uuid4())},
        {"service": "openai", "key": "KEY", "last4": "abcd"},
        {"service": "openai", "key": "KEY", "created_at": "2026-01-01T00:00:00Z"},
        {"service": "openai", "key": 12345678},
    ],
)
async def test_invalid_body_is_422_without_the_key(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    secret = plaintext_key()
    if isinstance(body.get("key"), str):
        body = body | {"key": body["key"].replace("KEY", secret)}
    response = await client.post("/api/keys", json=body, headers=new_user().headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]
    assert secret not in response.text
    assert secret[:12] not in response.text


async def test_other_users_keys_are_invisible(client: httpx.AsyncClient) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    created, _ = await create_key(client, alice)
    await warm(client, bob)
    assert (await client.get("/api/keys", headers=bob.headers)).json() == {"items": [], "next_cursor": None}
    response = await client.delete(f"/api/keys/{created['id']}", headers=bob.headers)
    assert response.status_code == 404
    assert (await client.get("/api/keys", headers=alice.headers)).json()["items"] == [created]


async def test_malformed_ids_auth_and_openapi(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    assert (await client.delete("/api/keys/not-a-uuid", headers=user.headers)).status_code == 422
    assert (await client.get("/api/keys")).status_code == 401
    assert (await client.post("/api/keys", json={"service": "x", "key": plaintext_key()})).status_code == 401
    assert (await client.delete(f"/api/keys/{uuid.uuid4()}")).status_code == 401
    bad_cursors = (
        "garbage!!",
        "WyJ4Il0",
        "WyJ4IiwgInkiXQ",
        "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgIjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMCJd",
        "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgIm5vcGUiXQ",
    )
    for query in ("limit=0", "limit=101", *(f"cursor={c}" for c in bad_cursors)):
        response = await client.get(f"/api/keys?{query}", headers=user.headers)
        assert response.status_code == 422, (query, response.text)
    paths = app.openapi()["paths"]
    assert {"201", "401", "403", "409", "422"} <= set(paths["/api/keys"]["post"]["responses"])
    assert {"200", "401", "422"} <= set(paths["/api/keys"]["get"]["responses"])
    assert {"204", "401", "404", "422"} <= set(paths["/api/keys/{key_id}"]["delete"]["responses"])


async def test_pagination_walk_and_one_statement(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    created = [(await create_key(client, user, service=f"svc{i}"))[0]["id"] for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        with count_statements(ctx_of(app).db.engine) as counter:
            response = await client.get("/api/keys", params=params, headers=user.headers)
        assert response.status_code == 200
        assert len(counter.data_statements()) == 1, counter.statements
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(created))


async def test_plaintext_never_logged_or_returned(
    client: httpx.AsyncClient, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    user = new_user()
    await warm(client, user)
    plaintext = plaintext_key()
    texts = []
    body = {"service": "openai", "name": "logged", "key": plaintext}
    texts.append((await client.post("/api/keys", json=body, headers=user.headers)).text)
    texts.append((await client.post("/api/keys", json=body, headers=user.headers)).text)
    texts.append((await client.post("/api/keys", json=body | {"extra": 1}, headers=user.headers)).text)
    texts.append((await client.post("/api/keys", json=body | {"key": plaintext + "\x00"}, headers=user.headers)).text)
    texts.append((await client.get("/api/keys", headers=user.headers)).text)
    async with ctx_of(app).db.request_session(principal_of(user)) as session:
        found = await get_decrypted_key(session, user.id, "openai", "logged", keyring=keyring_for(ctx_of(app).settings))
    assert found == plaintext
    assert any("INSERT INTO api_keys" in record.getMessage() for record in caplog.records), "SQL was not logged"
    for haystack in [*texts, caplog.text, *(str(r.args) for r in caplog.records)]:
        assert plaintext not in haystack
        assert plaintext[:-4] not in haystack


async def test_get_decrypted_key(client: httpx.AsyncClient, app: FastAPI) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    _, plaintext = await create_key(client, alice, service="weather")
    _, named = await create_key(client, alice, service="weather", name="backup")
    await warm(client, bob)
    ring = keyring_for(ctx_of(app).settings)
    db = ctx_of(app).db
    async with db.request_session(principal_of(alice)) as session:
        assert await get_decrypted_key(session, alice.id, "weather", keyring=ring) == plaintext
        assert await get_decrypted_key(session, alice.id, "weather", "backup", keyring=ring) == named
        assert await get_decrypted_key(session, alice.id, "nothing", keyring=ring) is None
    async with db.request_session(principal_of(bob)) as session:  # RLS: not bob's to read
        assert await get_decrypted_key(session, alice.id, "weather", keyring=ring) is None
    async with db.sessionmaker() as session:  # the login role (server-side jobs)
        assert await get_decrypted_key(session, alice.id, "weather", keyring=ring) == plaintext
    with pytest.raises(DecryptionError):
        async with db.sessionmaker() as session:
            await get_decrypted_key(
                session, alice.id, "weather", keyring=KeyRing.from_secrets([Fernet.generate_key().decode()])
            )


async def invoke_cli(args: list[str], env: dict[str, str]) -> Result:
    """Run the CLI in a thread (it runs its own event loop), keeping pytest's root logging intact."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return await asyncio.to_thread(CliRunner().invoke, cli_app, args, env=env)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def _all_tokens(app: FastAPI) -> dict[uuid.UUID, bytes]:
    async with ctx_of(app).db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, ciphertext FROM api_keys"))).all()
    return {row[0]: bytes(row[1]) for row in rows}


def _decrypts_with(tokens: dict[uuid.UUID, bytes], ring: KeyRing) -> bool:
    try:
        for token in tokens.values():
            ring.decrypt(token)
    except DecryptionError:
        return False
    return True


async def test_rotate_all_reencrypts_with_the_new_key(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    plaintexts = {(await create_key(client, user, service=f"rot{i}"))[0]["id"]: None for i in range(5)}
    assert plaintexts
    old = KeyRing.from_secrets([TEST_ENCRYPTION_KEY])
    new_secret = "a new passphrase, not a Fernet key: " + secrets.token_hex(8)  # exercises the HKDF path
    new_only = KeyRing.from_secrets([new_secret])
    before = await _all_tokens(app)
    expected = {key_id: old.decrypt(token) for key_id, token in before.items()}
    try:
        result = await rotate_all(
            ctx_of(app).db.engine, KeyRing.from_secrets([new_secret, TEST_ENCRYPTION_KEY]), batch_size=2
        )
        assert result.failed == []
        assert result.rotated == len(before)
        after = await _all_tokens(app)
        assert {key_id: new_only.decrypt(token) for key_id, token in after.items()} == expected
        assert not _decrypts_with(after, old)
    finally:
        await rotate_all(ctx_of(app).db.engine, KeyRing.from_secrets([TEST_ENCRYPTION_KEY, new_secret]))
    assert _decrypts_with(await _all_tokens(app), old)


async def test_rotate_reports_undecryptable_keys(
    client: httpx.AsyncClient, app: FastAPI, database_url: str, servers: support.TestServers
) -> None:
    user = new_user()
    created, _ = await create_key(client, user)
    async with ctx_of(app).db.engine.begin() as conn:
        await conn.execute(text("UPDATE api_keys SET ciphertext = 'garbage' WHERE id = :id"), {"id": created["id"]})
    try:
        result = await rotate_all(ctx_of(app).db.engine, keyring_for(ctx_of(app).settings), batch_size=1)
        assert result.failed == [uuid.UUID(created["id"])]
        cli = await invoke_cli(["keys", "rotate"], cli_env(database_url, servers, TEST_ENCRYPTION_KEY))
        assert cli.exit_code == 1
        assert created["id"] in cli.output
    finally:
        assert (await client.delete(f"/api/keys/{created['id']}", headers=user.headers)).status_code == 204


def cli_env(database_url: str, servers: support.TestServers, keys: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": servers.redis_url,
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "LOG_FORMAT": "text",
        "TRIPSAGE_ENCRYPTION_KEYS": keys,
    }


async def test_cli_rotate(
    client: httpx.AsyncClient, app: FastAPI, database_url: str, servers: support.TestServers
) -> None:
    user = new_user()
    _, plaintext = await create_key(client, user, service="cli")
    new_secret = Fernet.generate_key().decode()
    try:
        env = cli_env(database_url, servers, f"{new_secret},{TEST_ENCRYPTION_KEY}")
        result = await invoke_cli(["keys", "rotate", "--batch-size", "3"], env)
        assert result.exit_code == 0, result.output
        assert "re-encrypted" in result.output
        count = int(result.output.split("re-encrypted ", 1)[1].split(" ", 1)[0])
        tokens = await _all_tokens(app)
        assert count == len(tokens)
        assert _decrypts_with(tokens, KeyRing.from_secrets([new_secret]))
        assert not _decrypts_with(tokens, KeyRing.from_secrets([TEST_ENCRYPTION_KEY]))
        async with ctx_of(app).db.sessionmaker() as session:
            found = await get_decrypted_key(session, user.id, "cli", keyring=KeyRing.from_secrets([new_secret]))
        assert found == plaintext
    finally:
        undo = await invoke_cli(
            ["keys", "rotate"], cli_env(database_url, servers, f"{TEST_ENCRYPTION_KEY},{new_secret}")
        )
    assert undo.exit_code == 0, undo.output
    assert _decrypts_with(await _all_tokens(app), KeyRing.from_secrets([TEST_ENCRYPTION_KEY]))
