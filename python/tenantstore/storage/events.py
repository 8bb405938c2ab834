"""Watch events, shaped like `watch.Event` in Kubernetes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class EventType(enum.StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. `object` is the new object (the last state for DELETED), a
    `{"metadata": {"resourceVersion": ...}}` stub for BOOKMARK, and a `metav1.Status`
    for ERROR."""

    type: EventType
    object: dict[str, Any]
    # The storage key the object was read from, where the storage knows it (the store
    # sets it; the cache's own events leave it empty). It lets the cache's key function
    # check the object against where it really lives; never shown to clients.
    key: str = field(default="", compare=False, repr=False)


def bookmark(resource_version: int, kind: str = "", api_version: str = "") -> WatchEvent:
    obj: dict[str, Any] = {"metadata": {"resourceVersion": str(resource_version)}}
    if kind:
        obj["kind"] = kind
    if api_version:
        obj["apiVersion"] = api_version
    return WatchEvent(EventType.BOOKMARK, obj)


def error_event(status: dict[str, Any]) -> WatchEvent:
    return WatchEvent(EventType.ERROR, status)
