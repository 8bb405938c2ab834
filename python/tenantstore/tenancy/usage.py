"""Per-project usage (objects and bytes, across every resource), kept from the caches.

Quotas must not cost a backend round trip per create, and idle projects must cost
nothing, so the table is fed by the shared caches themselves: a listener on each
resource's `Cacher` (`Cacher.add_listener`, called synchronously with every applied
event, re-lists included) adds or subtracts each event's difference. A project appears
in the table with its first object and disappears with its last one.

The first list of a cache does not reach listeners (the reflector fills the index
directly), so each resource is counted once from its index when its cache is ready
(`seed`); events applied before that are ignored, since the index already holds them.
Both run on the event loop without awaiting, so the count never sees an event twice.

Bytes are an approximation of what the store holds: `len(orjson.dumps(obj))` of the
cached object, not counting its `resourceVersion` (which the client does not send and
which changes on every write). The store's frame (the tenant prefix, a transformer's
envelope) is not counted, and JSON key order does not change the length.

The table lags the backend by the cache's watch delay. A write that must be visible in
the table before its response goes out (so that a client's next create is checked
against it) waits with `settle` for its revision to reach the cache.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..cacher import CacheEvent, Cacher
from ..keys import project_of_key
from ..storage.events import EventType

__all__ = ["ProjectUsage", "Usage", "object_size"]

log = logging.getLogger(__name__)

# `"resourceVersion":""` plus the comma that separates it from its neighbour.
_RV_OVERHEAD = len('"resourceVersion":"",')
# Cached objects counted per step of `seed`.
SEED_PAGE = 500


def object_size(obj: dict[str, Any]) -> int:
    """The bytes `obj` counts for in a byte quota (see the module docstring)."""
    size = len(orjson.dumps(obj))
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    if isinstance(rv, str):
        size -= _RV_OVERHEAD + len(rv.encode())
    return size


@dataclass(frozen=True, slots=True)
class Usage:
    objects: int = 0
    bytes: int = 0


@dataclass(slots=True)
class _Resource:
    prefix: str
    cacher: Cacher
    seeded: bool = False
    # The highest revision the listener has seen applied, and `settle`'s waiters on it.
    applied: int = 0
    waiters: list[tuple[int, int, asyncio.Future[None]]] = field(default_factory=list)


class ProjectUsage:
    """Objects and bytes per project (None is the root scope), from the shared caches."""

    def __init__(self) -> None:
        self._objects: dict[str | None, int] = {}
        self._bytes: dict[str | None, int] = {}
        self._resources: dict[str, _Resource] = {}
        self._seq = itertools.count()

    # -- feeding ------------------------------------------------------------------------
    def attach(self, prefix: str, cacher: Cacher) -> None:
        """Follow `cacher` (the cache of resource `prefix`); call before it starts."""
        prefix = prefix.rstrip("/")
        if prefix in self._resources:
            raise ValueError(f"resource prefix attached twice: {prefix!r}")
        res = _Resource(prefix, cacher)
        self._resources[prefix] = res
        cacher.add_listener(lambda ev: self._on_event(res, ev))

    def seed(self, prefix: str) -> None:
        """Count what the cache of `prefix` holds now (its first list); once."""
        res = self._resources[prefix.rstrip("/")]
        if res.seeded:
            return
        # In pages: a list of every cached object's key and handle at once would be the
        # server's largest Python allocation, and its arenas would stay resident after it.
        last: str | None = None
        while page := res.cacher.index.range("", start_after=last, limit=SEED_PAGE):
            for key, _rv, obj in page:
                scoped, project = self._scope(res, key)
                if scoped:
                    self._add(project, 1, obj.size)
            last = page[-1][0]
        res.seeded = True
        self._advance(res, res.cacher.resource_version)

    def _scope(self, res: _Resource, key: str) -> tuple[bool, str | None]:
        """(True, the project) of a cache key; (False, None) for a key outside every
        scope (an unmapped object, counted nowhere)."""
        try:
            return True, project_of_key(key, res.prefix)
        except ValueError:
            return False, None

    def _add(self, project: str | None, objects: int, size: int) -> None:
        count = self._objects.get(project, 0) + objects
        if count <= 0:
            self._objects.pop(project, None)
            self._bytes.pop(project, None)
            return
        self._objects[project] = count
        self._bytes[project] = self._bytes.get(project, 0) + size

    def _on_event(self, res: _Resource, ev: CacheEvent) -> None:
        try:
            if res.seeded:
                self._count(res, ev)
            self._advance(res, ev.resource_version)
        except Exception:  # never break the cacher's reflector
            log.exception("project usage: counting an event failed")

    def _count(self, res: _Resource, ev: CacheEvent) -> None:
        scoped, project = self._scope(res, ev.key)
        if not scoped:
            return
        if ev.type is EventType.ADDED or (ev.type is EventType.MODIFIED and ev.prev is None):
            self._add(project, 1, ev.object.size)
        elif ev.type is EventType.MODIFIED:
            assert ev.prev is not None
            self._add(project, 0, ev.object.size - ev.prev.size)
        elif ev.type is EventType.DELETED and ev.prev is not None:
            # No `prev`: the cache did not hold the key, so it was never counted.
            self._add(project, -1, -ev.prev.size)

    # -- waiting for a write to be counted ------------------------------------------------
    def _advance(self, res: _Resource, rv: int) -> None:
        if rv <= res.applied:
            return
        res.applied = rv
        waiters = res.waiters
        while waiters and waiters[0][0] <= rv:
            _, _, fut = heapq.heappop(waiters)
            if not fut.done():
                fut.set_result(None)

    async def settle(self, prefix: str, rv: int, timeout: float = 3.0) -> bool:
        """Wait until the write at revision `rv` of resource `prefix` is counted; False
        when the cache did not apply it within `timeout` (the count then lags)."""
        res = self._resources.get(prefix.rstrip("/"))
        if res is None:
            return False
        if rv <= res.applied or rv <= res.cacher.resource_version:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(res.waiters, (rv, next(self._seq), fut))
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            return False
        finally:
            if not fut.done():
                fut.cancel()
        return True

    # -- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        """Scopes holding at least one object."""
        return len(self._objects)

    def __contains__(self, project: object) -> bool:
        return project in self._objects

    def of(self, project: str | None) -> Usage:
        """What `project` holds (zeros for a project with nothing)."""
        return Usage(self._objects.get(project, 0), self._bytes.get(project, 0))

    def items(self) -> Iterator[tuple[str | None, Usage]]:
        for project, count in self._objects.items():
            yield project, Usage(count, self._bytes.get(project, 0))

    def objects(self) -> dict[str | None, int]:
        """Objects per scope (a view: do not modify)."""
        return self._objects

    def bytes(self) -> dict[str | None, int]:
        """Bytes per scope (a view: do not modify)."""
        return self._bytes

    def totals(self) -> Usage:
        return Usage(sum(self._objects.values()), sum(self._bytes.values()))

    def stop(self) -> None:
        """Release every `settle` waiter (the caches stop)."""
        for res in self._resources.values():
            for _, _, fut in res.waiters:
                if not fut.done():
                    fut.set_result(None)
            res.waiters.clear()
