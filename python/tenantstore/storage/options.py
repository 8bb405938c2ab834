"""Options and results of storage calls, mirroring `storage.ListOptions` and friends."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequestError, ConflictError, InvalidError
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

    `send_initial_events` (watch only; `None` = unset, the legacy watch) asks for a
    watch-list: with `True` the state not older than `resource_version` arrives as ADDED
    events, then (with `allow_watch_bookmarks`) a BOOKMARK annotated
    `k8s.io/initial-events-end: "true"`, then the changes; with `False` only the changes
    after that state. It is a tri-state, as upstream's `*bool`, because an explicit
    `False` with `""`/`"0"` starts at the current state where the legacy watch would
    first replay it.
    """

    resource_version: str = ""
    resource_version_match: ResourceVersionMatch = ResourceVersionMatch.UNSET
    limit: int = 0
    continue_: str = ""
    recursive: bool = False
    predicate: Predicate = EVERYTHING
    allow_watch_bookmarks: bool = False
    # Watch only: progress notifications from the backend, delivered as BOOKMARKs
    # whether or not `allow_watch_bookmarks` is set (upstream's etcd3 watcher does so).
    progress_notify: bool = False
    # Watch only: the watch-list (see the class docstring).
    send_initial_events: bool | None = None

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
        if self.send_initial_events is not None and (
            self.resource_version_match == ResourceVersionMatch.EXACT
        ):
            # The initial state is "not older than" by definition; an exact revision's
            # state cannot be followed by a live stream the cache could promise.
            raise InvalidError(
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
            )


def validate_watch_request(
    *,
    watch: bool,
    send_initial_events: bool | None,
    resource_version_match: ResourceVersionMatch,
    continue_: str = "",
) -> None:
    """Refuse the option combinations upstream's `ValidateListOptions` refuses, with the
    same 422 (`Invalid`, kind `ListOptions`, one cause per field error).

    The storage itself accepts a watch-list without a match (upstream's storage tests do
    exactly that); this is the API's contract with clients, so a client that would get an
    error from Kubernetes gets the same error here rather than a different answer.
    """
    # (field, cause reason, message)
    errors: list[tuple[str, str, str]] = []
    forbidden, unsupported = "FieldValueForbidden", "FieldValueNotSupported"
    match = resource_version_match
    if not watch:
        if send_initial_events is not None:
            errors.append(
                ("sendInitialEvents", forbidden, "sendInitialEvents is forbidden for list")
            )
    else:
        if send_initial_events is not None and match != ResourceVersionMatch.NOT_OLDER_THAN:
            errors.append(
                (
                    "resourceVersionMatch",
                    forbidden,
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )
            )
        if match != ResourceVersionMatch.UNSET:
            if send_initial_events is None:
                errors.append(
                    (
                        "resourceVersionMatch",
                        forbidden,
                        "resourceVersionMatch is forbidden for watch unless "
                        "sendInitialEvents is provided",
                    )
                )
            if match != ResourceVersionMatch.NOT_OLDER_THAN:
                errors.append(
                    (
                        "resourceVersionMatch",
                        unsupported,
                        f'Unsupported value: "{match.value}": supported values: "NotOlderThan"',
                    )
                )
            if continue_:
                errors.append(
                    (
                        "resourceVersionMatch",
                        forbidden,
                        "resourceVersionMatch is forbidden when continue is provided",
                    )
                )
    if not errors:
        return
    texts = [
        f"{field}: {msg}" if reason == unsupported else f"{field}: Forbidden: {msg}"
        for field, reason, msg in errors
    ]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    raise InvalidError(
        f'ListOptions.meta.k8s.io "" is invalid: {joined}',
        details={
            "group": "meta.k8s.io",
            "kind": "ListOptions",
            "causes": [
                {"reason": reason, "message": text.split(": ", 1)[1], "field": field}
                for (field, reason, _), text in zip(errors, texts, strict=True)
            ],
        },
    )


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
