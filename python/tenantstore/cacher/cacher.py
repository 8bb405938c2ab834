"""The shared watch cache: one per resource, serving GET/LIST/WATCH from memory.

`Cacher` is the facade, as upstream's `cacher.go`: it composes the roles that upstream
splits the same way, so each can be read alone. The reflector (`reflector.py`, upstream's
reflector and `watch_cache.go`) is the cache's only reader of the store: one list of the
whole prefix, then one store watch per resource however many projects, applied to the
Rust `Index`, the event window and the watchers. `freshness.py` tracks how far the cache
has got and makes reads wait for the revision they need; `delegator.py` decides which
reads the cache answers and which go to the store. Writes go straight to the store and
come back through the reflector, as in the Kubernetes cacher.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..index import (
    CachedObject,
    CachedWatchEvent,
    Index,
    IndexSnapshot,
    compile_predicate,
    decode,
)
from ..storage import continue_token
from ..storage.encoded import EncodedList
from ..storage.errors import GoneError, TooLargeResourceVersionError, not_found
from ..storage.events import EventType, WatchEvent, error_event, initial_events_end
from ..storage.interface import Object, Storage, UpdateFunc, ValidateDeletion
from ..storage.key_schema import check_key
from ..storage.options import (
    ListOptions,
    ObjectList,
    Preconditions,
    ResourceVersionMatch,
    Stats,
    parse_resource_version,
)
from ..storage.watch import DEFAULT_CAPACITY, QueueWatch
from . import metrics
from .delegator import Delegator
from .freshness import Freshness
from .reflector import KeyFunc, Reflector, default_key_func
from .watchers import CacheWatcher, WatcherTable
from .window import CacheEvent, EventWindow

__all__ = ["MAX_SNAPSHOTS", "Cacher", "KeyFunc", "default_key_func"]

# Paginated lists keep the snapshot their first page was served from, so later pages
# see the same state; this many are kept (least recently used first out).
MAX_SNAPSHOTS = 16


class Cacher:
    """`Storage` over the store for one resource prefix, served from memory."""

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
        index_prefix: str | None = None,
    ) -> None:
        self.store = store
        self.prefix = resource_prefix.rstrip("/")
        self.key_func = key_func or default_key_func(self.prefix)
        self.watcher_capacity = watcher_capacity
        self.bookmark_interval = bookmark_interval
        # Keys under `index_prefix` (default: the resource prefix) are held without it (see
        # `Index`): the part most keys share, given once rather than paid per object.
        self.index = Index(self.prefix + "/" if index_prefix is None else index_prefix)
        self.window = EventWindow(window_seconds, window_max_events)
        self.watchers = watcher_table(self._on_watcher_terminated)
        self._snapshots: OrderedDict[int, IndexSnapshot] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        label = resource_label or self.prefix
        self._freshness = Freshness(store, wait_timeout=wait_timeout, unproven_wait=unproven_wait)
        self._reflector = Reflector(
            store,
            self.prefix,
            self.key_func,
            index=self.index,
            window=self.window,
            watchers=self.watchers,
            freshness=self._freshness,
            snapshots=self._snapshots,
            stopped=lambda: self._stopped,
            label=label,
        )
        self._delegator = Delegator(self._freshness, self.index, self._snapshots)
        self._m_watchers = metrics.WATCHERS.labels(label)
        self._m_terminated = metrics.WATCHERS_TERMINATED.labels(label)
        self._m_list_latency = metrics.LIST_LATENCY.labels(label)

    @property
    def resource_version(self) -> int:
        """The revision the cache has applied everything up to (moved by the reflector)."""
        return self._freshness.resource_version

    @property
    def wait_timeout(self) -> float:
        return self._freshness.wait_timeout

    @property
    def unproven_wait(self) -> float:
        return self._freshness.unproven_wait

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(
            loop.create_task(self._reflector.run(), name=f"cacher-reflector {self.prefix}")
        )
        if self.bookmark_interval > 0:
            self._tasks.append(
                loop.create_task(self._bookmarks(), name=f"cacher-bookmarks {self.prefix}")
            )

    async def wait_ready(self) -> None:
        """Wait for the first list (callers bound it with asyncio.timeout)."""
        await self._freshness.ready.wait()

    async def wait_for_revision(self, rv: int, timeout: float | None = None) -> None:
        """Wait until the cache has applied revision `rv` (504 after `timeout`, by
        default `wait_timeout`): a write's revision, so that what the cache serves next
        includes it. Reads at `rv` do this themselves; this is for callers that look
        into the cache directly (its index, its listeners)."""
        await self._freshness.wait_for(rv, timeout)

    async def ready(self) -> bool:
        return self._freshness.ready.is_set()

    def health(self) -> str | None:
        """None while the cache is synced and follows the store's watch; otherwise why
        not ("not synced yet", "re-listing", "watch broken, retrying", "stopped").
        `ready()` only says the first list is in; this is what readiness reports."""
        if self._stopped:
            return "stopped"
        return self._reflector.trouble

    def retry_now(self) -> None:
        """Retry a broken watch now instead of at the end of its back-off."""
        self._reflector.retry_now()

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
        self._freshness.cancel_waiters()

    async def close(self) -> None:
        await self.stop()

    def add_listener(self, fn: Callable[[CacheEvent], None]) -> None:
        self._reflector.listeners.append(fn)

    async def _bookmarks(self) -> None:
        while True:
            await asyncio.sleep(self.bookmark_interval)
            self.window.evict()
            if self._freshness.ready.is_set():
                self.watchers.bookmark_all(self.resource_version)
                self._m_watchers.set(len(self.watchers))

    def send_bookmarks(self) -> None:
        """Send a bookmark at the cache's revision to every watcher that asked for them."""
        self.watchers.bookmark_all(self.resource_version)

    def _on_watcher_terminated(self, w: CacheWatcher) -> None:
        self._m_terminated.inc()
        self._m_watchers.set(len(self.watchers))

    # -- reads ----------------------------------------------------------------------
    def _keyed_as(self, obj: Object, storage_key: str) -> str | None:
        """The key the cache would hold `obj` under, or None if it would not hold it.

        A read delegated to the store must show what the cache would show, no more: the
        key function is where a shared cache keeps out objects whose scope cannot be
        trusted (a value copied into another project's keys, a body that disagrees with
        its key). Without this check the store would hand them out to whichever scope's
        key range they were planted in."""
        try:
            return self.key_func(obj, storage_key)
        except Exception:
            return None

    def _as_cached(self, key: str, opts: ListOptions, listed: ObjectList) -> ObjectList:
        """`listed` (from the store) without the objects the cache would not list here."""
        prefix = key if not opts.recursive else continue_token.list_prefix(key)
        keys = listed.keys if listed.keys is not None else [""] * len(listed.items)
        kept = [
            obj
            for obj, storage_key in zip(listed.items, keys, strict=True)
            if (k := self._keyed_as(obj, storage_key)) is not None
            and (k == key if not opts.recursive else k.startswith(prefix))
        ]
        return ObjectList(
            items=kept,
            resource_version=listed.resource_version,
            continue_=listed.continue_,
            remaining_item_count=listed.remaining_item_count,
        )

    async def get(
        self, key: str, *, resource_version: str = "", ignore_not_found: bool = False
    ) -> Object | None:
        got = await self._get(key, resource_version, ignore_not_found)
        return decode(got) if isinstance(got, CachedObject) else got

    async def get_encoded(
        self, key: str, *, resource_version: str = "", kind: str, api_version: str
    ) -> bytes | Object:
        """`get`, as the object's JSON typed `kind`/`api_version` when served from the
        cache (a dict when the store answered)."""
        got = await self._get(key, resource_version, False)
        if isinstance(got, CachedObject):
            return got.encode(kind, api_version)
        assert got is not None
        return got

    async def _get(
        self, key: str, resource_version: str, ignore_not_found: bool
    ) -> CachedObject | Object | None:
        check_key(key, self.prefix)
        if await self._delegator.get(resource_version):
            got = await self.store.get(
                key, resource_version=resource_version, ignore_not_found=True
            )
            if got is not None and self._keyed_as(got, key) == key:
                return got
            # Absent, or an object the cache would not hold under this key (see
            # `_keyed_as`): what the store returned is invisible, as in the cache.
            if ignore_not_found:
                return None
            raise not_found(key)
        found = self.index.get(key)
        if found is None:
            if ignore_not_found:
                return None
            raise not_found(key)
        return found

    async def get_list(self, key: str, opts: ListOptions) -> ObjectList:
        listed = await self._timed_list(key, opts, None)
        assert isinstance(listed, ObjectList)
        return listed

    async def get_list_encoded(
        self, key: str, opts: ListOptions, *, kind: str, api_version: str
    ) -> EncodedList | ObjectList:
        """`get_list`, with the items assembled from the cached bytes (typed `kind` /
        `api_version`) when the cache serves it; a delegated list comes back as dicts."""
        return await self._timed_list(key, opts, (kind, api_version))

    async def _timed_list(
        self, key: str, opts: ListOptions, typed: tuple[str, str] | None
    ) -> ObjectList | EncodedList:
        check_key(key, self.prefix)
        started = time.perf_counter()
        try:
            return await self._get_list(key, opts, typed)
        finally:
            self._m_list_latency.observe(time.perf_counter() - started)

    async def _get_list(
        self, key: str, opts: ListOptions, typed: tuple[str, str] | None
    ) -> ObjectList | EncodedList:
        await self._check_not_compacted(key, opts)
        if await self._delegator.get_list(key, opts):
            return self._as_cached(key, opts, await self.store.get_list(key, opts))
        selector = compile_predicate(opts.predicate)
        if not opts.recursive:
            got = self.index.get(key)
            single = (
                [got] if got is not None and (selector is None or got.matches(selector)) else []
            )
            if typed is not None:
                data = b",".join(o.encode(*typed) for o in single)
                return EncodedList(data, len(single), self.resource_version)
            return ObjectList(
                items=[decode(o) for o in single], resource_version=self.resource_version
            )

        prefix = continue_token.list_prefix(key)
        view: Index | IndexSnapshot
        start: str | None = None
        inclusive = False
        if opts.continue_:
            start, list_rv = continue_token.decode(opts.continue_, prefix)
            view = self._snapshots[list_rv]  # held: the delegator checked
            self._snapshots.move_to_end(list_rv)
            if start.endswith("\x00"):
                start = start[:-1]
            else:
                inclusive = True
        else:
            list_rv = self.resource_version
            view = self.index.snapshot() if opts.limit else self.index

        limit = opts.limit or None
        encoded: bytes = b""
        objects: list[CachedObject] = []
        if typed is not None:
            encoded, count, last_key, more = view.select_encoded(
                prefix, start, inclusive, limit, selector, *typed
            )
        else:
            objects, last_key, more = view.select(prefix, start, inclusive, limit, selector)
            count = len(objects)
        token = ""
        remaining: int | None = None
        if more and last_key is not None:
            token = continue_token.encode(last_key + "\x00", prefix, list_rv)
            if isinstance(view, IndexSnapshot) and list_rv not in self._snapshots:
                self._snapshots[list_rv] = view
                while len(self._snapshots) > MAX_SNAPSHOTS:
                    self._snapshots.popitem(last=False)
            if selector is None:
                remaining = view.count(prefix, last_key)
        if typed is not None:
            return EncodedList(encoded, count, list_rv, token, remaining)
        return ObjectList(
            items=[decode(o) for o in objects],
            resource_version=list_rv,
            continue_=token,
            remaining_item_count=remaining,
        )

    async def _check_not_compacted(self, key: str, opts: ListOptions) -> None:
        """An Exact list (or the legacy paginated list at N) the cache could serve from
        memory must still fail with 410 once the store has compacted N away, as it would
        from the store: a one-item probe of the store at N raises `GoneError` then. The
        cache's own history cannot tell: it never sees compactions.

        A continue token held as a snapshot is checked the same way: once the store has
        compacted its revision the snapshot is dropped, so the store answers the page
        (a 410 carrying the inconsistent token the client finishes its list with)."""
        if opts.continue_:
            _start, list_rv = continue_token.decode(opts.continue_, continue_token.list_prefix(key))
            if list_rv in self._snapshots:
                try:
                    await self._probe(key, list_rv, opts.recursive)
                except GoneError:
                    self._snapshots.pop(list_rv, None)
            return
        rv = parse_resource_version(opts.resource_version)
        match = opts.resource_version_match
        if rv <= 0 or not (
            match == ResourceVersionMatch.EXACT
            or (match == ResourceVersionMatch.UNSET and opts.limit > 0)
        ):
            return
        if rv > self.resource_version:
            return  # not in the cache yet: the delegator waits or the store answers
        await self._probe(key, rv, opts.recursive)

    async def _probe(self, key: str, rv: int, recursive: bool) -> None:
        """Raises `GoneError` if the store has compacted revision `rv` away."""
        probe = ListOptions(
            resource_version=str(rv),
            resource_version_match=ResourceVersionMatch.EXACT,
            limit=1,
            recursive=recursive,
        )
        await self.store.get_list(key, probe)

    async def count(self, key: str) -> int:
        # As upstream: counts are exact, so they come from the store.
        check_key(key, self.prefix)
        return await self.store.count(key)

    async def stats(self, key: str) -> Stats:
        # Exact, like `count`: the cache leaves out values it cannot decode.
        check_key(key, self.prefix)
        return await self.store.stats(key)

    async def current_resource_version(self) -> int:
        return await self._freshness.store_revision()

    # -- writes go to the store -----------------------------------------------------
    async def create(self, key: str, obj: Object, *, ttl: int | None = None) -> Object:
        check_key(key, self.prefix)
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
        check_key(key, self.prefix)
        return await self.store.guaranteed_update(
            key,
            update_fn,
            ignore_not_found=ignore_not_found,
            preconditions=preconditions,
            suggestion=self._delegator.update_suggestion(key, suggestion),
        )

    async def delete(
        self,
        key: str,
        *,
        preconditions: Preconditions | None = None,
        validate: ValidateDeletion | None = None,
        ignore_store_read_error: bool = False,
    ) -> Object:
        check_key(key, self.prefix)
        return await self.store.delete(
            key,
            preconditions=preconditions,
            validate=validate,
            ignore_store_read_error=ignore_store_read_error,
        )

    # -- watch ----------------------------------------------------------------------
    async def watch(self, key: str, opts: ListOptions) -> QueueWatch:
        check_key(key, self.prefix)
        if opts.send_initial_events:
            return await self._watch_list(key, opts)
        rv_text = opts.resource_version
        with_state = False
        if opts.send_initial_events is False and rv_text in ("", "0"):
            # No initial events: the changes after the store's current revision ("") or
            # after the cache's ("0"), as upstream's `getCommonResourceVersionLockedFunc`.
            if rv_text == "":
                rv = await self._freshness.store_revision()
                await self._freshness.wait_for_watch_start(rv)
            else:
                await self._freshness.wait_for(0)
                rv = self.resource_version
        elif rv_text == "":
            # "Most recent": the freshest state provable; the cache's own otherwise.
            await self._freshness.consistent()
            rv, with_state = 0, True
        else:
            rv = parse_resource_version(rv_text)
            if rv > 0:
                await self._freshness.wait_for_watch_start(rv)
            elif not self._freshness.ready.is_set():
                await self._freshness.wait_for(0)
            with_state = rv == 0
        exact = not opts.recursive
        prefix = key if exact else continue_token.list_prefix(key)
        if rv > 0 and rv < self.window.floor:
            return _gone_watch(rv, self.window.floor)
        # Build the initial events and register in one step (no await in between), so
        # the watcher gets every later event exactly once.
        if with_state:
            initial = self._initial_events(key, prefix, exact, opts)
            start_rv = self.resource_version
            return self._register(prefix, exact, opts, initial, start_rv, None, replay=False)
        return self._register(prefix, exact, opts, [], rv, None, replay=True)

    async def _watch_list(self, key: str, opts: ListOptions) -> QueueWatch:
        """A watch-list: the state not older than `opts.resource_version` as ADDED events,
        the closing BOOKMARK at the revision that state is consistent at, then the changes
        after it. Served from the cache, as upstream, whenever the cache can prove it is
        fresh enough; otherwise (older etcd cannot prove a consistent read, or the cache
        lags a revision the store has reached) the state comes from one store list,
        filtered by the key function as any delegated read, and the live events from the
        cache after that list's revision."""
        exact = not opts.recursive
        prefix = key if exact else continue_token.list_prefix(key)
        rv_text = opts.resource_version
        from_cache = True
        if rv_text == "":
            from_cache = await self._freshness.consistent()
        else:
            rv = parse_resource_version(rv_text)
            if rv == 0:
                await self._freshness.wait_for(0)
            else:
                try:
                    await self._freshness.wait_for(rv, self.unproven_wait)
                except TooLargeResourceVersionError:
                    if rv > await self._freshness.store_revision():
                        await self._freshness.wait_for(rv)  # from the future: 504 after the wait
                    from_cache = self.resource_version >= rv and self._freshness.ready.is_set()
        if from_cache:
            initial = self._initial_events(key, prefix, exact, opts)
            state_rv = self.resource_version
            return self._register(prefix, exact, opts, initial, state_rv, state_rv, replay=False)
        listed = self._as_cached(
            key,
            opts,
            await self.store.get_list(
                key,
                ListOptions(
                    resource_version=rv_text,
                    resource_version_match=ResourceVersionMatch.NOT_OLDER_THAN
                    if rv_text
                    else ResourceVersionMatch.UNSET,
                    recursive=opts.recursive,
                    predicate=opts.predicate,
                ),
            ),
        )
        state_rv = listed.resource_version
        if state_rv < self.window.floor:
            # The cache re-listed past the store's list meanwhile: its events between the
            # two are gone, so the client lists again (rare: a re-list during this call).
            return _gone_watch(state_rv, self.window.floor)
        initial = [WatchEvent(EventType.ADDED, o) for o in listed.items]
        return self._register(prefix, exact, opts, initial, state_rv, state_rv, replay=True)

    def _initial_events(
        self, key: str, prefix: str, exact: bool, opts: ListOptions
    ) -> list[WatchEvent]:
        """The cache's current state under `prefix` (or at `key`) as ADDED events."""
        selector = compile_predicate(opts.predicate)
        if exact:
            got = self.index.get(key)
            found = [got] if got is not None and (selector is None or got.matches(selector)) else []
        else:
            found, _last, _more = self.index.select(prefix, selector=selector)
        return [CachedWatchEvent(EventType.ADDED, o) for o in found]

    def _register(
        self,
        prefix: str,
        exact: bool,
        opts: ListOptions,
        initial: list[WatchEvent],
        start_rv: int,
        initial_end: int | None,
        *,
        replay: bool,
    ) -> QueueWatch:
        """Queue `initial` (and the watch-list's closing bookmark at `initial_end`), replay
        the window after `start_rv` if asked, and register the watcher for what follows.
        Called with no await since the state was read, so no event is missed or repeated."""
        closing = initial_end is not None and opts.allow_watch_bookmarks
        queue = QueueWatch(self.watcher_capacity + len(initial) + (1 if closing else 0))
        # `progress_notify` asks for bookmarks too, as it does of the store.
        bookmarks = opts.allow_watch_bookmarks or opts.progress_notify
        watcher = CacheWatcher(queue, prefix, exact, opts.predicate, bookmarks, start_rv)
        for ev in initial:
            queue.send(ev)
        if closing:
            assert initial_end is not None
            queue.send(initial_events_end(initial_end))
        if replay:
            for cev in self.window.since(start_rv):
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


def _gone_watch(rv: int, floor: int) -> QueueWatch:
    """A watch that only says `rv` is older than the event window (410)."""
    w = QueueWatch(1)
    w.finish(error_event(GoneError(f"too old resource version: {rv} ({floor})").to_status()))
    return w


if TYPE_CHECKING:
    # mypy proves the protocol is implemented (Go's `var _ storage.Interface = ...`).

    _: Storage = Cacher.__new__(Cacher)
