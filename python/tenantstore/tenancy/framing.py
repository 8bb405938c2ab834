"""The storage-key side channel: a framing transformer and the tenant codec.

The storage layer hands every value transformer the storage key. The cacher, however, only
ever sees decoded objects, and nothing on an object may say which tenant owns it (no label, no
annotation: clients could read or forge it). So the key travels *next to* the bytes, from the
transformer to the codec, in a frame (`tenantstore.frames`):

    KV bytes --inner transformer (e.g. AES-GCM, key as AAD)--> plain
             --FramingTransformer.from_storage--> frame(storage key, plain)
             --TenantCodec.decode--> unframe, decode plain, record uid -> owner in the tenant map

Frames never reach storage: `to_storage` strips one if present, and a stored value that
starts with the frame magic byte (0x7f, which cannot start JSON) is refused on the way out, so
a value planted with a forged frame cannot pose as another key's.
"""

from __future__ import annotations

from typing import Any

from ..codec import Codec
from ..frames import CorruptFrameError, frame, unframe
from ..storage.errors import InternalError
from ..transformers import Transformer
from .tenant_map import TenantMap

__all__ = ["FramingTransformer", "TenantCodec"]

_MAGIC0 = 0x7F


class FramingTransformer:
    """Frames the storage key onto every value read; strips frames from values written."""

    __slots__ = ("inner",)

    def __init__(self, inner: Transformer) -> None:
        self.inner = inner

    def to_storage(self, data: bytes, key: str) -> bytes:
        try:
            split = unframe(data)
        except CorruptFrameError:
            raise InternalError("refusing to store a value with a corrupt frame") from None
        if split is not None:
            data = split[1]
        return self.inner.to_storage(data, key)

    def from_storage(self, data: bytes, key: str) -> tuple[bytes, bool]:
        plain, stale = self.inner.from_storage(data, key)
        if plain[:1] and plain[0] == _MAGIC0:
            # tenantstore never stores a frame: this value was planted or damaged.
            raise InternalError("stored value is not valid: it carries a frame")
        return frame(key.encode("utf-8"), plain), stale


class TenantCodec:
    """Splits the frame off, decodes the body, records the object's owner in the tenant map."""

    __slots__ = ("inner", "resource_prefix", "tenant_map")

    def __init__(self, inner: Codec, tenant_map: TenantMap, resource_prefix: str) -> None:
        self.inner = inner
        self.tenant_map = tenant_map
        self.resource_prefix = resource_prefix.rstrip("/")

    def encode(self, obj: dict[str, Any]) -> bytes:
        return self.inner.encode(obj)

    def decode(self, data: bytes, resource_version: int) -> dict[str, Any]:
        try:
            split = unframe(data)
        except CorruptFrameError:
            # Never a plain-decode fallback: a damaged frame could hide a different key.
            raise InternalError("stored object has a corrupt storage-key frame") from None
        if split is None:
            # Not read from storage (e.g. the store decoding what it just wrote): no key known.
            return self.inner.decode(data, resource_version)
        key, body = split
        obj = self.inner.decode(body, resource_version)
        self.tenant_map.record(key, obj)
        return obj
