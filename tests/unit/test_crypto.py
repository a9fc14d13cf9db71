"""core.crypto: Fernet keys from configured secrets, the key ring, rotation."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet

from core.crypto import DecryptionError, KeyRing, fernet_key, keyring_for
from core.settings import ConfigurationError
from tests.support import TEST_ENCRYPTION_KEY, TEST_JWT_SECRET, make_settings

PASSPHRASE = "not a fernet key but a long enough passphrase"


def test_a_fernet_key_is_used_as_it_is() -> None:
    key = Fernet.generate_key().decode()
    assert fernet_key(key) == key.encode()
    assert fernet_key(TEST_ENCRYPTION_KEY) == TEST_ENCRYPTION_KEY.encode()


@pytest.mark.parametrize("secret", [PASSPHRASE, "x" * 44, "ключ-шифрования-" * 3, TEST_JWT_SECRET, "short"])
def test_other_secrets_are_derived_deterministically(secret: str) -> None:
    derived = fernet_key(secret)
    assert derived == fernet_key(secret)
    assert derived != secret.encode()
    assert len(base64.urlsafe_b64decode(derived)) == 32
    Fernet(derived)  # a valid key
    assert fernet_key(secret + "!") != derived


def test_known_derivation() -> None:
    # Pinned so a refactor cannot silently change the derivation (stored keys would stop decrypting).
    assert fernet_key(PASSPHRASE) == b"YHRrYLrwgnK_f0gKUCSH0jHGhRhaMZzmAXywUrScAaI="


def test_round_trip_and_multi_key_decryption() -> None:
    old = KeyRing.from_secrets([TEST_ENCRYPTION_KEY])
    token = old.encrypt("sk-secret-value")
    assert b"sk-secret-value" not in token
    assert old.decrypt(token) == "sk-secret-value"
    both = KeyRing.from_secrets([PASSPHRASE, TEST_ENCRYPTION_KEY])
    assert both.size == 2
    assert both.decrypt(token) == "sk-secret-value"
    fresh = both.encrypt("ünïcødé ✈")
    assert KeyRing.from_secrets([PASSPHRASE]).decrypt(fresh) == "ünïcødé ✈"
    with pytest.raises(DecryptionError):
        old.decrypt(fresh)


def test_rotation_moves_tokens_to_the_first_key() -> None:
    old = KeyRing.from_secrets([TEST_ENCRYPTION_KEY])
    token = old.encrypt("value")
    rotated = KeyRing.from_secrets([PASSPHRASE, TEST_ENCRYPTION_KEY]).rotate(token)
    assert KeyRing.from_secrets([PASSPHRASE]).decrypt(rotated) == "value"
    with pytest.raises(DecryptionError):
        old.decrypt(rotated)
    with pytest.raises(DecryptionError):
        KeyRing.from_secrets([PASSPHRASE]).rotate(token)


@pytest.mark.parametrize("token", [b"", b"garbage", b"gAAAAA" + b"A" * 80])
def test_garbage_and_tampered_tokens_are_refused(token: bytes) -> None:
    ring = KeyRing.from_secrets([TEST_ENCRYPTION_KEY])
    with pytest.raises(DecryptionError):
        ring.decrypt(token)
    genuine = bytearray(base64.urlsafe_b64decode(ring.encrypt("value")))
    genuine[-40] ^= 1
    with pytest.raises(DecryptionError):
        ring.decrypt(base64.urlsafe_b64encode(bytes(genuine)))


def test_memoryview_tokens_from_the_database_are_accepted() -> None:
    ring = KeyRing.from_secrets([TEST_ENCRYPTION_KEY])
    assert ring.decrypt(memoryview(ring.encrypt("value"))) == "value"  # type: ignore[arg-type]


def test_no_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        KeyRing.from_secrets([])
    with pytest.raises(ConfigurationError):
        KeyRing.from_secrets(["  ", ""])


def test_repr_hides_the_keys() -> None:
    ring = KeyRing.from_secrets([TEST_ENCRYPTION_KEY])
    assert TEST_ENCRYPTION_KEY not in repr(ring)
    assert "size=1" in repr(ring)


def test_keyring_for_settings_is_cached_per_configuration() -> None:
    first = make_settings("postgresql://u@localhost/db", "redis://localhost")
    same = make_settings("postgresql://u@localhost/other", "redis://localhost")
    rotated = make_settings(
        "postgresql://u@localhost/db",
        "redis://localhost",
        tripsage_encryption_keys=f"{PASSPHRASE} ,{TEST_ENCRYPTION_KEY}",
    )
    assert keyring_for(first) is keyring_for(same)
    assert KeyRing.from_settings(first) is keyring_for(first)
    assert keyring_for(rotated).size == 2
    assert keyring_for(rotated).decrypt(keyring_for(first).encrypt("v")) == "v"
