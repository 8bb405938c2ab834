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


# The annotation on the BOOKMARK that ends a watch-list's initial events (upstream's
# `metav1.InitialEventsAnnotationKey`): client-go's reflector treats the list as complete
# when it sees it.
INITIAL_EVENTS_END_ANNOTATION = "k8s.io/initial-events-end"


def initial_events_end(resource_version: int) -> WatchEvent:
    """The BOOKMARK that tells a watch-list client its initial state is complete and
    consistent at `resource_version`; it carries nothing but the revision and the
    annotation, so it says nothing about any scope."""
    obj: dict[str, Any] = {
        "metadata": {
            "resourceVersion": str(resource_version),
            "annotations": {INITIAL_EVENTS_END_ANNOTATION: "true"},
        }
    }
    return WatchEvent(EventType.BOOKMARK, obj)


def error_event(status: dict[str, Any]) -> WatchEvent:
    return WatchEvent(EventType.ERROR, status)
