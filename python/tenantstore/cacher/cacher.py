"""The shared watch cache: one per resource, serving GET/LIST/WATCH from memory.

A single reflector lists the whole resource prefix from the backend and then watches it
(one backend watch per resource, however many projects), applying every event to the
Rust `Index` and to a window of recent events, and offering it to the watchers whose
key prefix contains the event's key. Writes go straight to the store and come back
through the reflector, as in the Kubernetes cacher.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..codec import resource_version_of
from ..index import Index, IndexSnapshot
from ..storage import continue_token
from ..storage.errors import GoneError, StorageError, TooLargeResourceVersionError, not_found
from ..storage.events import EventType, WatchEvent, error_event
from ..storage.interface import Object, Storage, UpdateFunc, ValidateDeletion
from ..storage.options import (
    ListOptions,
    ObjectList,
    Preconditions,
    ResourceVersionMatch,
    parse_resource_version,
)
from ..storage.watch import DEFAULT_CAPACITY, QueueWatch
from . import metrics
from .coalesce import NextRound
from .watchers import CacheWatcher, WatcherTable
from .window import CacheEvent, EventWindow

log = logging.getLogger(__name__)

KeyFunc = Callable[[Object], str]

# How many objects the reflector asks the backend for per page when it lists.
LIST_PAGE = 5000
# Paginated lists keep the snapshot their first page was served from, so later pages
# see the same state; this many are kept (least recently used first out).
MAX_SNAPSHOTS = 16
# Events the backend watch may buffer for the reflector before it is ended as too slow.
REFLECTOR_CAPACITY = 1_000_000


def default_key_func(resource_prefix: str) -> KeyFunc:
    """`<prefix>/<namespace>/<name>`, or `<prefix>/<name>` for cluster-scoped objects."""
    base = resource_prefix.rstrip("/")

    def key_func(obj: Object) -> str:
        meta = obj["metadata"]
        ns = meta.get("namespace")
        return f"{base}/{ns}/{meta['name']}" if ns else f"{base}/{meta['name']}"

    return key_func


class Cacher:
    """`Storage` over a store `Storage` for one resource prefix, served from memory."""

    def __init__(
        self,
        store: Storage,
        resource_prefix: str,
        *,
        key_func: KeyFunc | None = None,
        window_seconds: float = 75.0,
        window_max_events: int = 100_000,
        wait_timeout: float = 3.0,
        unproven_wait: float = 0.05,
        watcher_capacity: int = DEFAULT_CAPACITY,
        bookmark_interval: float = 1.0,
        resource_label: str | None = None,
        watcher_table: type[WatcherTable] = WatcherTable,
    ) -> None:
        self.store = store
        self.prefix = resource_prefix.rstrip("/")
        self.key_func = key_func or default_key_func(self.prefix)
        self.wait_timeout = wait_timeout
        # How long a consistent read waits for the cache's own events when the backend
        # cannot confirm freshness with a progress notification.
        self.unproven_wait = unproven_wait
        self.watcher_capacity = watcher_capacity
        self.bookmark_interval = bookmark_interval
        self.index = Index()
        self.window = EventWindow(window_seconds, window_max_events)
        self.resource_version = 0
        self.watchers = watcher_table(self._on_watcher_terminated)
        self._snapshots: OrderedDict[int, IndexSnapshot] = OrderedDict()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        # Consistent reads share backend round trips (see coalesce.NextRound).
        self._store_revision = NextRound(store.current_resource_version)
        self._request_watch_progress = NextRound(store.request_watch_progress)
        # Listeners called with every applied event (the tenancy deletion tracker).
        self._listeners: list[Callable[[CacheEvent], None]] = []
        label = resource_label or self.prefix
        self._m_objects = metrics.OBJECTS.labels(label)
        self._m_received = metrics.EVENTS_RECEIVED.labels(label)
        self._m_dispatched = metrics.EVENTS_DISPATCHED.labels(label)
        self._m_watchers = metrics.WATCHERS.labels(label)
        self._m_terminated = metrics.WATCHERS_TERMINATED.labels(label)
        self._m_key_errors = metrics.KEY_ERRORS.labels(label)
        self._m_relists = metrics.RELISTS.labels(label)
        self._m_list_latency = metrics.LIST_LATENCY.labels(label)

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(
            loop.create_task(self._reflect(), name=f"cacher-reflector {self.prefix}")
        )
        if self.bookmark_interval > 0:
            self._tasks.append(
                loop.create_task(self._bookmarks(), name=f"cacher-bookmarks {self.prefix}")
            )

    async def wait_ready(self) -> None:
        """Wait for the first list (callers bound it with asyncio.timeout)."""
        await self._ready.wait()

    async def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def stopped(self) -> bool:
        """True once `stop()` began: listeners must not act on a cache being torn down."""
        return self._stopped

    @property
    def live_tasks(self) -> int:
        """asyncio tasks this cacher runs that have not ended (reflector, bookmarks)."""
        return sum(1 for t in self._tasks if not t.done())

    async def request_watch_progress(self) -> bool:
        """Forwarded to the store: the cache itself has no stream to ask for progress."""
        return await self.store.request_watch_progress()

    def _end_all_watchers(self, err: GoneError) -> None:
        for w in self.watchers.all():
            self.watchers.remove(w)
            w.queue.finish(error_event(err.to_status()))
        self._m_watchers.set(len(self.watchers))

    async def stop(self) -> None:
        self._stopped = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        for w in self.watchers.all():
            self.watchers.remove(w)
            w.queue.finish()
        self._m_watchers.set(0)
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    async def close(self) -> None:
        await self.stop()

    def add_listener(self, fn: Callable[[CacheEvent], None]) -> None:
        self._listeners.append(fn)

    # -- reflector ------------------------------------------------------------------
    async def _reflect(self) -> None:
        backoff = 0.05
        need_list = True
        while not self._stopped:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                backoff = 0.05
                need_list = await self._watch_store()
            except asyncio.CancelledError:
                raise
            except GoneError:
                need_list = True
            except Exception as exc:
                log.warning("cacher %s: reflector error: %s", self.prefix, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _list(self) -> None:
        """List the whole prefix at one revision and make the cache equal to it.

        A re-list means the cache missed events it cannot recover one by one (a 410 from
        the backend). A difference computed from the fresh list would be a gap in every
        watcher's history, so instead each watcher is ended with 410 and its client
        re-lists, as upstream: no watcher ever sees a gap or a duplicate.
        """
        self._m_relists.inc()
        items: list[Object] = []
        opts = ListOptions(recursive=True, limit=LIST_PAGE)
        while True:
            page = await self.store.get_list(self.prefix, opts)
            items.extend(page.items)
            if not page.continue_:
                break
            opts = ListOptions(recursive=True, limit=LIST_PAGE, continue_=page.continue_)
        list_rv = page.resource_version
        first = not self._ready.is_set()
        fresh: dict[str, Object] = {}
        for obj in items:
            key = self._key(obj)
            if key is not None:
                fresh[key] = obj
        now = time.monotonic()
        if first:
            for key, obj in fresh.items():
                self.index.put(key, resource_version_of(obj), obj)
            self.window.reset(list_rv)
        else:
            events: list[CacheEvent] = []
            for key, _rv, old in self.index.range(""):
                if key not in fresh:
                    gone = {**old, "metadata": {**old["metadata"], "resourceVersion": str(list_rv)}}
                    events.append(CacheEvent(EventType.DELETED, key, gone, old, list_rv, now))
            for key, obj in fresh.items():
                cur = self.index.get(key)
                rv = resource_version_of(obj)
                if cur is None:
                    events.append(CacheEvent(EventType.ADDED, key, obj, None, rv, now))
                elif cur[0] != rv:
                    events.append(CacheEvent(EventType.MODIFIED, key, obj, cur[1], rv, now))
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
        self._m_objects.set(len(self.index))
        self._advance(list_rv)
        self._ready.set()

    async def _watch_store(self) -> bool:
        """Follow the backend from the cache's revision; True when a re-list is needed."""
        opts = ListOptions(
            resource_version=str(self.resource_version),
            recursive=True,
            allow_watch_bookmarks=True,
            progress_notify=True,
        )
        watch = await self.store.watch(self.prefix, opts)
        if isinstance(watch, QueueWatch):
            # The reflector keeps up with bursts by design (it never awaits per event);
            # a small buffer would turn a burst into a needless re-list.
            watch.set_capacity(REFLECTOR_CAPACITY)
        async with watch:
            async for ev in watch:
                if ev.type is EventType.ERROR:
                    code = ev.object.get("code")
                    if code == 410:
                        return True
                    raise StorageError(str(ev.object.get("message", "watch error")))
                rv = resource_version_of(ev.object)
                if ev.type is EventType.BOOKMARK:
                    self._advance(rv)
                    continue
                if rv <= self.resource_version:
                    continue  # already applied (a re-watch overlapping the last event)
                self._m_received.inc()
                key = self._key(ev.object)
                if key is not None:
                    self._apply(CacheEvent(ev.type, key, ev.object, None, rv, time.monotonic()))
                self._advance(rv)
        return False

    def _key(self, obj: Object) -> str | None:
        try:
            return self.key_func(obj)
        except Exception as exc:
            # Fail closed: an object whose key cannot be trusted is not cached at all.
            self._m_key_errors.inc()
            log.error("cacher %s: key function refused an object: %s", self.prefix, exc)
            return None

    def _apply(self, ev: CacheEvent, *, dispatch: bool = True, record: bool = True) -> None:
        if ev.type is EventType.DELETED:
            prev = self.index.delete(ev.key)
        else:
            prev = self.index.put(ev.key, ev.resource_version, ev.object)
        if ev.prev is None and prev is not None:
            ev = CacheEvent(
                ev.type, ev.key, ev.object, prev[1], ev.resource_version, ev.recorded_at
            )
        if ev.type is EventType.ADDED and prev is not None:
            ev = CacheEvent(
                EventType.MODIFIED, ev.key, ev.object, ev.prev, ev.resource_version, ev.recorded_at
            )
        self._m_objects.set(len(self.index))
        if record:
            self.window.append(ev)
        for fn in self._listeners:
            fn(ev)
        if dispatch and len(self.watchers):
            n = self.watchers.dispatch(ev)
            if n:
                self._m_dispatched.inc(n)

    def _advance(self, rv: int) -> None:
        if rv <= self.resource_version:
            return
        self.resource_version = rv
        waiters = self._waiters
        while waiters and waiters[0][0] <= rv:
            _, _, fut = heapq.heappop(waiters)
            if not fut.done():
                fut.set_result(None)

    async def _bookmarks(self) -> None:
        while True:
            await asyncio.sleep(self.bookmark_interval)
            self.window.evict()
            if self._ready.is_set():
                self.watchers.bookmark_all(self.resource_version)
                self._m_watchers.set(len(self.watchers))

    def send_bookmarks(self) -> None:
        """Send a bookmark at the cache's revision to every watcher that asked for them."""
        self.watchers.bookmark_all(self.resource_version)

    def _on_watcher_terminated(self, w: CacheWatcher) -> None:
        self._m_terminated.inc()
        self._m_watchers.set(len(self.watchers))

    # -- freshness -----------------------------------------------------------------
    async def _wait_for(self, rv: int, timeout: float | None = None) -> None:
        """Wait until the cache has seen `rv`, or fail with TooLargeResourceVersion."""
        if rv <= self.resource_version and self._ready.is_set():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.wait_timeout if timeout is None else timeout)
        try:
            if not self._ready.is_set():
                await asyncio.wait_for(self._ready.wait(), max(0.0, deadline - loop.time()))
            if rv <= self.resource_version:
                return
            fut: asyncio.Future[None] = loop.create_future()
            heapq.heappush(self._waiters, (rv, next(self._seq), fut))
            await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise TooLargeResourceVersionError(
                f"Too large resource version: {rv}, current: {self.resource_version}",
                resource_version=rv,
            ) from None

    async def _consistent(self) -> bool:
        """Bring the cache up to the backend's current revision for a consistent read.

        The backend is asked for a progress notification, so a revision moved only by
        writes elsewhere does not leave the read waiting. Where the backend cannot
        promise one that never runs ahead of events (older etcd), the cache waits
        briefly for its own events and otherwise answers False: the read then goes to
        the backend, as Kubernetes does in that case.
        """
        rv = await self._store_revision()
        if rv <= self.resource_version and self._ready.is_set():
            return True
        reliable = await self._request_watch_progress()
        if reliable:
            await self._wait_for(rv)
            return True
        try:
            await self._wait_for(rv, self.unproven_wait)
        except TooLargeResourceVersionError:
            return False
        return True

    async def _wait_for_watch_start(self, rv: int) -> None:
        """A watch from `rv` needs no replay past the cache's revision, only that `rv` is
        real: the backend has reached it. The cache need not have: a client often
        watches from the revision of a list the backend served (a consistent read the
        cache could not prove fresh), and the events up to `rv` that the cache has yet
        to see are skipped by the watcher when they arrive."""
        if rv <= self.resource_version and self._ready.is_set():
            return
        try:
            await self._wait_for(rv, self.unproven_wait)
        except TooLargeResourceVersionError:
            if rv > await self._store_revision():
                await self._wait_for(rv)  # a revision from the future: 504 after the wait

    async def _fresh_enough(self, resource_version: str) -> bool:
        """Wait for the freshness `resource_version` asks; False = serve from the backend."""
        if resource_version == "":
            return await self._consistent()
        await self._wait_for(parse_resource_version(resource_version))
        return True

    # -- reads ----------------------------------------------------------------------
    async def get(
        self, key: str, *, resource_version: str = "", ignore_not_found: bool = False
    ) -> Object | None:
        if not await self._fresh_enough(resource_version):
            return await self.store.get(
                key, resource_version=resource_version, ignore_not_found=ignore_not_found
            )
        found = self.index.get_object(key)
        if found is None:
            if ignore_not_found:
                return None
            raise not_found(key)
        obj: Object = found
        return obj

    async def get_list(self, key: str, opts: ListOptions) -> ObjectList:
        started = time.perf_counter()
        try:
            return await self._get_list(key, opts)
        finally:
            self._m_list_latency.observe(time.perf_counter() - started)

    async def _get_list(self, key: str, opts: ListOptions) -> ObjectList:
        rv = parse_resource_version(opts.resource_version)
        pred = opts.predicate
        if not opts.recursive:
            if not await self._fresh_enough(opts.resource_version):
                return await self.store.get_list(key, opts)
            if (
                opts.resource_version_match == ResourceVersionMatch.EXACT
                and rv != self.resource_version
            ):
                return await self.store.get_list(key, opts)
            got = self.index.get_object(key)
            single = [got] if got is not None and pred.matches(got) else []
            return ObjectList(items=single, resource_version=self.resource_version)

        prefix = continue_token.list_prefix(key)
        view: Index | IndexSnapshot
        start_after: str | None = None
        include_start: str | None = None
        if opts.continue_:
            start, list_rv = continue_token.decode(opts.continue_, prefix)
            snap = self._snapshots.get(list_rv)
            if snap is None:
                # Not (or no longer) held: the backend serves it at that revision, or 410s.
                return await self.store.get_list(key, opts)
            self._snapshots.move_to_end(list_rv)
            view = snap
            if start.endswith("\x00"):
                start_after = start[:-1]
            else:
                include_start = start
        else:
            if opts.resource_version_match == ResourceVersionMatch.EXACT:
                await self._wait_for(rv)
                if rv != self.resource_version:
                    return await self.store.get_list(key, opts)
            elif (
                opts.resource_version_match == ResourceVersionMatch.UNSET
                and rv > 0
                and opts.limit > 0
            ):
                # Legacy semantics: a paginated list at N is a list at exactly N.
                await self._wait_for(rv)
                if rv != self.resource_version:
                    return await self.store.get_list(key, opts)
            elif not await self._fresh_enough(opts.resource_version):
                return await self.store.get_list(key, opts)
            list_rv = self.resource_version
            view = self.index.snapshot() if opts.limit else self.index

        limit = opts.limit
        items: list[Object] = []
        last_key = ""
        more = False
        scan = _scan(view, prefix, start_after, include_start, limit)
        for k, obj in scan:
            if pred.matches(obj):
                items.append(obj)
                last_key = k
                if limit and len(items) >= limit:
                    more = next(scan, None) is not None
                    break
        token = ""
        remaining: int | None = None
        if more:
            token = continue_token.encode(last_key + "\x00", prefix, list_rv)
            if isinstance(view, IndexSnapshot) and list_rv not in self._snapshots:
                self._snapshots[list_rv] = view
                while len(self._snapshots) > MAX_SNAPSHOTS:
                    self._snapshots.popitem(last=False)
            if pred.empty:
                remaining = view.count(prefix, last_key)
        return ObjectList(
            items=items, resource_version=list_rv, continue_=token, remaining_item_count=remaining
        )

    async def count(self, key: str) -> int:
        # As upstream: counts are exact, so they come from the backend.
        return await self.store.count(key)

    async def current_resource_version(self) -> int:
        return await self._store_revision()

    # -- writes go to the store -----------------------------------------------------
    async def create(self, key: str, obj: Object, *, ttl: int | None = None) -> Object:
        return await self.store.create(key, obj, ttl=ttl)

    async def guaranteed_update(
        self,
        key: str,
        update_fn: UpdateFunc,
        *,
        ignore_not_found: bool = False,
        preconditions: Preconditions | None = None,
        suggestion: Object | None = None,
    ) -> Object:
        if suggestion is None:
            suggestion = self.index.get_object(key)
        return await self.store.guaranteed_update(
            key,
            update_fn,
            ignore_not_found=ignore_not_found,
            preconditions=preconditions,
            suggestion=suggestion,
        )

    async def delete(
        self,
        key: str,
        *,
        preconditions: Preconditions | None = None,
        validate: ValidateDeletion | None = None,
    ) -> Object:
        return await self.store.delete(key, preconditions=preconditions, validate=validate)

    # -- watch ----------------------------------------------------------------------
    async def watch(self, key: str, opts: ListOptions) -> QueueWatch:
        rv_text = opts.resource_version
        if rv_text == "":
            # "Most recent": the freshest state provable; the cache's own otherwise.
            await self._consistent()
            rv = 0
        else:
            rv = parse_resource_version(rv_text)
            if rv > 0:
                await self._wait_for_watch_start(rv)
            elif not self._ready.is_set():
                await self._wait_for(0)
        exact = not opts.recursive
        prefix = key if exact else continue_token.list_prefix(key)
        if rv > 0 and rv < self.window.floor:
            w = QueueWatch(1)
            w.finish(
                error_event(
                    GoneError(f"too old resource version: {rv} ({self.window.floor})").to_status()
                )
            )
            return w
        # Build the initial events and register in one step (no await in between), so
        # the watcher gets every later event exactly once.
        initial: list[WatchEvent] = []
        pred = opts.predicate
        if rv == 0:
            if exact:
                got = self.index.get_object(key)
                found = [got] if got is not None else []
            else:
                found = [obj for _k, _rv, obj in self.index.range(prefix)]
            initial = [WatchEvent(EventType.ADDED, o) for o in found if pred.matches(o)]
            start_rv = self.resource_version
        else:
            start_rv = rv
        queue = QueueWatch(self.watcher_capacity + len(initial))
        watcher = CacheWatcher(queue, prefix, exact, pred, opts.allow_watch_bookmarks, start_rv)
        for ev in initial:
            queue.send(ev)
        if rv > 0:
            for cev in self.window.since(rv):
                if (cev.key == prefix) if exact else cev.key.startswith(prefix):
                    watcher.offer(cev)
        watcher.last_rv = max(watcher.last_rv, start_rv)
        if queue.done:
            return queue
        self.watchers.add(watcher)
        self._m_watchers.set(len(self.watchers))

        def unregister() -> None:
            self.watchers.remove(watcher)
            self._m_watchers.set(len(self.watchers))

        queue.set_on_stop(unregister)
        return queue

    def __repr__(self) -> str:
        return f"Cacher({self.prefix!r}, objects={len(self.index)}, rv={self.resource_version})"


def _scan(
    view: Index | IndexSnapshot,
    prefix: str,
    start_after: str | None,
    include_start: str | None,
    limit: int,
) -> Iterator[tuple[str, Object]]:
    """(key, object) under `prefix` in key order from the resume point, read in growing
    batches so a selective predicate does not copy the whole range at once."""
    if include_start is not None:
        got = view.get(include_start)
        if got is not None and include_start.startswith(prefix):
            yield include_start, got[1]
        start_after = include_start
    if not limit:
        for k, _rv, obj in view.range(prefix, start_after, None):
            yield k, obj
        return
    chunk = max(limit + 1, 64)
    while True:
        batch = view.range(prefix, start_after, chunk)
        for k, _rv, obj in batch:
            yield k, obj
        if len(batch) < chunk:
            return
        start_after = batch[-1][0]
        chunk = min(chunk * 2, 10_000)


if TYPE_CHECKING:
    # mypy proves the protocol is implemented (Go's `var _ storage.Interface = ...`).

    _: Storage = Cacher.__new__(Cacher)
