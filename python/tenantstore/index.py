"""The watch cache's ordered index and its cached objects, kept in the Rust core.

`Index` maps each cached key to a `CachedObject` in key order, so a LIST is a range scan
and a paginated LIST resumes from a key; `Index.snapshot()` is O(1) (a persistent map),
so every page of a paginated LIST reads the state its first page saw. The map lives in
Rust because the cacher touches it on every event and every read; this module is the
typed face of that extension, as `keys` and `frames` are of theirs.

A `CachedObject` is the object's JSON without `metadata.resourceVersion` and a projection
of the fields selectors need, not a Python dict: a dict costs several times its JSON in
memory, and every response would encode it again. So responses are assembled from the
bytes (`CachedObject.encode`, `Index.select_encoded`), byte for byte what `orjson.dumps`
gives for the decoded object, and a dict is made only when a caller of the library's
`Storage` methods asks for one (`decode`).
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from tenantstore._native import (
    CachedObject,
    Index,
    IndexSnapshot,
    Selector,
    trim_heap,
    tune_heap,
)

from .codec import resource_version_of
from .storage.events import EventType, WatchEvent
from .storage.selectors import Predicate

__all__ = [
    "CachedObject",
    "CachedWatchEvent",
    "Index",
    "IndexSnapshot",
    "Selector",
    "compile_predicate",
    "decode",
    "encode_object",
    "event_encodes",
    "trim_heap",
    "tune_heap",
]


def encode_object(obj: dict[str, Any]) -> CachedObject:
    """`obj` (as the store returns it, `resourceVersion` in its metadata) kept as bytes.

    Raises `ValueError` for what is not an object with a `metadata` object, and
    `TypeError` for what JSON cannot hold: the cache does not keep such an object."""
    return CachedObject(orjson.dumps(obj), resource_version_of(obj))


def decode(obj: CachedObject) -> dict[str, Any]:
    """A fresh dict of `obj`, as the store would return it (callers may modify it)."""
    out: dict[str, Any] = orjson.loads(obj.encode())
    return out


@functools.lru_cache(maxsize=4096)
def compile_predicate(pred: Predicate) -> Selector | None:
    """The Rust form of a parsed predicate (None when it selects everything); parsing and
    its errors stay in `selectors.py`, so both forms accept exactly the same text."""
    if pred.empty:
        return None
    return Selector(
        [(r.key, r.op, r.values) for r in pred.label.requirements],
        [(r.paths, r.op, r.value) for r in pred.field.requirements],
    )


_encodes = 0


def event_encodes() -> int:
    """How many watch event lines were encoded from cached objects so far: with many
    watchers of one event, this grows by one per event, not per watcher."""
    return _encodes


class CachedWatchEvent(WatchEvent):
    """A watch event over a `CachedObject`: one per cache event and type, shared by every
    watcher that receives it, so the object is decoded at most once (when a library
    caller reads `object`) and its line encoded at most once per resource type (as
    upstream's `cachingObject`)."""

    __slots__ = ("_decoded", "_line", "cached")

    cached: CachedObject
    _decoded: dict[str, Any] | None
    _line: tuple[str, str, bytes] | None

    def __init__(self, type: EventType, cached: CachedObject) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "key", "")
        object.__setattr__(self, "cached", cached)
        object.__setattr__(self, "_decoded", None)
        object.__setattr__(self, "_line", None)

    @property
    def object(self) -> dict[str, Any]:
        decoded: dict[str, Any] | None = self._decoded
        if decoded is None:
            decoded = decode(self.cached)
            object.__setattr__(self, "_decoded", decoded)
        return decoded

    def encode_line(self, kind: str, api_version: str) -> bytes:
        """`{"type":...,"object":...}\\n` with `kind`/`apiVersion` set, as the server
        streams it; encoded once, then shared."""
        global _encodes
        line: tuple[str, str, bytes] | None = self._line
        if line is None or line[0] != kind or line[1] != api_version:
            _encodes += 1
            data = self.cached.encode_event(self.type.value, kind, api_version)
            line = (kind, api_version, data)
            object.__setattr__(self, "_line", line)
        return line[2]
