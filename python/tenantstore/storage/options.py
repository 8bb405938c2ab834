"""Options and results of storage calls, mirroring `storage.ListOptions` and friends."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequestError, ConflictError
from .selectors import EVERYTHING, Predicate


class ResourceVersionMatch(enum.StrEnum):
    UNSET = ""
    NOT_OLDER_THAN = "NotOlderThan"
    EXACT = "Exact"


@dataclass(frozen=True, slots=True)
class ListOptions:
    """How to list or watch.

    `resource_version`: "" = consistent read (list) / current state then changes (watch);
    "0" = any cached state; "N" = at least N (or exactly N with `Exact`).
    """

    resource_version: str = ""
    resource_version_match: ResourceVersionMatch = ResourceVersionMatch.UNSET
    limit: int = 0
    continue_: str = ""
    recursive: bool = False
    predicate: Predicate = EVERYTHING
    allow_watch_bookmarks: bool = False
    # Watch only: ask the backend for progress notifications (bookmarks) as well.
    progress_notify: bool = False

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise BadRequestError("limit must not be negative")
        if self.continue_ and self.resource_version not in ("", "0") and self.limit:
            # Kubernetes: "specifying resource version is not allowed when using continue"
            raise BadRequestError("specifying resource version is not allowed when using continue")
        if self.resource_version_match == ResourceVersionMatch.EXACT and self.resource_version in (
            "",
            "0",
        ):
            raise BadRequestError("resourceVersionMatch=Exact requires a non-zero resourceVersion")


# Revisions are int64 in etcd (and in the Kubernetes API): anything larger is client
# nonsense that must be a 400 here, not an out-of-range error from the backend.
MAX_RESOURCE_VERSION = 2**63 - 1


def parse_decimal(text: str, maximum: int = MAX_RESOURCE_VERSION) -> int | None:
    """`text` as a non-negative int if it is ASCII decimal digits up to `maximum`, else None.

    `str.isdigit()` alone is not enough: it accepts superscripts (U+00B2) that `int()`
    then refuses, and `str.isdecimal()` accepts other scripts' digits that Kubernetes
    (Go's strconv) refuses. Both would turn a client's typo into a 500 or an alias.
    """
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= maximum else None


def parse_resource_version(rv: str) -> int:
    """'' -> 0; 'N' -> N; anything else is a 400."""
    if rv == "":
        return 0
    value = parse_decimal(rv)
    if value is None:
        raise BadRequestError(f'invalid resource version "{rv}"')
    return value


@dataclass(frozen=True, slots=True)
class Preconditions:
    """What must hold of the stored object for an update or delete to go ahead."""

    uid: str | None = None
    resource_version: str | None = None

    def check(self, key: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if self.uid is not None and meta.get("uid") != self.uid:
            raise ConflictError(
                f"Precondition failed: UID in precondition: {self.uid}, "
                f"UID in object meta: {meta.get('uid', '')}",
                key=key,
            )
        if (
            self.resource_version is not None
            and meta.get("resourceVersion") != self.resource_version
        ):
            raise ConflictError(
                "Precondition failed: ResourceVersion in precondition: "
                f"{self.resource_version}, ResourceVersion in object meta: "
                f"{meta.get('resourceVersion', '')}",
                key=key,
            )


@dataclass(slots=True)
class ObjectList:
    items: list[dict[str, Any]] = field(default_factory=list)
    resource_version: int = 0
    continue_: str = ""
    remaining_item_count: int | None = None
    # The storage key of each item, where the storage knows them (the store fills it
    # for the cache's reflector; layers above the cache leave it None).
    keys: list[str] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Stats:
    """What `Storage.stats()` reports, as upstream's `storage.Stats`: the number of objects
    and their average size as stored (after the transformer), which Kubernetes uses to
    estimate the cost of a list before serving it."""

    object_count: int = 0
    estimated_average_object_size_bytes: int = 0
