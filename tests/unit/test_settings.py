"""Settings: exactly the contract's variables, safe defaults, refusal of unsafe configurations."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.embedded import dev_secrets
from core.settings import (
    MIN_SECRET_LENGTH,
    PLACEHOLDER_SECRETS,
    ConfigurationError,
    Settings,
    describe_errors,
    generate_secret,
    normalize_database_url,
)

CONTRACT_VARIABLES = {
    "DATABASE_URL",
    "READ_DATABASE_URL",
    "REDIS_URL",
    "SUPABASE_URL",
    "SUPABASE_JWT_SECRET",
    "SUPABASE_JWKS",
    "JWT_AUDIENCE",
    "TRIPSAGE_ENCRYPTION_KEYS",
    "DB_POOL_MODE",
    "CONSISTENCY_WAIT_MS",
    "LOG_LEVEL",
    "LOG_FORMAT",
}
LIMIT_VARIABLES = {
    "RATE_LIMIT_COMMANDS_PER_MINUTE",
    "RATE_LIMIT_QUERIES_PER_MINUTE",
    "RATE_LIMIT_REDIS_TIMEOUT_MS",
    "MAX_ITINERARIES_PER_TRIP",
    "MAX_ACTIVITIES_PER_ITINERARY",
    "MAX_ACTIVITIES_PER_TRIP",
}
"""Issue 10's limits (README, "Limits"): configurable beyond the contract's table."""
SECRET = "s3cr3t-" + "a" * 40
KEY = "k3y-" + "b" * 40
SERVERS = {"DATABASE_URL": "postgresql://app:pw@db.example:5432/app", "REDIS_URL": "redis://cache.example:6379/0"}
JWKS = {"keys": [{"kty": "EC", "kid": "k1", "crv": "P-256", "x": "x", "y": "y"}]}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No contract variable from the developer's shell, and no `.env` in the working directory."""
    for name in CONTRACT_VARIABLES | TIMEOUT_VARIABLES | LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _set(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def _production(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    _set(monkeypatch, **{**SERVERS, "SUPABASE_JWT_SECRET": SECRET, "TRIPSAGE_ENCRYPTION_KEYS": KEY, **values})


# Beyond the contract's table (README "Reliability"): the request timeouts.
TIMEOUT_VARIABLES = {
    "DB_STATEMENT_TIMEOUT_MS",
    "DB_LOCK_TIMEOUT_MS",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
    "DB_CONNECT_TIMEOUT_S",
    "DB_POOL_TIMEOUT_S",
}
# Beyond the contract's table (README "Configuration"): the trip documents an API process keeps.
CACHE_VARIABLES = {"READ_CACHE_MB"}
# Beyond the contract's table (README "Configuration"): the API's connection pools.
POOL_VARIABLES = {"DB_POOL_SIZE", "DB_POOL_OVERFLOW"}


def test_settings_are_exactly_the_contract_variables_and_the_timeouts() -> None:
    assert {name.upper() for name in Settings.model_fields} == (
        CONTRACT_VARIABLES | TIMEOUT_VARIABLES | LIMIT_VARIABLES | CACHE_VARIABLES | POOL_VARIABLES
    )


def test_limits_have_sane_defaults_and_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.rate_limit_commands_per_minute, defaults.rate_limit_queries_per_minute) == (600, 600)
    assert defaults.rate_limit_redis_timeout_ms == 200
    assert (defaults.max_itineraries_per_trip, defaults.max_activities_per_itinerary) == (200, 500)
    assert defaults.max_activities_per_trip == 2000
    _set(monkeypatch, RATE_LIMIT_COMMANDS_PER_MINUTE="0", MAX_ITINERARIES_PER_TRIP="3")
    configured = Settings()
    assert configured.rate_limit_commands_per_minute == 0  # 0 turns the limit off
    assert configured.max_itineraries_per_trip == 3


@pytest.mark.parametrize(
    "variable", ["RATE_LIMIT_QUERIES_PER_MINUTE", "RATE_LIMIT_REDIS_TIMEOUT_MS", "MAX_ACTIVITIES_PER_TRIP"]
)
def test_limits_refuse_nonsense(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    _set(monkeypatch, **{variable: "-1"})
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert variable in describe_errors(refused.value)


def test_defaults_without_any_variable_are_embedded_mode() -> None:
    settings = Settings()
    assert settings.embedded
    assert settings.database_url is None and settings.redis_url is None
    assert settings.jwt_audience == "authenticated"
    assert settings.db_pool_mode == "session"
    assert settings.consistency_wait_ms == 2000
    assert settings.log_level == "INFO"
    assert settings.log_format is None
    assert settings.supabase_jwt_secret is None and settings.tripsage_encryption_keys is None


def test_environment_is_read_and_plain_postgres_urls_are_rewritten(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(
        monkeypatch,
        READ_DATABASE_URL="postgres://ro:pw@replica:5432/app",
        SUPABASE_URL="https://proj.supabase.co",
        JWT_AUDIENCE="my-aud",
        DB_POOL_MODE="transaction",
        CONSISTENCY_WAIT_MS="150",
        LOG_FORMAT="TEXT",
    )
    settings = Settings()
    assert not settings.embedded
    assert settings.database_url == "postgresql+asyncpg://app:pw@db.example:5432/app"
    assert settings.read_database_url == "postgresql+asyncpg://ro:pw@replica:5432/app"
    assert settings.effective_read_url == settings.read_database_url
    assert settings.jwt_audience == "my-aud"
    assert settings.db_pool_mode == "transaction"
    assert settings.consistency_wait_ms == 150
    assert settings.log_format == "text"


def test_read_url_defaults_to_the_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, DATABASE_URL="postgresql+asyncpg://app@db/app")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://app@db/app"
    assert settings.effective_read_url == settings.database_url


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a compose file with `SUPABASE_URL: ${SUPABASE_URL:-}` passes when the operator leaves it blank.
    _production(monkeypatch, SUPABASE_URL="", SUPABASE_JWKS="", READ_DATABASE_URL="", JWT_AUDIENCE="")
    settings = Settings()
    assert settings.supabase_url is None and settings.supabase_jwks is None
    assert settings.effective_read_url == settings.database_url
    assert settings.jwt_audience == "authenticated"


def test_dotenv_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lines = [f"{k}={v}" for k, v in SERVERS.items()]
    lines += [f"SUPABASE_JWT_SECRET={SECRET}", f"TRIPSAGE_ENCRYPTION_KEYS={KEY}", "JWT_AUDIENCE=from-file"]
    lines.append("SOMETHING_ELSE=ignored")
    (tmp_path / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert Settings().jwt_audience == "from-file"
    monkeypatch.setenv("JWT_AUDIENCE", "from-env")
    assert Settings().jwt_audience == "from-env"


@pytest.mark.parametrize("level", ["debug", "Warning", " error ", "CRITICAL"])
def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    _set(monkeypatch, LOG_LEVEL=level)
    assert Settings().log_level == level.strip().upper()


def test_unknown_log_level_and_format_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, LOG_LEVEL="chatty")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.delenv("LOG_LEVEL")
    _set(monkeypatch, LOG_FORMAT="xml")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize("url", ["http://cache:6379", "cache:6379", "memcached://x"])
def test_bad_redis_scheme_is_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    _production(monkeypatch, REDIS_URL=url)
    with pytest.raises(ValidationError, match="REDIS_URL must be"):
        Settings()


@pytest.mark.parametrize("url", ["redis://h:6379/1", "rediss://u:p@h:6380", "unix:///tmp/redis.sock"])
def test_redis_schemes_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    _production(monkeypatch, REDIS_URL=url)
    assert Settings().redis_url == url


def test_non_postgres_database_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, DATABASE_URL="mysql://app@db/app")
    with pytest.raises(ValidationError, match="DATABASE_URL must be a postgresql"):
        Settings()
    with pytest.raises(ConfigurationError):
        normalize_database_url("sqlite:///x.db")


@pytest.mark.parametrize("variable", ["SUPABASE_JWT_SECRET", "TRIPSAGE_ENCRYPTION_KEYS"])
def test_missing_secret_outside_embedded_mode_refuses_to_start(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    _production(monkeypatch)
    monkeypatch.delenv(variable)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert f"{variable} is required" in describe_errors(info.value)


@pytest.mark.parametrize("variable", ["SUPABASE_JWT_SECRET", "TRIPSAGE_ENCRYPTION_KEYS"])
@pytest.mark.parametrize("placeholder", sorted(PLACEHOLDER_SECRETS - {""}) + ["too-short"])
def test_placeholder_secret_outside_embedded_mode_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, placeholder: str
) -> None:
    _production(monkeypatch, **{variable: placeholder})
    with pytest.raises(ValidationError) as info:
        Settings()
    message = describe_errors(info.value)
    assert message.startswith("invalid configuration:")
    assert f"{variable} is a placeholder or shorter than {MIN_SECRET_LENGTH} characters" in message


def test_one_placeholder_among_rotation_keys_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, TRIPSAGE_ENCRYPTION_KEYS=f"{KEY}, changeme")
    with pytest.raises(ValidationError, match="TRIPSAGE_ENCRYPTION_KEYS is a placeholder"):
        Settings()
    _production(monkeypatch, TRIPSAGE_ENCRYPTION_KEYS=f" {KEY} ,{SECRET},")
    assert Settings().encryption_keys == [KEY, SECRET]


def test_refusal_never_echoes_values(monkeypatch: pytest.MonkeyPatch) -> None:
    short_secret = "a-real-but-short-secret"
    _production(monkeypatch, SUPABASE_JWT_SECRET=short_secret)
    with pytest.raises(ValidationError) as info:
        Settings()
    for text in (str(info.value), describe_errors(info.value)):
        assert short_secret not in text
        assert "pw@" not in text and KEY[-10:] not in text


def test_secrets_and_urls_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch)
    shown = repr(Settings())
    assert SECRET not in shown and KEY not in shown and "pw@" not in shown


def test_asymmetric_only_project_needs_no_hs256_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _production(monkeypatch, SUPABASE_URL="https://proj.supabase.co")
    monkeypatch.delenv("SUPABASE_JWT_SECRET")
    assert Settings().supabase_jwt_secret is None
    monkeypatch.delenv("SUPABASE_URL")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(JWKS), encoding="utf-8")
    _set(monkeypatch, SUPABASE_JWKS=str(path))
    assert Settings().supabase_jwks == str(path)
    _set(monkeypatch, SUPABASE_JWKS=json.dumps(JWKS))
    assert Settings().supabase_jwks == json.dumps(JWKS)


@pytest.mark.parametrize("jwks", ["/nonexistent/jwks.json", "{not json", '{"no": "keys"}'])
def test_unreadable_jwks_is_refused(monkeypatch: pytest.MonkeyPatch, jwks: str) -> None:
    _production(monkeypatch, SUPABASE_JWKS=jwks)
    with pytest.raises(ValidationError, match="SUPABASE_JWKS must be a JWKS document"):
        Settings()


def test_embedded_mode_needs_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, DATABASE_URL=SERVERS["DATABASE_URL"])
    settings = Settings()
    assert settings.embedded  # REDIS_URL unset: embedded Redis, dev secrets allowed
    assert settings.supabase_jwt_secret is None


def test_embedded_dev_secrets_are_generated_once_private_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = dev_secrets(data_dir)
    path = data_dir / "dev-secrets.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first["jwt_secret"]) >= MIN_SECRET_LENGTH
    assert len(first["encryption_key"]) >= MIN_SECRET_LENGTH
    assert dev_secrets(data_dir) == first
    assert dev_secrets(tmp_path / "other") != first
    assert generate_secret() != generate_secret()


def test_consistency_wait_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, CONSISTENCY_WAIT_MS="-1")
    with pytest.raises(ValidationError):
        Settings()


def test_read_cache_has_a_default_reads_the_environment_and_refuses_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().read_cache_mb == 64
    _set(monkeypatch, READ_CACHE_MB="0")
    assert Settings().read_cache_mb == 0
    for bad in ("-1", "lots", "1.5"):
        _set(monkeypatch, READ_CACHE_MB=bad)
        with pytest.raises(ValidationError):
            Settings()


def test_pool_has_a_default_reads_the_environment_and_refuses_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixed pool: overflow connections are closed on return and reopened under steady load.
    assert (Settings().db_pool_size, Settings().db_pool_overflow) == (20, 0)
    _set(monkeypatch, DB_POOL_SIZE="12", DB_POOL_OVERFLOW="4")
    assert (Settings().db_pool_size, Settings().db_pool_overflow) == (12, 4)
    for variable, bad in (("DB_POOL_SIZE", "0"), ("DB_POOL_SIZE", "many"), ("DB_POOL_OVERFLOW", "-1")):
        _set(monkeypatch, **({"DB_POOL_SIZE": "5", "DB_POOL_OVERFLOW": "0"} | {variable: bad}))
        with pytest.raises(ValidationError) as refused:
            Settings()
        assert variable in describe_errors(refused.value)
