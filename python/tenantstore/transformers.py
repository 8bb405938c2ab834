"""Value transformers: what happens to bytes on their way into and out of storage.

As in Kubernetes, the storage key is passed as authenticated data on every call, so an
encrypting transformer binds each value to its key: bytes copied to another key (by a
bug or by someone with backend access) fail to decrypt instead of showing up there.
"""

from __future__ import annotations

import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .storage.errors import InternalError


class Transformer(Protocol):
    def to_storage(self, data: bytes, key: str) -> bytes: ...

    def from_storage(self, data: bytes, key: str) -> tuple[bytes, bool]:
        """Return (plain bytes, stale); stale means "rewrite me with the current key"."""
        ...


class IdentityTransformer:
    def to_storage(self, data: bytes, key: str) -> bytes:
        return data

    def from_storage(self, data: bytes, key: str) -> tuple[bytes, bool]:
        return data, False


IDENTITY = IdentityTransformer()

_PREFIX = b"k8s:enc:aesgcm:v1:"
_NONCE = 12


class AESGCMTransformer:
    """AES-GCM at rest, the key as associated data.

    Stored form: `k8s:enc:aesgcm:v1:<key name>:` + 12-byte random nonce + ciphertext.
    The first named key encrypts; every key decrypts, so keys can be rotated, and a value
    read with a non-primary key is reported stale.
    """

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("AESGCMTransformer needs at least one key")
        for name, secret in keys:
            if not name or ":" in name:
                raise ValueError(f"invalid key name {name!r}")
            if len(secret) not in (16, 24, 32):
                raise ValueError("AES keys must be 16, 24 or 32 bytes")
        self._primary = keys[0][0]
        self._keys = {name.encode(): AESGCM(secret) for name, secret in keys}

    def to_storage(self, data: bytes, key: str) -> bytes:
        nonce = os.urandom(_NONCE)
        name = self._primary.encode()
        sealed = self._keys[name].encrypt(nonce, data, key.encode())
        return b"".join((_PREFIX, name, b":", nonce, sealed))

    def from_storage(self, data: bytes, key: str) -> tuple[bytes, bool]:
        if not data.startswith(_PREFIX):
            raise InternalError("stored value is not AES-GCM encrypted", key=key)
        rest = data[len(_PREFIX) :]
        name, sep, payload = rest.partition(b":")
        aead = self._keys.get(name)
        if not sep or aead is None:
            raise InternalError("stored value is encrypted with an unknown key", key=key)
        try:
            plain = aead.decrypt(payload[:_NONCE], payload[_NONCE:], key.encode())
        except InvalidTag:
            raise InternalError(
                "stored value failed to decrypt (wrong key or tampered)", key=key
            ) from None
        return plain, name != self._primary.encode()
