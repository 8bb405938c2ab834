"""The reflector: the one reader of the store for a cacher.

It lists the whole resource prefix from the store and then watches it (one store watch
per resource, however many projects), applying every event to the Rust `Index` and to
the event window and offering it to the watchers whose key prefix contains the event's
key. Everything the cache knows comes through here, so this is also where an object
whose key cannot be computed is kept out (fail closed) and where a 410 from the store
turns into a re-list that ends every watcher with 410.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable

from ..codec import resource_version_of
from ..index import CachedObject, Index, IndexSnapshot, encode_object, trim_heap
from ..storage.errors import GoneError, StorageError
from ..storage.events import EventType, error_event
from ..storage.interface import Object, Storage
from ..storage.options import ListOptions
from ..storage.watch import QueueWatch
from . import metrics
from .freshness import Freshness
from .watchers import WatcherTable
from .window import CacheEvent, EventWindow

log = logging.getLogger(__name__)

# key_func(object, storage key) -> the key the cache holds the object under. The storage
# key is where the store read the object ("" when unknown); a key function may refuse
# (raise) an object that does not belong there.
KeyFunc = Callable[[Object, str], str]

# How many objects the reflector asks the store for per page when it lists. A page is
# decoded, keyed and kept as bytes before the next is read, so this bounds the decoded
# dicts alive at once, which the process keeps as RSS after they are freed (client-go's
# pager reads 500 at a time).
LIST_PAGE = 500
# Events the store watch may buffer for the reflector before it is ended as too slow.
REFLECTOR_CAPACITY = 1_000_000
# Retry back-off after a failed list or watch: doubling from the start to the cap (each
# sleep drawn from [half, all] of it), and cut short by `retry_now`.
BACKOFF_START = 0.1
BACKOFF_CAP = 2.0
# While the watch stays broken, one summary line per this many seconds.
SUMMARY_INTERVAL = 60.0


def default_key_func(resource_prefix: str) -> KeyFunc:
    """`<prefix>/<namespace>/<name>`, or `<prefix>/<name>` for cluster-scoped objects."""
    base = resource_prefix.rstrip("/")

    def key_func(obj: Object, storage_key: str = "") -> str:
        meta = obj["metadata"]
        ns = meta.get("namespace")
        return f"{base}/{ns}/{meta['name']}" if ns else f"{base}/{meta['name']}"

    return key_func


class Reflector:
    """Keeps a cacher's index, window and watchers in step with the store."""

    def __init__(
        self,
        store: Storage,
        prefix: str,
        key_func: KeyFunc,
        *,
        index: Index,
        window: EventWindow,
        watchers: WatcherTable,
        freshness: Freshness,
        snapshots: OrderedDict[int, IndexSnapshot],
        stopped: Callable[[], bool],
        label: str,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.key_func = key_func
        self.index = index
        self.window = window
        self.watchers = watchers
        self.freshness = freshness
        # The cacher's paginated-list snapshots: a re-list makes them history the cache
        # no longer stands behind, so it drops them.
        self._snapshots = snapshots
        self._stopped = stopped
        # Called with every applied event (the tenancy deletion tracker).
        self.listeners: list[Callable[[CacheEvent], None]] = []
        self._m_objects = metrics.OBJECTS.labels(label)
        self._m_received = metrics.EVENTS_RECEIVED.labels(label)
        self._m_dispatched = metrics.EVENTS_DISPATCHED.labels(label)
        self._m_watchers = metrics.WATCHERS.labels(label)
        self._m_key_errors = metrics.KEY_ERRORS.labels(label)
        self._m_relists = metrics.RELISTS.labels(label)

        # What readiness reports: None while the cache follows the store, else why not.
        self.trouble: str | None = "not synced yet"
        self._broken_since: float | None = None
        self._failures = 0
        self._last_summary = 0.0
        self._retry_now = asyncio.Event()

    def retry_now(self) -> None:
        """Cut a retry back-off short (the backend is known to answer again)."""
        self._retry_now.set()

    async def run(self) -> None:
        backoff = BACKOFF_START
        need_list = True
        while not self._stopped():
            try:
                if need_list:
                    self.trouble = "listing" if self.trouble is None else self.trouble
                    await self._list()
                    need_list = False
                backoff = BACKOFF_START
                need_list = await self._watch_store(on_open=self._recovered)
                if need_list:
                    self.trouble = "re-listing"
            except asyncio.CancelledError:
                raise
            except GoneError:
                need_list = True
                self.trouble = "re-listing"
            except Exception as exc:
                self._broken(exc)
                # Exponential back-off with jitter, so that the caches of every resource
                # (and every server) do not retry a recovering backend in lockstep.
                self._retry_now.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff * random.uniform(0.5, 1.0)):
                        await self._retry_now.wait()
                backoff = min(backoff * 2, BACKOFF_CAP)

    def _broken(self, exc: Exception) -> None:
        """Record a failed attempt; log once when it starts, then a periodic summary."""
        now = time.monotonic()
        self._failures += 1
        self.trouble = "watch broken, retrying"
        if self._broken_since is None:
            self._broken_since = self._last_summary = now
            log.warning("cacher %s: watch broken, retrying: %s", self.prefix, exc)
        elif now - self._last_summary >= SUMMARY_INTERVAL:
            self._last_summary = now
            log.warning(
                "cacher %s: watch still broken after %.0fs and %d attempts: %s",
                self.prefix,
                now - self._broken_since,
                self._failures,
                exc,
            )

    def _recovered(self) -> None:
        """The store watch is open again: the cache follows the store."""
        if self._broken_since is not None:
            log.warning(
                "cacher %s: watch recovered after %.1fs and %d failed attempts",
                self.prefix,
                time.monotonic() - self._broken_since,
                self._failures,
            )
        self._broken_since = None
        self._failures = 0
        self.trouble = None

    async def _list(self) -> None:
        """List the whole prefix at one revision and make the cache equal to it.

        A re-list means the cache missed events it cannot recover one by one (a 410 from
        the store). A difference computed from the fresh list would be a gap in every
        watcher's history, so instead each watcher is ended with 410 and its client
        re-lists, as upstream: no watcher ever sees a gap or a duplicate.
        """
        self._m_relists.inc()
        # Each page is keyed and kept as bytes before the next is read, so the decoded
        # dicts of one page at most are alive at a time: a list of the whole resource
        # would otherwise leave the process at the size of every object decoded at once
        # (the allocator keeps the arenas the surviving strings are scattered over).
        # Keying per page sees the tenant map as keying after the last page would: the
        # first claim on a uid wins, and every page is recorded before it is keyed.
        # The first list goes straight into the (empty, not yet ready) index: a dict of
        # every key and object until the last page would be the list's high-water mark,
        # freed only after every survivor of the pages (interned names, free lists) had
        # settled among its strings, keeping the interpreter's arenas resident.
        first = not self.freshness.ready.is_set()
        if first:
            self.index.clear()  # what a first list that failed half way put there
        fresh: dict[str, CachedObject] = {}
        opts = ListOptions(recursive=True, limit=LIST_PAGE)
        while True:
            page = await self.store.get_list(self.prefix, opts)
            keys = page.keys if page.keys is not None else [""] * len(page.items)
            batch: list[tuple[str, CachedObject]] = []
            for obj, storage_key in zip(page.items, keys, strict=True):
                key = self._key(obj, storage_key)
                cached = self._encode(obj) if key is not None else None
                if key is None or cached is None:
                    continue
                if first:
                    batch.append((key, cached))
                else:
                    fresh[key] = cached
            # A page in key order, put at once, fills the index's tree nodes (`put_many`).
            self.index.put_many(batch)
            list_rv, token = page.resource_version, page.continue_
            del page, keys, batch
            if not token:
                break
            opts = ListOptions(recursive=True, limit=LIST_PAGE, continue_=token)
        now = time.monotonic()
        if first:
            self.window.reset(list_rv)
        else:
            events: list[CacheEvent] = []
            for key, _rv, old in self.index.range(""):
                if key not in fresh:
                    gone = old.with_resource_version(list_rv)
                    events.append(CacheEvent(EventType.DELETED, key, gone, old, list_rv, now))
            for key, cached in fresh.items():
                cur = self.index.get(key)
                rv = cached.resource_version
                if cur is None:
                    events.append(CacheEvent(EventType.ADDED, key, cached, None, rv, now))
                elif cur.resource_version != rv:
                    events.append(CacheEvent(EventType.MODIFIED, key, cached, cur, rv, now))
            events.sort(key=lambda e: e.resource_version)
            for ev in events:
                # Listeners (the tenancy deletion tracker) see the difference; watchers
                # do not: it collapses the history they missed.
                self._apply(ev, dispatch=False, record=False)
            # History between the break and the list is unknown: no replay across it,
            # and every open watch ends with 410 so its client re-lists (as upstream).
            self.window.reset(list_rv)
            self._end_all_watchers(
                GoneError(
                    "the watch cache had to re-list from storage: "
                    "list again and watch from the new resourceVersion"
                )
            )
        self._snapshots.clear()
        del fresh
        # The list allocated every cached object between its transient rows, decoded values
        # and encodings; now freed, they leave holes the C allocator keeps resident (as much
        # again as the objects themselves at 40,000 of them) until told to return them.
        trim_heap()
        self._m_objects.set(len(self.index))
        self.freshness.advance(list_rv)
        self.freshness.ready.set()

    async def _watch_store(self, on_open: Callable[[], None]) -> bool:
        """Follow the store from the cache's revision; True when a re-list is needed."""
        freshness = self.freshness
        opts = ListOptions(
            resource_version=str(freshness.resource_version),
            recursive=True,
            allow_watch_bookmarks=True,
            progress_notify=True,
        )
        watch = await self.store.watch(self.prefix, opts)
        if isinstance(watch, QueueWatch):
            # The reflector keeps up with bursts by design (it never awaits per event);
            # a small buffer would turn a burst into a needless re-list.
            watch.set_capacity(REFLECTOR_CAPACITY)
        on_open()
        async with watch:
            async for ev in watch:
                if ev.type is EventType.ERROR:
                    code = ev.object.get("code")
                    if code == 410:
                        return True
                    raise StorageError(str(ev.object.get("message", "watch error")))
                rv = resource_version_of(ev.object)
                if ev.type is EventType.BOOKMARK:
                    freshness.advance(rv)
                    continue
                if rv <= freshness.resource_version:
                    continue  # already applied (a re-watch overlapping the last event)
                self._m_received.inc()
                key = self._key(ev.object, ev.key)
                cached = self._encode(ev.object) if key is not None else None
                if key is not None and cached is not None:
                    self._apply(CacheEvent(ev.type, key, cached, None, rv, time.monotonic()))
                elif ev.key:
                    self._drop_stale(ev.key, rv)
                freshness.advance(rv)
        return False

    def _drop_stale(self, storage_key: str, rv: int) -> None:
        """A refused event for a key the cache holds: the cached version is no longer
        what is stored there, so it goes (fail closed), rather than being served stale
        for ever while the store moves on."""
        old = self.index.get(storage_key)
        if old is None:
            return
        gone = old.with_resource_version(rv)
        self._apply(CacheEvent(EventType.DELETED, storage_key, gone, old, rv, time.monotonic()))

    def _key(self, obj: Object, storage_key: str = "") -> str | None:
        try:
            return self.key_func(obj, storage_key)
        except Exception as exc:
            # Fail closed: an object whose key cannot be trusted is not cached at all.
            self._m_key_errors.inc()
            log.error("cacher %s: key function refused an object: %s", self.prefix, exc)
            return None

    def _encode(self, obj: Object) -> CachedObject | None:
        """`obj` as the cache keeps it (bytes), or None (counted as a key error, and not
        cached: fail closed) for what cannot be kept."""
        try:
            return encode_object(obj)
        except (TypeError, ValueError) as exc:
            self._m_key_errors.inc()
            log.error("cacher %s: cannot keep an object: %s", self.prefix, exc)
            return None

    def _apply(self, ev: CacheEvent, *, dispatch: bool = True, record: bool = True) -> None:
        obj = ev.object
        if ev.type is EventType.DELETED:
            prev = self.index.delete(ev.key)
        else:
            prev = self.index.put(ev.key, obj)
            # The index keeps its own copy (the key inside, one allocation): the event
            # shares that one, so the window holds no second copy of a recent object.
            obj = self.index.get(ev.key) or obj
        event_type = ev.type
        if event_type is EventType.ADDED and prev is not None:
            event_type = EventType.MODIFIED
        ev = CacheEvent(
            event_type,
            ev.key,
            obj,
            ev.prev if ev.prev is not None else prev,
            ev.resource_version,
            ev.recorded_at,
        )
        self._m_objects.set(len(self.index))
        if record:
            self.window.append(ev)
        for fn in self.listeners:
            fn(ev)
        if dispatch and len(self.watchers):
            n = self.watchers.dispatch(ev)
            if n:
                self._m_dispatched.inc(n)

    def _end_all_watchers(self, err: GoneError) -> None:
        for w in self.watchers.all():
            self.watchers.remove(w)
            w.queue.finish(error_event(err.to_status()))
        self._m_watchers.set(len(self.watchers))
