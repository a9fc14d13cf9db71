"""The `tripsage` CLI: token minting, migrations, configuration refusals, the embedded Redis."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import jwt
import pytest
from redis import Redis
from typer.testing import CliRunner

from core.auth import TokenVerifier
from core.embedded import EmbeddedServices, dev_secrets, dev_user_id, resolve_settings
from core.scratch import create_database, drop_database
from core.settings import Settings
from tests.support import TEST_ENCRYPTION_KEY, TEST_JWT_SECRET
from tests.support import TestServers as Servers
from tripsage.cli import app

VARIABLES = [name.upper() for name in Settings.model_fields]  # the contract's variables
runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No contract variable or `.env` from the developer; the CLI's logging set-up is undone after."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOG_FORMAT", "text")
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def fresh_database(servers: Servers) -> AsyncIterator[str]:
    url = await create_database(servers.admin_url)
    yield url
    await drop_database(servers.admin_url, url)


def production_env(**extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": "postgresql://app@127.0.0.1:1/app",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "TRIPSAGE_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
        **extra,
    }


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "serve", "worker", "migrate", "projections", "token"):
        assert command in result.output


async def test_token_verifies_and_has_supabase_layout() -> None:
    sub = uuid.uuid4()
    result = runner.invoke(
        app, ["token", "--user", "ada@example.com", "--sub", str(sub), "--ttl", "90"], env=production_env()
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    principal = await TokenVerifier(secret=TEST_JWT_SECRET, audience="authenticated").verify(token)
    assert principal.user_id == sub and principal.email == "ada@example.com"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["exp"] - payload["iat"] == 90
    assert payload["role"] == "authenticated" and payload["aud"] == "authenticated"
    assert payload["app_metadata"]["provider"] == "email" and payload["user_metadata"]["email"] == "ada@example.com"


async def test_service_role_token_and_configured_audience() -> None:
    env = production_env(JWT_AUDIENCE="my-project")
    service = runner.invoke(app, ["token", "--user", "ops@example.com", "--service-role"], env=env)
    principal = await TokenVerifier(secret=TEST_JWT_SECRET, audience="x").verify(service.stdout.strip())
    assert principal.is_service
    user = runner.invoke(app, ["token", "--user", "ada@example.com"], env=env)
    assert jwt.decode(user.stdout.strip(), options={"verify_signature": False})["aud"] == "my-project"


def test_token_refuses_a_bad_sub() -> None:
    result = runner.invoke(app, ["token", "--user", "a@example.com", "--sub", "42"], env=production_env())
    assert result.exit_code == 2
    assert "--sub must be a UUID" in result.output


async def test_token_in_embedded_mode_uses_the_data_dirs_dev_secret(short_dir: Path) -> None:
    result = runner.invoke(app, ["token", "--user", "dev@example.com", "--data-dir", str(short_dir)])
    assert result.exit_code == 0, result.output
    secret = dev_secrets(short_dir)["jwt_secret"]
    principal = await TokenVerifier(secret=secret, audience="authenticated").verify(result.stdout.strip())
    assert principal.email == "dev@example.com"


def test_token_without_an_hs256_secret_is_refused() -> None:
    env = production_env(SUPABASE_URL="https://proj.supabase.co")
    del env["SUPABASE_JWT_SECRET"]
    result = runner.invoke(app, ["token", "--user", "a@example.com"], env=env)
    assert result.exit_code == 2
    assert "SUPABASE_JWT_SECRET is not set" in result.output


@pytest.mark.parametrize(
    ("command", "env", "message"),
    [
        (["migrate"], {"SUPABASE_JWT_SECRET": "changeme"}, "SUPABASE_JWT_SECRET is a placeholder"),
        (["serve"], {"TRIPSAGE_ENCRYPTION_KEYS": ""}, "TRIPSAGE_ENCRYPTION_KEYS is required"),
        (["token", "--user", "a@b.c"], {"REDIS_URL": "http://x"}, "REDIS_URL: REDIS_URL must be"),
        (["up"], {"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL: DATABASE_URL must be a postgresql"),
    ],
)
def test_unsafe_configuration_exits_with_a_clear_message(command: list[str], env: dict[str, str], message: str) -> None:
    result = runner.invoke(app, command, env=production_env(**env))
    assert result.exit_code == 2
    assert result.stderr.startswith("invalid configuration:")
    assert message in result.stderr
    assert "Traceback" not in result.output and "changeme" not in result.stderr


async def test_migrate_twice_against_a_real_database(fresh_database: str, short_dir: Path) -> None:
    env = {"DATABASE_URL": fresh_database.replace("postgresql+asyncpg://", "postgresql://")}
    for _ in range(2):
        result = await asyncio.to_thread(runner.invoke, app, ["migrate", "--data-dir", str(short_dir)], env=env)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().endswith("migrations applied")
    assert not (short_dir / "redis.db").exists()  # migrate never starts the embedded Redis


async def test_embedded_redis_and_dev_secrets_fill_in_what_is_unset(database_url: str, short_dir: Path) -> None:
    settings, services = await asyncio.to_thread(resolve_settings, Settings(database_url=database_url), short_dir)
    try:
        assert settings.redis_url is not None and settings.redis_url.startswith("unix://")
        assert len(settings.redis_url) < 107
        assert settings.database_url == database_url  # given: not replaced
        dev = dev_secrets(short_dir)
        assert settings.supabase_jwt_secret == dev["jwt_secret"]
        assert settings.encryption_keys == [dev["encryption_key"]]
        client = Redis.from_url(settings.redis_url)
        assert client.ping()
        client.connection_pool.disconnect()
    finally:
        await asyncio.to_thread(services.stop)
    assert services.redis_url is not None
    socket = Path(services.redis_url.removeprefix("unix://"))
    assert not socket.exists()


async def test_configured_settings_start_nothing(database_url: str, servers: Servers, short_dir: Path) -> None:
    given = Settings(
        database_url=database_url,
        redis_url=servers.redis_url,
        supabase_jwt_secret=TEST_JWT_SECRET,
        tripsage_encryption_keys=TEST_ENCRYPTION_KEY,
    )
    settings, services = resolve_settings(given, short_dir)
    assert settings is given and services.database_url is None and services.redis_url is None
    services.stop()
    assert list(short_dir.iterdir()) == []


def test_given_secrets_win_over_dev_secrets_in_embedded_mode(database_url: str, short_dir: Path) -> None:
    given = Settings(
        database_url=database_url, supabase_url="https://proj.supabase.co", tripsage_encryption_keys="k" * 40
    )
    settings, services = resolve_settings(given, short_dir, redis=False)
    assert settings.redis_url is None and services.redis_url is None  # `migrate` needs no Redis
    assert settings.supabase_jwt_secret is None  # asymmetric project: no dev HS256 secret slipped in
    assert settings.encryption_keys == ["k" * 40]


class _Handle:
    def __init__(self, name: str, calls: list[str], *, fail: bool = False) -> None:
        self.name, self.calls, self.fail = name, calls, fail

    def cleanup(self) -> None:
        self.calls.append(self.name)
        if self.fail:
            raise RuntimeError("already stopped")


class _RedisLike:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def shutdown(self) -> None:
        self.calls.append("shutdown")


def test_stop_stops_every_handle_in_reverse_even_when_one_fails(short_dir: Path) -> None:
    calls: list[str] = []
    services = EmbeddedServices(short_dir)
    services._handles += [_Handle("pg", calls), _RedisLike(calls), _Handle("broken", calls, fail=True)]  # pylint: disable=protected-access
    services.stop()
    services.stop()  # idempotent
    assert calls == ["broken", "shutdown", "pg"]


def _sub(token: str) -> str:
    return str(jwt.decode(token.strip(), options={"verify_signature": False})["sub"])


def test_embedded_tokens_for_one_email_are_one_user_and_sub_still_wins(short_dir: Path, tmp_path: Path) -> None:
    def mint(*args: str, data_dir: Path = short_dir) -> str:
        result = runner.invoke(app, ["token", *args, "--data-dir", str(data_dir)])
        assert result.exit_code == 0, result.output
        return _sub(result.stdout)

    first = mint("--user", "bob@example.com")
    assert mint("--user", "Bob@Example.com") == first  # profiles compare emails case-insensitively
    assert first == str(dev_user_id("bob@example.com", dev_secrets(short_dir)["jwt_secret"]))
    assert mint("--user", "alice@example.com") != first
    assert mint("--user", "bob@example.com", data_dir=tmp_path / "other") != first  # another dev secret
    given = str(uuid.uuid4())
    assert mint("--user", "bob@example.com", "--sub", given) == given


def test_configured_tokens_without_sub_stay_random() -> None:
    subs = {
        _sub(runner.invoke(app, ["token", "--user", "a@example.com"], env=production_env()).stdout) for _ in range(2)
    }
    assert len(subs) == 2


@pytest.mark.parametrize("command", ["up", "serve"])
def test_a_taken_port_is_named_with_how_to_pick_another(command: str, short_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, [command, "--port", str(port), "--data-dir", str(short_dir)])
    assert result.exit_code == 1
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert f"make up PORT={port + 1}" in result.stderr and "Traceback" not in result.output
    assert list(short_dir.iterdir()) == []  # refused before any embedded server started


def test_an_address_that_cannot_be_bound_is_named(short_dir: Path) -> None:
    result = runner.invoke(app, ["serve", "--host", "192.0.2.1", "--port", "8000", "--data-dir", str(short_dir)])
    assert result.exit_code == 1
    assert "192.0.2.1:8000 cannot be bound" in result.stderr


def test_python_dash_m_tripsage_runs_the_cli() -> None:
    result = subprocess.run(  # noqa: S603  # our own module
        [sys.executable, "-m", "tripsage", "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "python -m tripsage" in result.stdout and "token" in result.stdout
