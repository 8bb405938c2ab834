"""The etcd-shaped key-value contract every backend implements.

Like kine, a backend only has to offer etcd's few primitives (a revisioned range,
compare-and-swap transactions on `mod_revision`, a watch from a revision, compaction);
`tenantstore.store.KVStorage` builds the Kubernetes storage semantics on top
once, exactly as the Kubernetes etcd3 store builds them on the etcd client.

Keys are `str` (UTF-8 on the wire). Every revision is the store-wide revision counter,
strictly increasing by one per successful write.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from ..storage.errors import GoneError, InvalidError, RequestEntityTooLargeError


# Not frozen: a frozen dataclass's __init__ costs ~2x (object.__setattr__ per field), and
# one is built per item of every list. Treat instances as immutable all the same.
@dataclass(slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KeyValue]
    # The store's current revision when the range was read (etcd's header revision),
    # even for a range at an older `revision`.
    revision: int
    # True if `limit` cut the result short.
    more: bool
    # Number of keys in the whole range (ignoring limit).
    count: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    """Outcome of a compare-and-swap.

    succeeded: the write happened at `revision` (`current` may then hold the written or
    deleted value; callers must not rely on it). Otherwise `current` is the key's current
    value (None if absent) read in the same transaction, so the caller can retry without
    another round trip, and `revision` is the store revision of that read.
    """

    succeeded: bool
    revision: int
    current: KeyValue | None


class KVEventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"
    # No key change: the store has reached `revision` (etcd progress notification).
    PROGRESS = "PROGRESS"


@dataclass(frozen=True, slots=True)
class KVEvent:
    type: KVEventType
    # The new key-value for PUT; for DELETE a KeyValue with the key, empty value,
    # `mod_revision` = the delete's revision (create_revision may be 0, as etcd sends
    # it). None for PROGRESS.
    kv: KeyValue | None
    # The previous key-value (the last state for DELETE; None on create).
    prev_kv: KeyValue | None
    revision: int


class CompactedError(GoneError):
    """The requested revision is older than the store's compaction point."""

    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(
            f"too old resource version: {requested} ({compact_revision})",
            resource_version=requested,
        )
        self.requested = requested
        self.compact_revision = compact_revision


class KVWatch(Protocol):
    """Events in revision order, from `start_revision` on, for keys in [start, end).

    Iteration raises `CompactedError` if `start_revision` is compacted, and
    `UnavailableError` if the stream breaks or the KV is closed; either ends the watch.
    `close()` ends iteration cleanly.
    """

    def __aiter__(self) -> AsyncIterator[KVEvent]: ...

    async def close(self) -> None: ...


# etcd's default `--max-request-bytes` (1.5 MiB): the largest write request it accepts.
# Every driver refuses a key plus value above its limit with the same error, and the
# SQLite driver defaults to etcd's limit, so that one object is storable or not on
# either backend alike.
DEFAULT_MAX_REQUEST_BYTES = 1_572_864
# Room for the rest of an etcd write request (the transaction's compare and the
# response options), so that a key plus value under the limit is always accepted.
REQUEST_OVERHEAD_BYTES = 1024


def check_size(key: str, value: bytes, max_request_bytes: int) -> None:
    """`RequestEntityTooLargeError` (413) if `key` and `value` make too large a write."""
    size = len(key.encode("utf-8", "surrogateescape")) + len(value)
    if size + REQUEST_OVERHEAD_BYTES > max_request_bytes:
        limit = max_request_bytes - REQUEST_OVERHEAD_BYTES
        raise RequestEntityTooLargeError(
            f"the object is too large to store: {size} bytes, the limit is {limit} bytes"
        )


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key starting with `prefix` (etcd's range end)."""
    if not prefix:
        return "\x00"  # etcd: "\0" as range end means "to the end of the keyspace"
    last = prefix[-1]
    return prefix[:-1] + chr(ord(last) + 1)


class KV(Protocol):
    async def get(self, key: str) -> tuple[KeyValue | None, int]:
        """(current value or None, store revision of the read)."""
        ...

    async def range(
        self, start: str, end: str, *, revision: int = 0, limit: int = 0
    ) -> RangeResult:
        """Keys in [start, end) in key order at `revision` (0 = current); `end` = "\\x00"
        means no upper bound. Raises CompactedError for a compacted revision."""
        ...

    async def count(self, start: str, end: str) -> int: ...

    async def create(self, key: str, value: bytes, *, ttl: int | None = None) -> TxnResult:
        """Put if the key does not exist (etcd: create_revision == 0)."""
        ...

    async def update(
        self, key: str, value: bytes, *, expected_mod_revision: int, ttl: int | None = None
    ) -> TxnResult:
        """Put if the key's mod_revision is `expected_mod_revision` (> 0: callers create
        absent keys with `create`). A put detaches any TTL, as in etcd, unless `ttl` gives
        the new value one (an update function's TTL, as upstream's)."""
        ...

    async def delete(self, key: str, *, expected_mod_revision: int) -> TxnResult:
        """Delete if the key's mod_revision is `expected_mod_revision` (0 = any)."""
        ...

    def watch(
        self, start: str, end: str, *, start_revision: int, progress_notify: bool = False
    ) -> KVWatch: ...

    async def current_revision(self) -> int: ...

    async def request_progress(self) -> bool:
        """Ask for a PROGRESS event now on every watch opened with progress_notify, at a
        revision covering every write acknowledged before the call, and never ahead of
        an event still to be delivered. False if the backend cannot promise that (then
        nothing was asked)."""
        ...

    @property
    def watch_count(self) -> int:
        """Watches open through this KV (the `tenantstore_backend_watches` gauge)."""
        ...

    @property
    def max_request_bytes(self) -> int:
        """The largest write (key plus value plus overhead) the backend accepts; a larger
        `create` or `update` is refused with `RequestEntityTooLargeError` (413)."""
        ...

    async def compact(self, revision: int) -> None:
        """Forget history below `revision` (a no-op if already compacted past it)."""
        ...

    async def ready(self) -> bool: ...

    async def close(self) -> None: ...

    # `async with await open_kv(url) as kv:` closes the KV however the block ends, so an
    # embedder that only knows the contract cannot leak a driver's threads or channel.
    async def __aenter__(self) -> Self:
        """The KV itself."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """`close()`."""
        ...


# -- input checks every driver shares (as kine's drivers share `generic`) --------------------


class InvalidKVInputError(InvalidError, ValueError):
    """A malformed key, value or argument (both a 422 `InvalidError` and a ValueError)."""


def check_key(key: object, what: str = "key") -> str:
    """A non-empty `str` key, or `InvalidKVInputError`."""
    if not isinstance(key, str) or not key:
        raise InvalidKVInputError(f"{what} must be a non-empty str, got {key!r}")
    return key


def check_range_end(end: object) -> str:
    """A range end is any `str`: "" is a single key, "\\x00" the end of the keyspace."""
    if not isinstance(end, str):
        raise InvalidKVInputError(f"range end must be a str, got {end!r}")
    return end


def check_value(value: object) -> bytes:
    """Bytes-like values as `bytes`; anything else is refused rather than coerced."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise InvalidKVInputError(f"value must be bytes, got {type(value).__name__}")


def check_revision(revision: object, what: str) -> int:
    """An `int` revision >= 0 (`bool` is refused though it is an `int`)."""
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise InvalidKVInputError(f"{what} must be an int >= 0, got {revision!r}")
    return revision


def check_ttl(ttl: object) -> int | None:
    """None, or a positive whole number of seconds."""
    if ttl is None:
        return None
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        raise InvalidKVInputError(f"ttl must be a positive int (seconds), got {ttl!r}")
    return ttl
