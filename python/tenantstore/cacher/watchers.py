"""Cache watchers and the scope-indexed dispatch table.

Upstream, every event is offered to every watcher of the resource and each watcher
filters; with one shared cacher per resource that is O(all tenants' watchers) per
event. Here watchers are registered under the key prefix they watch, and an event is
offered only to the watchers registered at one of its key's path prefixes (one dict
lookup per path segment), so the cost of an event does not depend on how many
watchers other scopes have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..index import compile_predicate
from ..storage.errors import InternalError
from ..storage.events import EventType, WatchEvent, bookmark, error_event
from ..storage.selectors import Predicate
from ..storage.watch import QueueWatch
from .window import CacheEvent


class CacheWatcher:
    __slots__ = (
        "bookmark_rv",
        "bookmarks",
        "exact",
        "last_rv",
        "predicate",
        "prefix",
        "queue",
        "selector",
        "start_rv",
    )

    def __init__(
        self,
        queue: QueueWatch,
        prefix: str,
        exact: bool,
        predicate: Predicate,
        bookmarks: bool,
        rv: int,
    ) -> None:
        self.queue = queue
        self.prefix = prefix
        self.exact = exact
        self.predicate = predicate
        self.selector = compile_predicate(predicate)
        self.bookmarks = bookmarks
        self.last_rv = rv
        self.start_rv = rv
        # No bookmark at the revision the watch started from: it would tell nothing.
        self.bookmark_rv = rv

    def translate(self, ev: CacheEvent) -> WatchEvent | None:
        """The event as this watcher's predicate sees it (Kubernetes transition rules),
        evaluated in Rust on the cached objects' projections."""
        sel = self.selector
        if sel is None:
            return ev.delivered(ev.type)
        if ev.type is EventType.DELETED:
            return ev.delivered(EventType.DELETED) if sel.matches(ev.object) else None
        cur_ok = sel.matches(ev.object)
        prev_ok = ev.prev is not None and sel.matches(ev.prev)
        if cur_ok:
            return ev.delivered(EventType.MODIFIED if prev_ok else EventType.ADDED)
        if prev_ok:
            return ev.gone()
        return None

    def offer(self, ev: CacheEvent) -> bool:
        """Deliver; False when the watcher is finished (stopped, or ended as too slow)."""
        if ev.resource_version <= self.start_rv:
            # A watch from a revision the cache had not reached yet: the client's state
            # already includes this event.
            return not self.queue.done
        out = self.translate(ev)
        if out is None:
            return not self.queue.done
        if self.queue.send(out):
            self.last_rv = ev.resource_version
            return True
        return False

    def offer_bookmark(self, rv: int) -> bool:
        """One bookmark per new cache revision; never behind an event already sent."""
        if rv <= self.bookmark_rv or rv < self.last_rv:
            return True
        if self.queue.send(bookmark(rv)):
            self.last_rv = self.bookmark_rv = rv
            return True
        return False


def path_prefixes(key: str) -> Iterator[str]:
    """'/a/b/c' -> '/', '/a/', '/a/b/' (every prefix ending at a '/')."""
    i = key.find("/")
    while i >= 0:
        yield key[: i + 1]
        i = key.find("/", i + 1)


class WatcherTable:
    """Watchers indexed by the prefix (recursive) or key (single object) they watch."""

    def __init__(self, on_terminated: Callable[[CacheWatcher], None]) -> None:
        self._by_prefix: dict[str, set[CacheWatcher]] = {}
        self._by_key: dict[str, set[CacheWatcher]] = {}
        self._bookmarkers: set[CacheWatcher] = set()
        self._count = 0
        self._on_terminated = on_terminated

    def __len__(self) -> int:
        return self._count

    def add(self, w: CacheWatcher) -> None:
        table = self._by_key if w.exact else self._by_prefix
        table.setdefault(w.prefix, set()).add(w)
        if w.bookmarks:
            self._bookmarkers.add(w)
        self._count += 1

    def remove(self, w: CacheWatcher) -> None:
        table = self._by_key if w.exact else self._by_prefix
        ws = table.get(w.prefix)
        if ws is None or w not in ws:
            return
        ws.discard(w)
        if not ws:
            del table[w.prefix]
        self._bookmarkers.discard(w)
        self._count -= 1

    def interested(self, key: str) -> Iterator[CacheWatcher]:
        by_prefix = self._by_prefix
        if by_prefix:
            for p in path_prefixes(key):
                ws = by_prefix.get(p)
                if ws:
                    yield from ws
        ws = self._by_key.get(key)
        if ws:
            yield from ws

    def dispatch(self, ev: CacheEvent) -> int:
        """Offer `ev` to the interested watchers; returns how many were offered it."""
        # Materialized first: a watcher ended as too slow unregisters itself.
        targets = list(self.interested(ev.key))
        for w in targets:
            try:
                alive = w.offer(ev)
            except Exception as exc:
                # A watcher's predicate failing on an object ends that watcher only; the
                # event still reaches every other one (and the reflector goes on).
                w.queue.finish(
                    error_event(InternalError(f"watch failed: {type(exc).__name__}").to_status())
                )
                alive = False
            if not alive:
                self._drop(w)
        return len(targets)

    def bookmark_all(self, rv: int) -> None:
        for w in list(self._bookmarkers):
            if not w.offer_bookmark(rv):
                self._drop(w)

    def _drop(self, w: CacheWatcher) -> None:
        # remove() is idempotent: the queue's on_stop callback may have done it already.
        self.remove(w)
        if w.queue.terminated:
            self._on_terminated(w)

    def all(self) -> list[CacheWatcher]:
        out: list[CacheWatcher] = []
        for table in (self._by_prefix, self._by_key):
            for ws in table.values():
                out.extend(ws)
        return out


class ScanningWatcherTable(WatcherTable):
    """The upstream strategy: offer every event to every watcher, which filters by key.

    Kept only as the baseline for the dispatch benchmark.
    """

    def __init__(self, on_terminated: Callable[[CacheWatcher], None]) -> None:
        super().__init__(on_terminated)
        self._flat: set[CacheWatcher] = set()

    def add(self, w: CacheWatcher) -> None:
        super().add(w)
        self._flat.add(w)

    def remove(self, w: CacheWatcher) -> None:
        super().remove(w)
        self._flat.discard(w)

    def interested(self, key: str) -> Iterator[CacheWatcher]:
        for w in self._flat:
            if (w.exact and w.prefix == key) or (not w.exact and key.startswith(w.prefix)):
                yield w
