"""AES-256-GCM encryption of single values bound to the row they belong to."""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cunan.security.keys import KeyFileError, KeyRing

#: Blob layout: version (1) | key-id length (1) | key id (ascii) | nonce (12) | ciphertext+tag.
BLOB_VERSION = 1
NONCE_BYTES = 12


class DecryptionError(ValueError):
    """A stored value does not decrypt: tampered, moved to another row, or the wrong key."""


class FieldCipher:
    """Encrypts values with the key ring's active key; decrypts with whichever key made them.

    ``context`` is the associated data (e.g. ``b"template:42:dlib_resnet_v1"``): it is not
    stored, so a ciphertext copied to another row fails to decrypt there.
    """

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring
        self._aead: dict[str, AESGCM] = {}

    @property
    def active_key_id(self) -> str:
        return self._keyring.active

    def _cipher(self, key_id: str) -> AESGCM:
        aead = self._aead.get(key_id)
        if aead is None:
            aead = self._aead[key_id] = AESGCM(self._keyring.key(key_id))
        return aead

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        key_id = self._keyring.active
        kid = key_id.encode("ascii")
        # A random 96-bit nonce per value: safe for far more values than a village stores
        # (the birthday bound for GCM is ~2^32 encryptions under one key).
        nonce = secrets.token_bytes(NONCE_BYTES)
        body = self._cipher(key_id).encrypt(nonce, plaintext, _aad(kid, context))
        return bytes([BLOB_VERSION, len(kid)]) + kid + nonce + body

    def decrypt(self, blob: bytes, context: bytes, *, what: str = "value") -> bytes:
        key_id = blob_key_id(blob, what=what)
        kid = key_id.encode("ascii")
        start = 2 + len(kid)
        nonce, body = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
        try:
            return self._cipher(key_id).decrypt(nonce, body, _aad(kid, context))
        except InvalidTag:
            raise DecryptionError(
                f"{what}: ciphertext does not decrypt (tampered, swapped with another row's, "
                f"or written with a different key {key_id!r})"
            ) from None


class KeyUnavailableError(KeyFileError):
    """No key at all (the key file was lost): nothing encrypted can be read or written."""


class UnavailableCipher(FieldCipher):
    """Stands in for a lost key file: deleting face data needs no key, so removal and
    withdrawal of consent still work; anything that encrypts or decrypts fails with
    ``reason``."""

    def __init__(self, reason: str) -> None:
        self._reason = reason
        self._aead = {}

    @property
    def active_key_id(self) -> str:
        raise KeyUnavailableError(self._reason)

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        raise KeyUnavailableError(self._reason)

    def decrypt(self, blob: bytes, context: bytes, *, what: str = "value") -> bytes:
        raise KeyUnavailableError(f"{what}: {self._reason}")


def blob_key_id(blob: bytes, *, what: str = "value") -> str:
    """The id of the key a blob was encrypted with."""
    if len(blob) < 2 or blob[0] != BLOB_VERSION or len(blob) < 2 + blob[1] + NONCE_BYTES + 16:
        raise DecryptionError(f"{what}: not an encrypted CunAn value (bad header)")
    try:
        return blob[2 : 2 + blob[1]].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError(f"{what}: not an encrypted CunAn value (bad key id)") from None


def _aad(kid: bytes, context: bytes) -> bytes:
    # The key id is authenticated too, so a forged header cannot redirect decryption.
    return b"cunan/1|" + kid + b"|" + context
