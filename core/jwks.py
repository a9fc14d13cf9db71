"""Supabase's signing keys: a JWKS given offline (`SUPABASE_JWKS`) or fetched and cached.

Fetched from `{SUPABASE_URL}/auth/v1/.well-known/jwks.json` (or re-read from the `SUPABASE_JWKS`
file) when the cached set is older than its time to live: `JWKS_TTL_SECONDS`, or sooner when the
answer's `Cache-Control: max-age` says so (never below `JWKS_MIN_TTL_SECONDS`). A key that left the
set is refused from that refresh on, by the verifier, even for tokens it verified before. A token
naming a `kid` the cache does not hold (key rotation) triggers a fetch too, at most once per
`JWKS_REFETCH_SECONDS` and one fetch at a time, failures included, so a burst of bad tokens cannot
make the service hammer the auth server. A failed refresh keeps the last good keys and is tried
again after `JWKS_REFETCH_SECONDS`. A JWKS given as JSON text is fixed: nothing to refresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

log = logging.getLogger("tripsage.auth")
JWKS_REFETCH_SECONDS = 60
JWKS_TTL_SECONDS = 600
JWKS_MIN_TTL_SECONDS = 10
JWKS_TIMEOUT_SECONDS = 5.0
JWKS_PATH = "/auth/v1/.well-known/jwks.json"


class JwksUnavailable(Exception):
    """The JWKS could not be fetched, or was not a JWKS document."""


def _checked(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise TypeError("not a JWKS document (an object with a 'keys' list)")
    return doc


def load_jwks(source: str) -> dict[str, Any]:
    """Parse a JWKS given as JSON text or as a path to a JSON file.

    Args:
        source: JSON text or a file path.

    Returns:
        The JWKS document.
    """
    text = source.strip()
    if not text.startswith("{"):
        text = Path(text).read_text(encoding="utf-8")
    return _checked(json.loads(text))


def max_age(cache_control: str | None) -> float | None:
    """The `max-age` of a `Cache-Control` header in seconds (0 for `no-store`/`no-cache`), if any."""
    if not cache_control:
        return None
    for directive in cache_control.lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            try:
                return max(0.0, float(value.strip().strip('"')))
            except ValueError:
                return None
    return None


async def fetch_jwks(url: str) -> tuple[dict[str, Any], float | None]:
    """Fetch a JWKS document over HTTP.

    Args:
        url: The JWKS endpoint.

    Returns:
        The JWKS document and its `Cache-Control` max-age (seconds), if it has one.
    """
    async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_SECONDS) as client:
        response = await client.get(url)
        response.raise_for_status()
        return _checked(response.json()), max_age(response.headers.get("cache-control"))


def jwks_file(source: str | None) -> str | None:
    """The path in `SUPABASE_JWKS`, when it names a file rather than holding JSON text."""
    if source is None or source.strip().startswith("{"):
        return None
    return source.strip()


def signing_keys(doc: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """The usable signature keys of a JWKS by `kid` (EC and RSA only; others are skipped)."""
    keys: dict[str, jwt.PyJWK] = {}
    for jwk in doc.get("keys", []):
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or jwk.get("kty") not in ("EC", "RSA") or jwk.get("use", "sig") != "sig":
            continue
        try:
            keys[kid] = jwt.PyJWK.from_dict(jwk)
        except jwt.PyJWTError:
            log.warning("ignoring an unusable key in the JWKS (kid %s)", kid)
    return keys


class JwksCache:  # pylint: disable=too-many-instance-attributes  # source, keys and refresh timing
    """The signing keys by `kid`, refreshed on a time to live when they come from a URL or a file."""

    def __init__(
        self,
        *,
        doc: dict[str, Any] | None = None,
        supabase_url: str | None = None,
        path: str | None = None,
        ttl: float = JWKS_TTL_SECONDS,
    ) -> None:
        """Create the cache.

        Args:
            doc: A JWKS given offline (then nothing is fetched; re-read from `path` if given).
            supabase_url: The project URL to fetch the JWKS from when `doc` is absent.
            path: The file `doc` was read from, re-read on the time to live.
            ttl: The longest time a fetched or read key set is used without a refresh.
        """
        self.url = f"{supabase_url.rstrip('/')}{JWKS_PATH}" if supabase_url and doc is None else None
        self.path = path if doc is not None else None
        self.keys = signing_keys(doc) if doc is not None else {}
        self.ttl = ttl
        now = time.monotonic()
        self.fetched_at: float | None = now if doc is not None else None
        self.expires_at = now + ttl if doc is not None else 0.0
        self.fetches = 0
        self.failed = False
        self._lock = asyncio.Lock()

    @property
    def refreshable(self) -> bool:
        """Whether the keys come from somewhere they can be refreshed from."""
        return self.url is not None or self.path is not None

    async def ensure_fresh(self) -> None:
        """Refresh the keys if their time to live has passed (a failure keeps the last good ones)."""
        if not self.refreshable or time.monotonic() < self.expires_at:
            return
        try:
            await self._reload(lambda now: now >= self.expires_at)
        except JwksUnavailable:
            return

    async def refresh(self) -> None:
        """Fetch the JWKS for an unknown `kid`, unless fetched (or tried) within `JWKS_REFETCH_SECONDS`.

        Raises:
            JwksUnavailable: When the fetch fails or the answer is not a JWKS document.
        """
        if self.url is None:
            return
        await self._reload(lambda now: self.fetched_at is None or now - self.fetched_at >= JWKS_REFETCH_SECONDS)

    async def _reload(self, due: Callable[[float], bool]) -> None:
        async with self._lock:
            now = time.monotonic()
            if not due(now):
                if self.failed:  # tried within the back-off, and that failed: still unavailable
                    raise JwksUnavailable("the last refresh failed")
                return  # another request refreshed (or tried) while this one waited
            self.fetched_at = now
            self.fetches += 1
            try:
                if self.url is not None:
                    doc, age = await fetch_jwks(self.url)
                else:
                    assert self.path is not None
                    doc, age = await asyncio.to_thread(load_jwks, self.path), None
            except (httpx.HTTPError, OSError, ValueError, TypeError) as exc:
                self.expires_at = now + JWKS_REFETCH_SECONDS
                self.failed = True
                log.warning("refreshing the JWKS failed: %s", type(exc).__name__)
                raise JwksUnavailable(type(exc).__name__) from exc
            ttl = self.ttl if age is None else max(JWKS_MIN_TTL_SECONDS, min(self.ttl, age))
            self.expires_at = now + ttl
            self.failed = False
            self.keys = signing_keys(doc)
