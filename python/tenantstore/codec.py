"""Object <-> bytes, the layer between the storage and the value transformers.

Stored bytes never carry `metadata.resourceVersion`: the version is the backend's
revision of the write, set on every object read back, so a client cannot forge one.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from .storage.errors import InternalError, InvalidError


class Codec(Protocol):
    def encode(self, obj: dict[str, Any]) -> bytes: ...

    def decode(self, data: bytes, resource_version: int) -> dict[str, Any]: ...


class JSONCodec:
    """orjson; the stored form is compact JSON without resourceVersion."""

    def encode(self, obj: dict[str, Any]) -> bytes:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise InvalidError("object has no metadata")
        if "resourceVersion" in meta:
            obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
        try:
            return orjson.dumps(obj)
        except TypeError as exc:
            raise InvalidError(f"object cannot be encoded as JSON: {exc}") from None

    def decode(self, data: bytes, resource_version: int) -> dict[str, Any]:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InternalError(f"stored object cannot be decoded: {exc}") from None
        if not isinstance(obj, dict):
            raise InternalError("stored object is not a JSON object")
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
            obj["metadata"] = meta
        meta["resourceVersion"] = str(resource_version)
        return obj


def set_resource_version(obj: dict[str, Any], resource_version: int) -> dict[str, Any]:
    """A shallow copy of `obj` whose metadata carries `resource_version`."""
    meta = dict(obj.get("metadata") or {})
    meta["resourceVersion"] = str(resource_version)
    return {**obj, "metadata": meta}


def resource_version_of(obj: dict[str, Any]) -> int:
    rv = (obj.get("metadata") or {}).get("resourceVersion") or "0"
    try:
        return int(rv)
    except (TypeError, ValueError):
        return 0
