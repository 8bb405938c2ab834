"""Object <-> bytes, the layer between the storage and the value transformers.

Stored bytes never carry `metadata.resourceVersion`: the version is the backend's
revision of the write, set on every object read back, so a client cannot forge one.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from .storage.errors import InternalError, InvalidError

# The deepest nesting an object may have. orjson refuses to encode past 254 levels, and
# a stored object is served wrapped: a LIST puts it two levels down (the list, its
# items), a watch event one, a Table more. An object accepted near orjson's limit would
# break every LIST that includes it, for every tenant of the resource; so the limit
# leaves room for the wrapping, and a deeper object is refused when it is written.
MAX_DEPTH = 200


def nesting_exceeds(obj: Any, limit: int = MAX_DEPTH) -> bool:
    """True if `obj` has containers nested more than `limit` levels deep (iterative, so a
    hostile object cannot exhaust the Python stack while it is being measured)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


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
        if nesting_exceeds(obj):
            raise InvalidError(f"object is nested more than {MAX_DEPTH} levels deep")
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
