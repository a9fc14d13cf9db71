"""Token verification (contract §3): HS256, ES256/RS256 by kid, JWKS offline and fetched, refusals."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.auth import LEEWAY_SECONDS, AuthError, Principal, TokenVerifier, load_jwks, mint_token
from core.jwks import JWKS_REFETCH_SECONDS
from tests import tokens
from tests.tokens import AUD, EC_KEY, JWKS, RSA_KEY, JwksServer, claims, es256, raw_token, rs256, serve_jwks
from tests.tokens import jwk as _jwk

SECRET = "unit-test-secret-" + "z" * 40
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())


def hs256(secret: str = SECRET, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
    return tokens.hs256(secret, headers, **overrides)


def verifier(**kwargs: Any) -> TokenVerifier:
    return TokenVerifier(**{"secret": SECRET, "audience": AUD, "jwks": JWKS, **kwargs})


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    with serve_jwks() as server:
        yield server


async def refused(v: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthError) as info:
        await v.verify(token)
    assert not info.value.missing
    return info.value.detail


# --- accepted tokens -----------------------------------------------------------------------------


async def test_hs256_user_token_with_and_without_kid() -> None:
    v = TokenVerifier(secret=SECRET, audience=AUD)
    sub = uuid.uuid4()
    for token in (hs256(sub=str(sub)), hs256(headers={"kid": "legacy-1"}, sub=str(sub))):
        principal = await v.verify(token)
        assert principal.user_id == sub
        assert principal.role == "authenticated" and principal.db_role == "tripsage_api"
        assert not principal.is_service
        assert principal.email == "ada@example.com"


async def test_es256_and_rs256_by_kid_from_jwks_text_and_file(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(JWKS), encoding="utf-8")
    for source in (json.dumps(JWKS), str(path)):
        v = TokenVerifier(secret=None, audience=AUD, jwks=load_jwks(source))
        assert (await v.verify(es256())).role == "authenticated"
        assert (await v.verify(rs256())).role == "authenticated"
        assert "HS256" in await refused(v, hs256())  # no secret configured: HS256 refused


async def test_audience_list_is_accepted() -> None:
    assert (await verifier().verify(es256(aud=["other", AUD]))).user_id is not None


async def test_service_role_token_needs_no_sub_or_audience() -> None:
    token = mint_token(secret=SECRET, email="", service_role=True)
    principal = await verifier().verify(token)
    assert principal.is_service and principal.user_id is None and principal.db_role == "service_role"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"iss", "role", "iat", "exp"}


async def test_expiry_leeway() -> None:
    now = int(time.time())
    v = verifier()
    assert (await v.verify(es256(exp=now - LEEWAY_SECONDS + 5))).role == "authenticated"
    assert "invalid" in await refused(v, es256(exp=now - LEEWAY_SECONDS - 5))
    assert "invalid" in await refused(v, hs256(exp=now - LEEWAY_SECONDS - 5))
    assert "invalid" in await refused(v, hs256(exp=None))  # exp is required


async def test_verified_tokens_are_cached_until_expiry() -> None:
    v = verifier()
    token = es256()
    first = await v.verify(token)
    assert await v.verify(token) is first
    expired = Principal(claims={}, user_id=None, role="service_role", email=None, expires_at=time.time() - 100)
    v._cache[token] = expired  # pylint: disable=protected-access  # simulate a cached token that expired
    assert await v.verify(token) is not expired


async def test_token_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.auth.TOKEN_CACHE_SIZE", 2)
    v = verifier()
    first, *rest = [hs256() for _ in range(3)]
    principal = await v.verify(first)
    for token in rest:
        await v.verify(token)
    assert await v.verify(first) is not principal  # evicted, verified again


# --- refused tokens ------------------------------------------------------------------------------


async def test_alg_none_is_refused() -> None:
    token = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]  # unsigned on purpose
    assert await refused(verifier(), token) == "unsupported algorithm"


@pytest.mark.parametrize("alg", ["HS384", "HS512", "ES384", "PS256"])
async def test_other_algorithms_are_refused(alg: str) -> None:
    key: Any = SECRET * 2 if alg.startswith("HS") else ec.generate_private_key(ec.SECP384R1())
    if alg == "PS256":
        key = RSA_KEY
    token = jwt.encode(claims(), key, algorithm=alg, headers={"kid": "rsa-1" if alg == "PS256" else "ec-1"})
    assert await refused(verifier(), token) == "unsupported algorithm"


async def test_unknown_kid_is_refused() -> None:
    assert await refused(verifier(), es256(kid="nope")) == "unknown signing key"
    token = jwt.encode(claims(), EC_KEY, algorithm="ES256")
    assert await refused(verifier(), token) == "unknown signing key"


@pytest.mark.parametrize("kid", [42, ["ec-1"], {"k": 1}])
async def test_non_string_kid_is_refused(kid: Any) -> None:
    token = raw_token({"alg": "ES256", "typ": "JWT", "kid": kid}, claims())
    assert await refused(verifier(), token) == "malformed token"


async def test_wrong_keys_are_refused() -> None:
    v = verifier()
    assert await refused(v, es256(key=OTHER_EC_KEY)) == "invalid token"
    assert await refused(v, rs256(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))) == (
        "invalid token"
    )
    assert await refused(v, hs256(secret="another-secret-" + "q" * 40)) == "invalid token"
    # algorithm confusion: an RS256 header naming the EC key ...
    forged = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "ec-1"})
    assert "does not match" in await refused(v, forged)
    # ... and an HS256 token keyed with the published public key
    public_pem = RSA_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    forged = raw_token({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(), hmac_key=public_pem)
    assert await refused(v, forged) == "invalid token"


async def test_tampered_payload_is_refused() -> None:
    head, _, sig = hs256().split(".")
    body = jwt.utils.base64url_encode(json.dumps(claims(role="service_role")).encode()).decode()
    assert await refused(verifier(), f"{head}.{body}.{sig}") == "invalid token"


async def test_wrong_audience_role_or_subject_is_refused() -> None:
    v = verifier()
    assert await refused(v, es256(aud="somebody-else")) == "wrong audience"
    assert await refused(v, es256(aud=None)) == "wrong audience"
    assert await refused(v, es256(role="anon")) == "token role is not accepted"
    assert await refused(v, es256(role="postgres")) == "token role is not accepted"
    assert await refused(v, es256(role=None)) == "token role is not accepted"
    assert await refused(v, es256(sub="not-a-uuid")) == "subject is not a UUID"
    assert await refused(v, es256(sub=None)) == "subject is not a UUID"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "e30.e30.", "eyJhbGciOiJIUzI1NiJ9.bad.sig"])
async def test_malformed_tokens_are_refused(token: str) -> None:
    await refused(verifier(), token)


async def test_future_iat_or_nbf_is_refused() -> None:
    later = int(time.time()) + 3600
    assert await refused(verifier(), es256(nbf=later)) == "invalid token"


# --- JWKS fetched from {SUPABASE_URL}/auth/v1/.well-known/jwks.json --------------------------------


async def test_jwks_is_fetched_once_and_cached(jwks_server: JwksServer) -> None:
    v = TokenVerifier(secret=None, audience=AUD, supabase_url=jwks_server.url + "/")
    tokens = [es256() for _ in range(10)] + [rs256() for _ in range(10)]
    principals = await asyncio.gather(*(v.verify(token) for token in tokens))
    assert {p.role for p in principals} == {"authenticated"}
    for token in tokens:
        await v.verify(token)
    assert jwks_server.paths == ["/auth/v1/.well-known/jwks.json"]
    assert v.jwks.fetches == 1
    # an unknown kid right after does not make the service hammer the auth server
    assert await refused(v, es256(kid="rotated-in")) == "unknown signing key"
    assert len(jwks_server.paths) == 1


async def test_unknown_kid_refetches_after_the_interval(jwks_server: JwksServer) -> None:
    v = TokenVerifier(secret=None, audience=AUD, supabase_url=jwks_server.url)
    await v.verify(es256())
    new_key = ec.generate_private_key(ec.SECP256R1())
    jwks_server.body = json.dumps({"keys": [*JWKS["keys"], _jwk(new_key, "ec-2")]}).encode()
    v.jwks.fetched_at = time.monotonic() - JWKS_REFETCH_SECONDS - 1  # time travel
    assert (await v.verify(es256(kid="ec-2", key=new_key))).role == "authenticated"
    assert len(jwks_server.paths) == 2


@pytest.mark.parametrize(("status", "body"), [(500, b"{}"), (200, b"not json"), (200, b'{"no": "keys"}')])
async def test_jwks_fetch_failure_is_401_and_backs_off(jwks_server: JwksServer, status: int, body: bytes) -> None:
    jwks_server.status, jwks_server.body = status, body
    v = TokenVerifier(secret=SECRET, audience=AUD, supabase_url=jwks_server.url)
    assert await refused(v, es256()) == "signing keys unavailable"
    assert await refused(v, es256()) == "signing keys unavailable"  # no second fetch within the interval
    assert len(jwks_server.paths) == 1
    assert (await v.verify(hs256())).role == "authenticated"  # HS256 unaffected


async def test_unreachable_jwks_is_401() -> None:
    v = TokenVerifier(secret=None, audience=AUD, supabase_url="http://127.0.0.1:9")
    assert await refused(v, es256()) == "signing keys unavailable"


async def test_unusable_keys_in_a_jwks_are_skipped() -> None:
    doc = {
        "keys": [
            "not-an-object",
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {**_jwk(OTHER_EC_KEY, "enc-1"), "use": "enc"},
            {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AA", "y": "AA"},
            _jwk(EC_KEY, "ec-1"),
        ]
    }
    v = TokenVerifier(secret=None, audience=AUD, jwks=doc)
    assert (await v.verify(es256())).role == "authenticated"
    for kid in ("sym", "enc-1", "broken"):
        await refused(v, es256(kid=kid))


def test_load_jwks_refuses_non_jwks(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        load_jwks('{"keys": {}}')
    with pytest.raises(OSError, match="No such file"):
        load_jwks(str(tmp_path / "missing.json"))


# --- principal and minting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "email", "expected"),
    [
        ({"full_name": "  Ada Lovelace "}, "ada@example.com", "Ada Lovelace"),
        ({"full_name": ""}, "grace.hopper@example.com", "grace.hopper"),
        ({"full_name": "\x00"}, "grace@example.com", "grace"),
        ({}, "x" * 150 + "@example.com", "x" * 100),
        ("not-a-dict", "linus@example.com", "linus"),
        ({}, None, "user"),
        ({}, "@example.com", "user"),
    ],
)
async def test_display_name_for_new_profiles(meta: Any, email: str | None, expected: str) -> None:
    principal = await verifier().verify(hs256(user_metadata=meta, email=email))
    assert principal.display_name == expected


async def test_unusable_email_claim_is_dropped() -> None:
    assert (await verifier().verify(hs256(email="a\x00b@example.com"))).email is None
    assert (await verifier().verify(hs256(email=12))).email is None


async def test_minted_token_has_supabase_layout_and_verifies() -> None:
    sub = uuid.uuid4()
    token = mint_token(secret=SECRET, email="ada@example.com", sub=sub, ttl=120, full_name="Ada", kid="k")
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": "k"}
    payload = jwt.decode(token, options={"verify_signature": False})
    for claim in ("iss", "aud", "sub", "email", "phone", "role", "aal", "amr", "session_id", "is_anonymous"):
        assert claim in payload
    assert payload["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert payload["user_metadata"] == {"email": "ada@example.com", "full_name": "Ada"}
    assert payload["exp"] - payload["iat"] == 120
    principal = await TokenVerifier(secret=SECRET, audience=AUD).verify(token)
    assert principal.user_id == sub and principal.display_name == "Ada"
    expired = mint_token(secret=SECRET, email="ada@example.com", ttl=-LEEWAY_SECONDS - 5)
    await refused(TokenVerifier(secret=SECRET, audience=AUD), expired)


# --- key rotation: the JWKS is refreshed on a time to live, and a key that left it is refused ----


def _expire(v: TokenVerifier) -> None:
    v.jwks.expires_at = time.monotonic() - 1  # time travel past the time to live


async def test_a_key_removed_from_the_served_jwks_is_refused_after_the_refresh(jwks_server: JwksServer) -> None:
    v = TokenVerifier(secret=None, audience=AUD, supabase_url=jwks_server.url)
    token = es256()
    assert (await v.verify(token)).kid == "ec-1"
    jwks_server.body = json.dumps({"keys": [k for k in JWKS["keys"] if k["kid"] != "ec-1"]}).encode()
    assert (await v.verify(token)).role == "authenticated"  # within the time to live: still the old set
    _expire(v)
    assert await refused(v, token) == "the token's signing key was revoked"  # even though it was cached
    assert await refused(v, es256()) == "unknown signing key"  # and a fresh token of that key
    assert (await v.verify(rs256())).role == "authenticated"  # the keys still served keep working
    assert len(jwks_server.paths) == 2


@pytest.mark.parametrize(
    ("header", "ttl"), [(None, 600), ("public, max-age=30", 30), ("max-age=86400", 600), ("no-store", 10)]
)
async def test_the_time_to_live_honours_cache_control(jwks_server: JwksServer, header: str | None, ttl: int) -> None:
    jwks_server.cache_control = header
    v = TokenVerifier(secret=None, audience=AUD, supabase_url=jwks_server.url)
    before = time.monotonic()
    await v.verify(es256())
    assert before + ttl - 1 <= v.jwks.expires_at <= time.monotonic() + ttl


async def test_a_failed_refresh_keeps_the_last_good_keys(jwks_server: JwksServer) -> None:
    v = TokenVerifier(secret=None, audience=AUD, supabase_url=jwks_server.url)
    token = es256()
    await v.verify(token)
    jwks_server.status = 503
    _expire(v)
    assert (await v.verify(token)).role == "authenticated"  # the auth server being down is no revocation
    assert v.jwks.expires_at > time.monotonic() + JWKS_REFETCH_SECONDS - 2  # and it is not hammered


async def test_a_jwks_file_is_read_again_on_the_time_to_live(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(JWKS), encoding="utf-8")
    v = TokenVerifier(secret=None, audience=AUD, jwks=load_jwks(str(path)), jwks_path=str(path))
    token = es256()
    await v.verify(token)
    path.write_text(json.dumps({"keys": [k for k in JWKS["keys"] if k["kid"] != "ec-1"]}), encoding="utf-8")
    _expire(v)
    assert await refused(v, token) == "the token's signing key was revoked"
