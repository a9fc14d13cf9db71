"""Service configuration, read from the environment (and `.env`) with pydantic-settings.

Exactly the variables of the contract (§2). Embedded mode is chosen when `DATABASE_URL` or
`REDIS_URL` is unset; only then may secrets be generated.
"""

from __future__ import annotations

import secrets
from functools import cached_property
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.jwks import load_jwks

PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "changethis",
        "secret",
        "your-super-secret-jwt-token-with-at-least-32-characters-long",
        "super-secret-jwt-token-with-at-least-32-characters-long",
    }
)
MIN_SECRET_LENGTH = 32


class ConfigurationError(ValueError):
    """Raised when the configuration cannot run the service safely (a ValueError, so pydantic reports it)."""


def normalize_database_url(url: str) -> str:
    """Rewrite a plain `postgresql://` (or `postgres://`) URL to the asyncpg driver.

    Args:
        url: A PostgreSQL URL as an operator would write it.

    Returns:
        The same URL with the `postgresql+asyncpg` scheme.
    """
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ConfigurationError("DATABASE_URL must be a postgresql:// URL")


class Settings(BaseSettings):
    """All settings of the service; see the README's configuration table."""

    # hide_input_in_errors: a refused setting must not echo the other values (URLs with passwords, keys).
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # URLs may carry passwords: kept out of repr() like the secrets.
    database_url: str | None = Field(default=None, repr=False)
    read_database_url: str | None = Field(default=None, repr=False)
    redis_url: str | None = Field(default=None, repr=False)
    supabase_url: str | None = None
    supabase_jwt_secret: str | None = Field(default=None, repr=False)
    supabase_jwks: str | None = Field(default=None, repr=False)
    jwt_audience: str = "authenticated"
    tripsage_encryption_keys: str | None = Field(default=None, repr=False)
    db_pool_mode: Literal["session", "transaction"] = "session"
    consistency_wait_ms: int = Field(default=2000, ge=0, le=60_000)
    # Trip documents the API process keeps to skip their transfer from PostgreSQL (queries.documents).
    read_cache_mb: int = Field(default=64, ge=0, le=65_536)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Request timeouts (README "Reliability"): every request transaction runs under them.
    db_statement_timeout_ms: int = Field(default=5000, ge=100, le=600_000)
    db_lock_timeout_ms: int = Field(default=2000, ge=10, le=600_000)
    db_idle_in_transaction_timeout_ms: int = Field(default=10_000, ge=100, le=3_600_000)
    db_connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    db_pool_timeout_s: float = Field(default=5.0, gt=0, le=120)
    # Connections of each engine of the API process (README "Reliability": a fixed pool; sizing).
    db_pool_size: int = Field(default=20, ge=1, le=1000)
    db_pool_overflow: int = Field(default=0, ge=0, le=1000)
    log_format: Literal["json", "text"] | None = None

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _asyncpg_url(cls, value: str | None) -> str | None:
        return normalize_database_url(value) if value else None

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must be redis://, rediss:// or unix://")
        return value or None

    @field_validator("supabase_jwks")
    @classmethod
    def _jwks_document(cls, value: str | None) -> str | None:
        if value:
            try:
                load_jwks(value)
            except (OSError, ValueError, TypeError) as exc:
                raise ValueError("SUPABASE_JWKS must be a JWKS document (JSON text) or the path of one") from exc
        return value or None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _secrets_outside_embedded(self) -> Settings:
        if self.embedded:
            return self
        if not (self.supabase_jwt_secret or self.supabase_jwks or self.supabase_url):
            raise ValueError(
                "SUPABASE_JWT_SECRET is required when DATABASE_URL and REDIS_URL are set"
                " (or SUPABASE_JWKS / SUPABASE_URL for a project with asymmetric signing keys)"
            )
        if self.supabase_jwt_secret is not None:
            check_secret("SUPABASE_JWT_SECRET", self.supabase_jwt_secret)
        if not self.encryption_keys:
            raise ValueError("TRIPSAGE_ENCRYPTION_KEYS is required when DATABASE_URL and REDIS_URL are set")
        for key in self.encryption_keys:
            check_secret("TRIPSAGE_ENCRYPTION_KEYS", key)
        return self

    # Not a field: no environment variable or `.env` line can turn it on; only `with_demo_login()`.
    _demo_login: bool = PrivateAttr(default=False)

    def with_demo_login(self) -> Settings:
        """A copy that enables the web app's "continue as demo user" (`tripsage up` only; loopback only)."""
        enabled = self.model_copy()
        enabled._demo_login = True  # pylint: disable=protected-access  # the class's own attribute
        return enabled

    @property
    def demo_login(self) -> bool:
        """Whether `POST /api/demo/session` answers (see `tripsage.demo`)."""
        return self._demo_login

    @property
    def embedded(self) -> bool:
        """True when PostgreSQL or Redis is to be started in-process (a URL is unset)."""
        return self.database_url is None or self.redis_url is None

    @property
    def encryption_keys(self) -> list[str]:
        """The encryption keys, first one encrypting."""
        raw = self.tripsage_encryption_keys or ""
        return [k.strip() for k in raw.split(",") if k.strip()]

    @cached_property
    def effective_read_url(self) -> str | None:
        """Where query endpoints read: `READ_DATABASE_URL`, else `DATABASE_URL`."""
        return self.read_database_url or self.database_url

    # Limits (issue 10): per-user request budgets shared through Redis (0 = off), and sizes.
    rate_limit_commands_per_minute: int = Field(default=600, ge=0, le=1_000_000)
    rate_limit_queries_per_minute: int = Field(default=600, ge=0, le=1_000_000)
    rate_limit_redis_timeout_ms: int = Field(default=200, ge=1, le=10_000)
    max_itineraries_per_trip: int = Field(default=200, ge=1, le=100_000)
    max_activities_per_itinerary: int = Field(default=500, ge=1, le=100_000)
    max_activities_per_trip: int = Field(default=2000, ge=1, le=1_000_000)


def check_secret(name: str, value: str) -> None:
    """Refuse placeholder or short secrets.

    Args:
        name: The variable name, for the message.
        value: The secret.

    Raises:
        ValueError: When the secret is a known placeholder or too short.
    """
    if value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"{name} is a placeholder or shorter than {MIN_SECRET_LENGTH} characters; set a real secret")


def describe_errors(exc: ValidationError) -> str:
    """One line per refused setting, naming the variable, without echoing any value.

    Args:
        exc: The error raised while reading the settings.

    Returns:
        A message an operator can act on.
    """
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        name = "".join(str(part) for part in err["loc"][:1]).upper()
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}: {msg}" if name else msg)
    return "invalid configuration:\n  " + "\n  ".join(lines)


def generate_secret() -> str:
    """Return a fresh random secret suitable for dev tokens and encryption keys."""
    return secrets.token_urlsafe(48)
