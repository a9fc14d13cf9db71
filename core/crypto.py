"""Secrets at rest: users' API keys encrypted with `TRIPSAGE_ENCRYPTION_KEYS` (Fernet, rotatable).

Every configured key becomes a Fernet key: a key that already is one (32 url-safe base64 bytes, as
`Fernet.generate_key()` makes) is used as it is; any other secret is stretched deterministically
with HKDF-SHA256 (salt `HKDF_SALT`, info `HKDF_INFO`, 32 bytes, url-safe base64), so the same
configured string always yields the same Fernet key. The first key encrypts; all of them decrypt
(`MultiFernet`), and `KeyRing.rotate` re-encrypts a token with the first key: add a new key in
front, run `tripsage keys rotate`, then drop the old one.

The plaintext of a key lives only in memory between the request body and `KeyRing.encrypt`, and
in `get_decrypted_key` for server-side use: it is never bound to SQL, logged or returned.
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, UUID
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.settings import ConfigurationError, Settings

HKDF_SALT = b"tripsage/encryption-keys/v1"
HKDF_INFO = b"tripsage fernet key"
ROTATE_BATCH_SIZE = 500


class DecryptionError(Exception):
    """A stored token could not be decrypted with any configured key."""


def fernet_key(secret: str) -> bytes:
    """The Fernet key for one configured secret.

    Args:
        secret: One entry of `TRIPSAGE_ENCRYPTION_KEYS`.

    Returns:
        The secret itself when it is a valid Fernet key, else a key derived from it with HKDF-SHA256.
    """
    raw = secret.encode()
    try:
        Fernet(raw)
    except ValueError:  # not 32 url-safe base64 bytes (binascii.Error is a ValueError too)
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO).derive(raw)
        return base64.urlsafe_b64encode(derived)
    return raw


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The configured keys: the first encrypts, every one decrypts."""

    _fernet: MultiFernet = field(repr=False)
    size: int

    @classmethod
    def from_secrets(cls, secrets: Sequence[str]) -> KeyRing:
        """Build a key ring.

        Args:
            secrets: The configured keys, the encrypting one first.

        Returns:
            The key ring.

        Raises:
            ConfigurationError: When no key is given.
        """
        keys = [s.strip() for s in secrets if s.strip()]
        if not keys:
            raise ConfigurationError("TRIPSAGE_ENCRYPTION_KEYS is not configured")
        return cls(MultiFernet([Fernet(fernet_key(s)) for s in keys]), len(keys))

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The key ring of `TRIPSAGE_ENCRYPTION_KEYS` (cached per distinct configuration)."""
        return keyring_for(settings)

    def encrypt(self, plaintext: str) -> bytes:
        """Encrypt with the first key; returns the Fernet token (ASCII bytes)."""
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        """Decrypt a token made with any configured key.

        Raises:
            DecryptionError: When no configured key opens it (or it was tampered with).
        """
        try:
            return self._fernet.decrypt(bytes(token)).decode()
        except InvalidToken as exc:
            raise DecryptionError("the stored secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt a token with the first key (its original timestamp is kept).

        Raises:
            DecryptionError: When no configured key opens it.
        """
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken as exc:
            raise DecryptionError("the stored secret cannot be decrypted with the configured keys") from exc


@functools.lru_cache(maxsize=8)
def _keyring(secrets: tuple[str, ...]) -> KeyRing:
    return KeyRing.from_secrets(secrets)


def keyring_for(settings: Settings) -> KeyRing:
    """The key ring of a settings object's `TRIPSAGE_ENCRYPTION_KEYS` (built once per configuration)."""
    return _keyring(tuple(settings.encryption_keys))


SELECT_KEY = text(
    """
    SELECT ciphertext FROM api_keys
    WHERE user_id = :user_id AND service = :service AND name = :name
    """
)
"""One user's stored key for a service and name (RLS applies too when the session is a user's)."""


async def get_decrypted_key(
    session: AsyncSession,
    user_id: uuid.UUID,
    service: str,
    name: str = "default",
    *,
    keyring: KeyRing | None = None,
) -> str | None:
    """The plaintext of a user's stored API key, for server-side calls to that service only.

    Args:
        session: A session: the user's request session, or one as the login/service role.
        user_id: Whose key.
        service: The service the key is for.
        name: The key's name (`default` unless the user named it).
        keyring: The app's key ring (`keyring_for(ctx.settings)`); read from the environment if absent.

    Returns:
        The key, or None when the user has no such key (or may not see it).

    Raises:
        DecryptionError: When the stored token opens with none of the configured keys.
    """
    ring = keyring or keyring_for(Settings())
    token = (await session.execute(SELECT_KEY, {"user_id": user_id, "service": service, "name": name})).scalar()
    return None if token is None else ring.decrypt(token)


SELECT_BATCH = text(
    """
    SELECT id, ciphertext FROM api_keys
    WHERE id > :after
    ORDER BY id
    LIMIT :batch
    FOR UPDATE
    """
)
"""The next batch of stored keys in id order, locked until the batch's transaction ends."""

UPDATE_BATCH = text(
    """
    UPDATE api_keys AS k SET ciphertext = v.ciphertext
    FROM unnest(:ids, :ciphertexts) AS v (id, ciphertext)
    WHERE k.id = v.id
    """
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))), bindparam("ciphertexts", type_=ARRAY(BYTEA)))
"""Store the re-encrypted tokens of one batch in one statement."""


@dataclass(slots=True)
class RotationResult:
    """What `rotate_all` did."""

    rotated: int = 0
    failed: list[uuid.UUID] = field(default_factory=list)


async def rotate_all(engine: AsyncEngine, keyring: KeyRing, *, batch_size: int = ROTATE_BATCH_SIZE) -> RotationResult:
    """Re-encrypt every stored API key with the key ring's first key, batch by batch.

    Runs as the engine's login role (which owns the tables, so RLS does not hide rows); each batch
    is its own short transaction, so a long rotation never holds many locks and can be rerun.

    Args:
        engine: An engine connected as the login role.
        keyring: The key ring, the new key first and the old ones after it.
        batch_size: Keys per transaction.

    Returns:
        How many keys were re-encrypted, and the ids of those no configured key opens.
    """
    result = RotationResult()
    after = uuid.UUID(int=0)
    while True:
        async with engine.begin() as conn:
            rows = (await conn.execute(SELECT_BATCH, {"after": after, "batch": batch_size})).all()
            if not rows:
                return result
            ids: list[uuid.UUID] = []
            tokens: list[bytes] = []
            for key_id, token in rows:
                try:
                    tokens.append(keyring.rotate(token))
                except DecryptionError:
                    result.failed.append(key_id)
                    continue
                ids.append(key_id)
            if ids:
                await conn.execute(UPDATE_BATCH, {"ids": ids, "ciphertexts": tokens})
            result.rotated += len(ids)
            after = rows[-1][0]
