"""The sliding window of recent events a watch can resume from.

Bounded by age (default 75 s, as in Kubernetes) and by count, so memory stays bounded
under a write storm. `floor` is the newest revision a watch may NOT start before: a
watch from N with N >= floor is served by replaying the window; older gets 410.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..index import CachedObject, CachedWatchEvent
from ..storage.events import EventType


@dataclass(frozen=True, slots=True)
class CacheEvent:
    type: EventType
    key: str
    # The object after the event (its last state, at the deletion's revision, for DELETED).
    object: CachedObject
    # The previous state (MODIFIED/DELETED), for predicate transitions.
    prev: CachedObject | None
    resource_version: int
    recorded_at: float
    # The watch events made of this one, by type (and "gone" for a DELETED of `prev`): one
    # of each however many watchers receive it, so each is encoded once.
    _out: dict[str, CachedWatchEvent] = field(default_factory=dict, compare=False, repr=False)

    def delivered(self, type: EventType) -> CachedWatchEvent:
        """The event's object as a watch event of `type`, shared by every watcher."""
        out = self._out.get(type.value)
        if out is None:
            out = self._out[type.value] = CachedWatchEvent(type, self.object)
        return out

    def gone(self) -> CachedWatchEvent:
        """DELETED of the previous state at this event's revision: what a watcher whose
        selector matched the object before, but not after, receives."""
        out = self._out.get("gone")
        if out is None:
            assert self.prev is not None
            prev = self.prev.with_resource_version(self.resource_version)
            out = self._out["gone"] = CachedWatchEvent(EventType.DELETED, prev)
        return out


class EventWindow:
    def __init__(self, max_age: float = 75.0, max_events: int = 100_000) -> None:
        self.max_age = max_age
        self.max_events = max_events
        self._events: deque[CacheEvent] = deque()
        self.floor = 0

    def __len__(self) -> int:
        return len(self._events)

    def reset(self, resource_version: int) -> None:
        """Forget history: replay is only possible from `resource_version` on."""
        self._events.clear()
        self.floor = resource_version

    def append(self, event: CacheEvent) -> None:
        self._events.append(event)
        self.evict(event.recorded_at)

    def evict(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        events = self._events
        while events and (
            len(events) > self.max_events or now - events[0].recorded_at > self.max_age
        ):
            self.floor = events.popleft().resource_version

    def since(self, resource_version: int) -> Iterator[CacheEvent]:
        """Events with revision > resource_version (caller checked it is >= floor)."""
        events = self._events
        if not events or events[-1].resource_version <= resource_version:
            return
        # Binary search on the revision-ordered deque.
        lo, hi = 0, len(events)
        while lo < hi:
            mid = (lo + hi) // 2
            if events[mid].resource_version <= resource_version:
                lo = mid + 1
            else:
                hi = mid
        for i in range(lo, len(events)):
            yield events[i]
