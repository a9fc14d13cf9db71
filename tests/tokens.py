"""Signing keys, a JWKS, Supabase-shaped claims and a real local JWKS server, for the auth tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUD = "authenticated"
JWKS_PATH = "/auth/v1/.well-known/jwks.json"
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key: Any, kid: str) -> dict[str, Any]:
    """The public JWK of a private key, as Supabase publishes it."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        doc: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        doc["alg"] = "ES256"
    else:
        doc = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        doc["alg"] = "RS256"
    return {**doc, "kid": kid, "use": "sig"}


JWKS = {"keys": [jwk(EC_KEY, "ec-1"), jwk(RSA_KEY, "rsa-1")]}


def claims(**overrides: Any) -> dict[str, Any]:
    """A user token's claims in Supabase's layout; an override of None drops the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "https://proj.supabase.co/auth/v1",
        "aud": AUD,
        "sub": str(uuid.uuid4()),
        "email": "ada@example.com",
        "role": "authenticated",
        "user_metadata": {"email": "ada@example.com"},
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def es256(kid: str = "ec-1", key: Any = EC_KEY, **overrides: Any) -> str:
    """An ES256 user token."""
    return jwt.encode(claims(**overrides), key, algorithm="ES256", headers={"kid": kid})


def rs256(kid: str = "rsa-1", key: Any = RSA_KEY, **overrides: Any) -> str:
    """An RS256 user token."""
    return jwt.encode(claims(**overrides), key, algorithm="RS256", headers={"kid": kid})


def hs256(secret: str, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
    """An HS256 user token."""
    return jwt.encode(claims(**overrides), secret, algorithm="HS256", headers=headers)


def raw_token(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes = b"") -> str:
    """A token built by hand (PyJWT refuses to encode some of the malformed ones we need)."""
    signing_input = b".".join(jwt.utils.base64url_encode(json.dumps(part).encode()) for part in (header, payload))
    signature = hmac.new(hmac_key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + jwt.utils.base64url_encode(signature)).decode()


@dataclass
class JwksServer:
    """A real HTTP server on 127.0.0.1 serving `{url}/auth/v1/.well-known/jwks.json`."""

    url: str
    body: bytes
    status: int = 200
    paths: list[str] = field(default_factory=list)
    cache_control: str | None = None


@contextmanager
def serve_jwks(doc: dict[str, Any] | None = None) -> Iterator[JwksServer]:
    """Serve a JWKS (by default `JWKS`) from a thread; records every requested path."""
    state = JwksServer(url="", body=json.dumps(doc or JWKS).encode())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  # http.server's naming
            state.paths.append(self.path)
            found = self.path == JWKS_PATH
            self.send_response(state.status if found else 404)
            self.send_header("Content-Type", "application/json")
            if state.cache_control:
                self.send_header("Cache-Control", state.cache_control)
            self.end_headers()
            self.wfile.write(state.body if found else b"{}")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base class's signature
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
