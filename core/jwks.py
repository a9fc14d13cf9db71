"""Supabase's signing keys: a JWKS given offline (`SUPABASE_JWKS`) or fetched and cached.

Fetched from `{SUPABASE_URL}/auth/v1/.well-known/jwks.json` when a token names a `kid` the cache
does not hold (first use, key rotation), at most once per `JWKS_REFETCH_SECONDS` and one fetch at
a time, failures included, so a burst of bad tokens cannot make the service hammer the auth server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

log = logging.getLogger("tripsage.auth")
JWKS_REFETCH_SECONDS = 30
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


async def fetch_jwks(url: str) -> dict[str, Any]:
    """Fetch a JWKS document over HTTP.

    Args:
        url: The JWKS endpoint.

    Returns:
        The JWKS document.
    """
    async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_SECONDS) as client:
        response = await client.get(url)
        response.raise_for_status()
        return _checked(response.json())


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


class JwksCache:
    """The signing keys by `kid`: static when given offline, else fetched on demand and cached."""

    def __init__(self, *, doc: dict[str, Any] | None = None, supabase_url: str | None = None) -> None:
        """Create the cache.

        Args:
            doc: A JWKS given offline (then nothing is ever fetched).
            supabase_url: The project URL to fetch the JWKS from when `doc` is absent.
        """
        self.url = f"{supabase_url.rstrip('/')}{JWKS_PATH}" if supabase_url and doc is None else None
        self.keys = signing_keys(doc) if doc is not None else {}
        self.fetched_at: float | None = None
        self.fetches = 0
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Fetch the JWKS unless it was fetched (or tried) within `JWKS_REFETCH_SECONDS`.

        Raises:
            JwksUnavailable: When the fetch fails or the answer is not a JWKS document.
        """
        if self.url is None:
            return
        async with self._lock:
            now = time.monotonic()
            if self.fetched_at is not None and now - self.fetched_at < JWKS_REFETCH_SECONDS:
                return
            self.fetched_at = now
            self.fetches += 1
            try:
                doc = await fetch_jwks(self.url)
            except (httpx.HTTPError, ValueError, TypeError) as exc:
                log.warning("fetching the JWKS failed: %s", type(exc).__name__)
                raise JwksUnavailable(type(exc).__name__) from exc
            self.keys = signing_keys(doc)
