"""Offline verification of Supabase access tokens, and minting of tokens in Supabase's layout.

HS256 tokens verify with `SUPABASE_JWT_SECRET`; ES256/RS256 tokens by `kid` against a JWKS given
in `SUPABASE_JWKS` or fetched on demand from `{SUPABASE_URL}/auth/v1/.well-known/jwks.json`
and cached (see `core.jwks`).
Verified tokens are cached until they expire, so a client that reuses its token
pays for the signature check once.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import jwt

from core.jwks import JwksCache, JwksUnavailable, load_jwks

__all__ = [
    "LEEWAY_SECONDS",
    "AuthError",
    "Principal",
    "TokenVerifier",
    "load_jwks",  # re-exported: the app loads SUPABASE_JWKS through this module
    "mint_token",
]

LEEWAY_SECONDS = 30
ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")
TOKEN_CACHE_SIZE = 10_000
MAX_EMAIL_LENGTH = 320


class AuthError(Exception):
    """The token is missing or invalid (401)."""

    def __init__(self, detail: str, *, missing: bool = False) -> None:
        """Create the error.

        Args:
            detail: Why the token was refused (never the token itself).
            missing: True when no token was sent at all.
        """
        super().__init__(detail)
        self.detail = detail
        self.missing = missing


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller."""

    claims: dict[str, Any] = field(hash=False, compare=False)
    user_id: uuid.UUID | None
    role: str
    email: str | None
    expires_at: float
    kid: str | None = None
    """The JWKS key that signed the token (asymmetric tokens only): it must still be in the set."""

    @property
    def is_service(self) -> bool:
        """True for a `service_role` token."""
        return self.role == "service_role"

    @property
    def db_role(self) -> str:
        """The PostgreSQL role a request transaction runs as."""
        return "service_role" if self.is_service else "tripsage_api"

    @property
    def display_name(self) -> str:
        """The name a newly provisioned profile gets: `full_name`, else the email's local part."""
        meta = self.claims.get("user_metadata")
        if isinstance(meta, dict):
            full = meta.get("full_name")
            if isinstance(full, str) and _clean(full):
                return _clean(full)[:100]
        if self.email and "@" in self.email:
            return _clean(self.email.split("@", 1)[0])[:100] or "user"
        return "user"


def _kid(header: dict[str, Any]) -> str | None:
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


def _clean(value: str) -> str:
    return value.replace("\x00", "").strip()


def _safe_text(value: str) -> str:
    """Text PostgreSQL can hold: no NUL (jsonb and text refuse it), no lone surrogate (not UTF-8)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


def safe_claims(value: Any) -> Any:
    r"""The claims with every string (keys included) made safe for `request.jwt.claims`.

    A token's claims are set in the database as JSON text that `auth.uid()` casts to jsonb; a NUL
    (`\u0000`) or a lone surrogate anywhere in them, even in `user_metadata`, would make every
    statement of that user fail. NULs are dropped and lone surrogates become U+FFFD; nothing else changes.

    Args:
        value: Decoded JSON (a claims object, or any part of it).

    Returns:
        The same structure with safe strings.
    """
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, dict):
        return {_safe_text(str(k)): safe_claims(v) for k, v in value.items()}
    if isinstance(value, list):
        return [safe_claims(v) for v in value]
    return value


class TokenVerifier:
    """Verifies Supabase access tokens locally; no network per request."""

    def __init__(
        self,
        *,
        secret: str | None,
        audience: str,
        jwks: dict[str, Any] | None = None,
        supabase_url: str | None = None,
        jwks_path: str | None = None,
    ) -> None:
        """Create a verifier.

        Args:
            secret: The HS256 secret, if the project uses one.
            audience: The expected `aud` of user tokens.
            jwks: A JWKS document for ES256/RS256 tokens, if given offline.
            supabase_url: Where to fetch the JWKS from when it is not given.
            jwks_path: The file `jwks` was read from (re-read on the JWKS time to live).
        """
        self._secret = secret
        self._audience = audience
        self.jwks = JwksCache(doc=jwks, supabase_url=supabase_url, path=jwks_path)
        self._cache: OrderedDict[str, Principal] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """Verify a bearer token and return the caller.

        Args:
            token: The compact JWS.

        Returns:
            The verified principal.

        Raises:
            AuthError: When the token is invalid for any reason.
        """
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None and cached.expires_at + LEEWAY_SECONDS > now:
            if cached.kid is None or await self._key_still_valid(cached.kid):
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
            raise AuthError("the token's signing key was revoked")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed token") from exc
        alg = header.get("alg")
        if alg in ASYMMETRIC_ALGORITHMS:
            await self.jwks.ensure_fresh()
            if _kid(header) not in self.jwks.keys:
                try:
                    await self.jwks.refresh()
                except JwksUnavailable as exc:
                    raise AuthError("signing keys unavailable") from exc
        principal = self._decode(token, header)
        self._cache[token] = principal
        if len(self._cache) > TOKEN_CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    async def _key_still_valid(self, kid: str) -> bool:
        """Whether `kid` is in the key set as refreshed on its TTL (a key that left it is revoked)."""
        await self.jwks.ensure_fresh()
        return kid in self.jwks.keys

    def _decode(self, token: str, header: dict[str, Any]) -> Principal:
        alg = header.get("alg")
        key: Any
        if alg == "HS256":
            if not self._secret:
                raise AuthError("HS256 tokens are not accepted")
            key = self._secret
        elif alg in ASYMMETRIC_ALGORITHMS:
            jwk = self.jwks.keys.get(_kid(header) or "")
            if jwk is None:
                raise AuthError("unknown signing key")
            if jwk.algorithm_name != alg:
                raise AuthError("the signing key does not match the token's algorithm")
            key = jwk.key
        else:
            raise AuthError("unsupported algorithm")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise AuthError("invalid token") from exc
        return self._principal(claims, _kid(header) if alg in ASYMMETRIC_ALGORITHMS else None)

    def _principal(self, raw: dict[str, Any], kid: str | None) -> Principal:
        claims: dict[str, Any] = safe_claims(raw)
        role = claims.get("role")
        try:
            exp = float(claims["exp"])
        except (TypeError, ValueError) as exc:
            raise AuthError("invalid token") from exc
        if role == "service_role":
            return Principal(claims=claims, user_id=None, role="service_role", email=None, expires_at=exp, kid=kid)
        if role != "authenticated":
            raise AuthError("token role is not accepted")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self._audience not in audiences:
            raise AuthError("wrong audience")
        try:
            user_id = uuid.UUID(str(claims.get("sub")))
        except ValueError as exc:
            raise AuthError("subject is not a UUID") from exc
        email = raw.get("email")  # before NULs were dropped: an email holding one is no email
        if not isinstance(email, str) or "\x00" in email or len(email) > MAX_EMAIL_LENGTH:
            email = None
        return Principal(
            claims=claims,
            user_id=user_id,
            role="authenticated",
            email=email or None,
            expires_at=exp,
            kid=kid,
        )


def mint_token(
    *,
    secret: str,
    email: str,
    sub: uuid.UUID | None = None,
    ttl: int = 3600,
    service_role: bool = False,
    audience: str = "authenticated",
    full_name: str | None = None,
    kid: str | None = None,
) -> str:
    """Mint an HS256 access token with Supabase's claim layout.

    Args:
        secret: The HS256 secret.
        email: The user's email.
        sub: The user id (random when absent).
        ttl: Lifetime in seconds (may be negative, for tests of expiry).
        service_role: Mint a service-role key instead of a user token.
        audience: The `aud` claim.
        full_name: `user_metadata.full_name`, if any.
        kid: A `kid` header, as newer Supabase projects set.

    Returns:
        The signed token.
    """
    now = int(time.time())
    if service_role:
        claims: dict[str, Any] = {"iss": "supabase", "role": "service_role", "iat": now, "exp": now + ttl}
    else:
        user = sub or uuid.uuid4()
        claims = {
            "iss": "supabase",
            "aud": audience,
            "sub": str(user),
            "email": email,
            "phone": "",
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now}],
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {"email": email, **({"full_name": full_name} if full_name else {})},
            "iat": now,
            "exp": now + ttl,
        }
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)
