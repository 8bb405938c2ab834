"""The byte path of reads: results a layer hands up already encoded.

The watch cache keeps objects as JSON bytes (`tenantstore.index`), so a server that
answers with JSON gains nothing from a dict: the cache assembles the response's objects
from the bytes, with `kind`/`apiVersion` and `resourceVersion` set, byte for byte what
encoding the dict path's objects gives. A storage that can do this implements
`EncodedReads` besides `Storage`; a read it cannot serve from its bytes (one delegated
to the store) comes back as the dict path's result, so callers handle both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

from .interface import Object
from .options import ListOptions, ObjectList


@dataclass(frozen=True, slots=True)
class EncodedList:
    """A LIST page whose items are already encoded: `items` is their JSON joined by commas
    (the inside of the list's `items` array), each with `kind`, `apiVersion` and its
    `resourceVersion` set. The rest is `ObjectList`'s."""

    items: bytes
    count: int
    resource_version: int
    continue_: str = ""
    remaining_item_count: int | None = None


@runtime_checkable
class EncodedReads(Protocol):
    """GET and LIST that may answer with encoded objects (see the module docstring)."""

    async def get_encoded(
        self, key: str, *, resource_version: str = "", kind: str, api_version: str
    ) -> bytes | Object:
        """The object at `key` as JSON bytes typed `kind`/`api_version`, or as a dict
        when it was not served from bytes; errors as `Storage.get` (never `None`)."""
        ...

    async def get_list_encoded(
        self, key: str, opts: ListOptions, *, kind: str, api_version: str
    ) -> EncodedList | ObjectList:
        """`Storage.get_list`, with the page's items encoded when served from bytes."""
        ...


_ENCODED_CLASSES: dict[type, bool] = {}


def encoded_reads(storage: object) -> EncodedReads | None:
    """`storage` as `EncodedReads` if its class implements it, else None. Answered once
    per class: `isinstance` against a runtime-checkable protocol inspects every member
    on each call, a visible share of a LIST served from the cache."""
    cls = type(storage)
    has = _ENCODED_CLASSES.get(cls)
    if has is None:
        has = _ENCODED_CLASSES[cls] = isinstance(storage, EncodedReads)
    return cast(EncodedReads, storage) if has else None
