"""`KVStorage`: Kubernetes storage semantics over any etcd-shaped `KV`.

This is the counterpart of the Kubernetes etcd3 store: creates are `create_revision ==
0` transactions, updates compare-and-swap on `mod_revision` and retry on the fresh value
the failed transaction returned, lists read every page at one revision, and watches
start from a revision and never skip or repeat one. Values pass through the codec and
then the transformer on the way in, and the reverse on the way out, with the storage
key as authenticated data on every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter

from ..backends.kv import KV, CompactedError, KeyValue, KVEvent, KVEventType, KVWatch, prefix_end
from ..codec import Codec, JSONCodec, resource_version_of
from ..frames import unframe
from ..storage import continue_token
from ..storage.errors import (
    CONTINUE_TOO_OLD,
    LIST_TOO_OLD,
    AlreadyExistsError,
    ConflictError,
    GoneError,
    InternalError,
    InvalidError,
    StorageError,
    TooLargeResourceVersionError,
    not_found,
)
from ..storage.events import EventType, WatchEvent, bookmark, error_event, initial_events_end
from ..storage.interface import Object, UpdateFunc, UpdateResult, ValidateDeletion
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
from ..transformers import IDENTITY, Transformer

log = logging.getLogger(__name__)

# Kubernetes grows the page it asks etcd for when a selector filters items out, up to this.
MAX_PAGE = 10_000


def _strip_rv(obj: Object) -> Object:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "resourceVersion" in meta:
        return {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return obj


def _strip_self_link(obj: Object) -> Object:
    """`obj` without `metadata.selfLink`: Kubernetes stopped storing and serving it in
    1.20, and a stored one would be a stale URL the next reader cannot trust."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "selfLink" in meta:
        return {**obj, "metadata": {k: v for k, v in meta.items() if k != "selfLink"}}
    return obj


def _split_update(result: UpdateResult) -> tuple[Object, int | None]:
    """An update function's result as (object, ttl): it may return `(obj, ttl)`."""
    if isinstance(result, tuple):
        if len(result) != 2:
            raise InvalidError("an update function returns an object or (object, ttl)")
        obj, ttl = result
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0):
            raise InvalidError("the ttl an update function returns must be a positive int")
        return obj, ttl
    return result, None


def _body(data: bytes) -> bytes:
    """The codec bytes inside a value read back, without the storage-key frame a framing
    transformer adds on the way out (frames never reach the KV)."""
    split = unframe(data) if data[:1] == b"\x7f" else None
    return split[1] if split is not None else data


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class KVStorage:
    """The `Storage` protocol over a `KV`."""

    def __init__(
        self,
        kv: KV,
        *,
        codec: Codec | None = None,
        transformer: Transformer | None = None,
        watch_capacity: int = DEFAULT_CAPACITY,
        owns_kv: bool = True,
        skip_corrupt: bool = False,
        resource_prefix: str | None = None,
    ) -> None:
        self.kv = kv
        # The keys this store may touch (None: any clean absolute key, for a store that
        # serves several resources, such as tests'). A storage built for one resource
        # must not reach another's keys through a key its caller got wrong.
        self.resource_prefix = resource_prefix.rstrip("/") if resource_prefix else None
        self.codec: Codec = codec or JSONCodec()
        self.transformer: Transformer = transformer or IDENTITY
        self.watch_capacity = watch_capacity
        self._owns_kv = owns_kv
        # For a cache's reflector: a value that cannot be decoded (corrupt, planted, or
        # encrypted with an unknown key) is left out of lists and its watch event becomes
        # the object's disappearance, instead of failing the list or ending the watch,
        # which would stall one shared cache for every tenant. Direct callers keep the
        # strict behaviour: an error they can see.
        self.skip_corrupt = skip_corrupt
        self._watch_tasks: set[asyncio.Task[None]] = set()

    def _check_key(self, key: str) -> str:
        return check_key(key, self.resource_prefix)

    # -- encoding -----------------------------------------------------------------
    def _encode(self, key: str, obj: Object) -> tuple[bytes, bytes]:
        """(plain codec bytes, transformed bytes to store)."""
        plain = self.codec.encode(obj)
        return plain, self.transformer.to_storage(plain, key)

    def _decode(self, kv: KeyValue, resource_version: int | None = None) -> tuple[Object, bool]:
        obj, stale, _data = self._decode_data(kv, resource_version)
        return obj, stale

    def _decode_data(
        self, kv: KeyValue, resource_version: int | None = None
    ) -> tuple[Object, bool, bytes]:
        """(object, stale, the transformer's output): a value that cannot be transformed
        or decoded is an `InternalError` naming its key, as upstream's, never a raw
        exception (the detail goes to the log: it may describe a key or cipher)."""
        try:
            data, stale = self.transformer.from_storage(kv.value, kv.key)
            rv = kv.mod_revision if resource_version is None else resource_version
            return self.codec.decode(data, rv), stale, data
        except Exception as exc:
            raise _unreadable(kv.key, exc) from None

    @staticmethod
    def _check_object(obj: Object) -> None:
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            raise InvalidError("object must be a JSON object with metadata")

    # -- writes -------------------------------------------------------------------
    async def create(self, key: str, obj: Object, *, ttl: int | None = None) -> Object:
        self._check_key(key)
        self._check_object(obj)
        if obj["metadata"].get("resourceVersion"):
            raise InvalidError(
                "resourceVersion should not be set on objects to be created", key=key
            )
        if ttl is not None and ttl <= 0:
            raise InvalidError("ttl must be positive", key=key)
        obj = _strip_self_link(obj)
        plain, stored = self._encode(key, obj)
        res = await self.kv.create(key, stored, ttl=ttl)
        if not res.succeeded:
            raise AlreadyExistsError(f'key "{key}" already exists', key=key)
        return self.codec.decode(plain, res.revision)

    async def guaranteed_update(
        self,
        key: str,
        update_fn: UpdateFunc,
        *,
        ignore_not_found: bool = False,
        preconditions: Preconditions | None = None,
        suggestion: Object | None = None,
    ) -> Object:
        self._check_key(key)
        current: KeyValue | None
        obj: Object
        stale = False
        data = b""
        # A suggestion (the cacher's copy) saves the first read; it may be out of date,
        # so any failure that could be caused by staleness re-reads before giving up.
        is_current = suggestion is None
        if suggestion is not None and resource_version_of(suggestion) > 0:
            obj = _deep_copy(suggestion)
            current_rev = resource_version_of(suggestion)
            current = KeyValue(key, b"", 0, current_rev)
        else:
            is_current = True
            current, _ = await self.kv.get(key)
        while True:
            if current is None:
                if not ignore_not_found:
                    raise not_found(key)
                obj, stale = {}, False
            elif is_current or current.value:
                obj, stale, data = self._decode_data(current)
            try:
                if preconditions is not None and current is not None:
                    preconditions.check(key, obj)
                result = await _maybe_await(
                    update_fn(_deep_copy(obj) if current is not None else {})
                )
            except Exception:
                if not is_current:
                    current, _ = await self.kv.get(key)
                    is_current = True
                    continue
                raise
            new, ttl = _split_update(result)
            self._check_object(new)
            new = _strip_self_link(new)
            plain, stored = self._encode(key, new)
            if current is not None and not stale and _strip_rv(new) == _strip_rv(obj):
                if not is_current:
                    current, _ = await self.kv.get(key)
                    is_current = True
                    continue
                # Unchanged as an object; skip the write only if the stored bytes are
                # what a write would store (as upstream compares encoded data), so a
                # non-canonical or outdated encoding is rewritten by the next update.
                if _body(data) == plain:
                    return obj
            if current is None:
                res = await self.kv.create(key, stored, ttl=ttl)
            else:
                res = await self.kv.update(
                    key, stored, expected_mod_revision=current.mod_revision, ttl=ttl
                )
            if res.succeeded:
                return self.codec.decode(plain, res.revision)
            current, is_current = res.current, True

    async def delete(
        self,
        key: str,
        *,
        preconditions: Preconditions | None = None,
        validate: ValidateDeletion | None = None,
        ignore_store_read_error: bool = False,
    ) -> Object:
        self._check_key(key)
        current, _ = await self.kv.get(key)
        if ignore_store_read_error:
            return await self._delete_unreadable(key, current)
        while True:
            if current is None:
                raise not_found(key)
            obj, _stale = self._decode(current)
            if preconditions is not None:
                preconditions.check(key, obj)
            if validate is not None:
                await _maybe_await(validate(_deep_copy(obj)))
            res = await self.kv.delete(key, expected_mod_revision=current.mod_revision)
            if res.succeeded:
                obj["metadata"]["resourceVersion"] = str(res.revision)
                return obj
            current = res.current

    async def _delete_unreadable(self, key: str, current: KeyValue | None) -> Object:
        """Upstream's unsafe delete: remove a value that cannot be decoded, at the
        revision it was read at. Refused for a value that can be read, so the flag never
        bypasses preconditions or validation for an ordinary object."""
        while True:
            if current is None:
                raise not_found(key)
            try:
                self._decode(current)
            except InternalError:
                pass
            else:
                raise ConflictError(
                    "the object can be read: delete it without "
                    "ignoreStoreReadErrorWithClusterBreakingPotential",
                    key=key,
                )
            res = await self.kv.delete(key, expected_mod_revision=current.mod_revision)
            if res.succeeded:
                log.warning("deleted the unreadable value under %s without reading it", key)
                return {"metadata": {"resourceVersion": str(res.revision)}}
            current = res.current

    # -- reads --------------------------------------------------------------------
    async def get(
        self, key: str, *, resource_version: str = "", ignore_not_found: bool = False
    ) -> Object | None:
        self._check_key(key)
        minimum = parse_resource_version(resource_version)
        kv, revision = await self.kv.get(key)
        if minimum > revision:
            raise _too_large(minimum, revision)
        if kv is None:
            if ignore_not_found:
                return None
            raise not_found(key)
        return self._decode(kv)[0]

    async def get_list(self, key: str, opts: ListOptions) -> ObjectList:
        self._check_key(key)
        rv = parse_resource_version(opts.resource_version)
        match = opts.resource_version_match
        pred = opts.predicate
        if opts.recursive:
            prefix = continue_token.list_prefix(key)
            start, end = prefix, prefix_end(prefix)
        else:
            prefix = key
            start, end = key, key + "\x00"

        with_rev = 0
        continuing = False
        if opts.continue_:
            if not opts.recursive:
                raise InvalidError("continue is only supported for recursive lists", key=key)
            start, with_rev = continue_token.decode(opts.continue_, prefix)
            if with_rev == continue_token.INCONSISTENT_RV:
                # Upstream's inconsistent continuation: the current state from `start`.
                with_rev = 0
            else:
                continuing = True
        elif rv > 0 and (
            match == ResourceVersionMatch.EXACT
            or (match == ResourceVersionMatch.UNSET and opts.limit > 0)
        ):
            # Exact, or the legacy "paginated list at N": read at exactly N.
            with_rev = rv
            current = await self.kv.current_revision()
            if rv > current:
                raise _too_large(rv, current)

        limit = opts.limit
        page = limit if limit > 0 else 0
        if page and not pred.empty:
            page = max(page, 1)
        items: list[Object] = []
        keys: list[str] = []
        last_key = ""
        remaining: int | None = None
        more = False
        first = True
        while True:
            try:
                res = await self.kv.range(start, end, revision=with_rev, limit=page)
            except CompactedError as exc:
                if continuing:
                    # As upstream: hand out an inconsistent token (rv -1) resuming at the
                    # same key, so the client may finish the list at the current state.
                    raise GoneError(
                        CONTINUE_TOO_OLD,
                        resource_version=exc.requested,
                        continue_=continue_token.encode(
                            start, prefix, continue_token.INCONSISTENT_RV
                        ),
                    ) from None
                raise GoneError(LIST_TOO_OLD, resource_version=exc.requested) from None
            if first:
                first = False
                if with_rev == 0:
                    with_rev = res.revision
                    if rv > with_rev and match != ResourceVersionMatch.EXACT:
                        raise _too_large(rv, with_rev)
            consumed = 0
            more = res.more
            if not limit and pred.empty and not self.skip_corrupt:
                # The common unfiltered, unpaginated list: one comprehension, no per-item
                # bookkeeping (this loop is most of a list's CPU after the KV itself).
                decode = self.codec.decode
                try:
                    if self.transformer is IDENTITY:
                        items += [decode(kv.value, kv.mod_revision) for kv in res.kvs]
                    else:
                        from_storage = self.transformer.from_storage
                        items += [
                            decode(from_storage(kv.value, kv.key)[0], kv.mod_revision)
                            for kv in res.kvs
                        ]
                except Exception:
                    # Find the value at fault, for an error naming its key.
                    for kv in res.kvs:
                        self._decode(kv)
                    raise
                keys += [kv.key for kv in res.kvs]
                consumed = len(res.kvs)
                if res.kvs:
                    last_key = res.kvs[-1].key
                kvs: list[KeyValue] = []
            else:
                kvs = res.kvs
            for kv in kvs:
                consumed += 1
                last_key = kv.key
                try:
                    obj, _ = self._decode(kv)
                except Exception as exc:
                    if not self.skip_corrupt:
                        raise
                    _report_corrupt(kv.key, exc)
                    continue
                if pred.matches(obj):
                    items.append(obj)
                    keys.append(kv.key)
                    if limit and len(items) >= limit:
                        more = res.more or consumed < len(res.kvs)
                        break
            remaining_in_range = res.count - consumed
            if (limit and len(items) >= limit) or not res.more or not res.kvs:
                if pred.empty and more:
                    remaining = remaining_in_range
                break
            # Filtered out too much: fetch the next page from just after the last key,
            # at the same revision, growing the page as Kubernetes does.
            start = last_key + "\x00"
            if page:
                page = min(page * 2, MAX_PAGE)
        token = ""
        if more and limit and opts.recursive:
            token = continue_token.encode(last_key + "\x00", prefix, with_rev)
        return ObjectList(
            items=items,
            resource_version=with_rev,
            continue_=token,
            remaining_item_count=remaining,
            keys=keys,
        )

    async def count(self, key: str) -> int:
        self._check_key(key)
        prefix = continue_token.list_prefix(key)
        return await self.kv.count(prefix, prefix_end(prefix))

    async def stats(self, key: str) -> Stats:
        """Counted from the values themselves: the KV contract has no size statistics,
        and a store's stats must be exact (upstream's etcd3 store counts keys as well)."""
        self._check_key(key)
        prefix = continue_token.list_prefix(key)
        start, end = prefix, prefix_end(prefix)
        count = size = 0
        res = await self.kv.range(start, end, limit=MAX_PAGE)
        while True:
            count += len(res.kvs)
            size += sum(len(kv.value) for kv in res.kvs)
            if not res.more or not res.kvs:
                break
            res = await self.kv.range(
                res.kvs[-1].key + "\x00", end, revision=res.revision, limit=MAX_PAGE
            )
        return Stats(count, size // count if count else 0)

    async def current_resource_version(self) -> int:
        return await self.kv.current_revision()

    @property
    def open_watches(self) -> int:
        """KV watches this store holds open (one task each) that have not ended."""
        return sum(1 for t in self._watch_tasks if not t.done())

    async def request_watch_progress(self) -> bool:
        """Bookmarks now on every watch that allows them (Kubernetes' RequestWatchProgress);
        the cacher's consistent reads rely on it. False when the backend cannot promise
        a bookmark that never runs ahead of an event (see `KV.request_progress`)."""
        return await self.kv.request_progress()

    async def ready(self) -> bool:
        return await self.kv.ready()

    async def close(self) -> None:
        for task in list(self._watch_tasks):
            task.cancel()
        for task in list(self._watch_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._owns_kv:
            await self.kv.close()

    async def __aenter__(self) -> KVStorage:
        return self

    async def __aexit__(self, *exc: object) -> None:
        # `close()`: ends the store's watches, and closes the KV only if the store owns it.
        await self.close()

    # -- watch --------------------------------------------------------------------
    async def watch(self, key: str, opts: ListOptions) -> QueueWatch:
        self._check_key(key)
        rv = parse_resource_version(opts.resource_version)
        if opts.recursive:
            prefix = continue_token.list_prefix(key)
            start, end = prefix, prefix_end(prefix)
        else:
            start, end = key, key + "\x00"
        watch = QueueWatch(self.watch_capacity)
        initial: list[KeyValue] = []
        send = opts.send_initial_events
        # The revision the initial state was read at, for the watch-list's closing bookmark.
        initial_end: int | None = None
        if send or (send is None and rv == 0):
            # The legacy "" and "0", and a watch-list at any `N`: the current state (not
            # older than `N`) as ADDED events, then every change after it.
            res = await self.kv.range(start, end)
            initial = res.kvs
            while res.more:
                res = await self.kv.range(initial[-1].key + "\x00", end, revision=res.revision)
                initial.extend(res.kvs)
            if rv > res.revision:
                raise _too_large(rv, res.revision)
            rv = res.revision
            if send and opts.allow_watch_bookmarks:
                initial_end = rv
        elif send is False and rv == 0:
            # An explicit "no initial events" at "" or "0": the changes after now.
            rv = await self.kv.current_revision()
        elif (gone := await self._compacted(start, end, rv)) is not None:
            watch.finish(error_event(gone.to_status()))
            return watch
        kvwatch = self.kv.watch(
            start,
            end,
            start_revision=rv + 1,
            progress_notify=_bookmarks(opts),
        )
        task = asyncio.get_running_loop().create_task(
            self._run_watch(watch, kvwatch, initial, opts, initial_end),
            name=f"kvstorage-watch {key}",
        )
        self._watch_tasks.add(task)
        task.add_done_callback(self._watch_tasks.discard)

        def cancel() -> None:
            task.cancel()

        watch.set_on_stop(cancel)
        return watch

    async def _compacted(self, start: str, end: str, rv: int) -> CompactedError | None:
        """The error if revision `rv` itself is compacted, so a watch from it is 410.

        A backend's watch only needs the revisions after `rv`, so etcd accepts a watch
        from the revision just below its compaction point, then sends the first event
        without the previous value it needs (upstream then fails with an InternalError),
        while the SQLite log still has it. Checking `rv` as a read at it would be checked
        makes a watch from a compacted revision 410 on every backend alike (upstream's
        `RunTestWatchFromZero`). A revision not reached yet is no error: the watch waits.
        """
        try:
            await self.kv.range(start, end, revision=rv, limit=1)
        except CompactedError as exc:
            return exc
        except TooLargeResourceVersionError:
            pass
        return None

    async def _run_watch(
        self,
        watch: QueueWatch,
        kvwatch: KVWatch,
        initial: list[KeyValue],
        opts: ListOptions,
        initial_end: int | None = None,
    ) -> None:
        pred = opts.predicate
        try:
            for kv in initial:
                try:
                    obj, _ = self._decode(kv)
                except Exception as exc:
                    if not self.skip_corrupt:
                        raise
                    _report_corrupt(kv.key, exc)
                    continue
                if pred.matches(obj) and not watch.send(WatchEvent(EventType.ADDED, obj, kv.key)):
                    return
            if initial_end is not None and not watch.send(initial_events_end(initial_end)):
                return
            async for ev in kvwatch:
                try:
                    out = self._translate(ev, opts)
                except GoneError:
                    raise
                except Exception as exc:
                    if not self.skip_corrupt:
                        raise
                    out = self._corrupt_event(ev, opts, exc)
                if out is not None and not watch.send(out):
                    return
            watch.finish()
        except asyncio.CancelledError:
            raise
        except StorageError as exc:
            watch.finish(error_event(exc.to_status()))
        except Exception as exc:  # a decode or transformer failure ends the watch, closed
            watch.finish(
                error_event(InternalError(f"watch failed: {type(exc).__name__}").to_status())
            )
        finally:
            with contextlib.suppress(Exception):
                await kvwatch.close()
            watch.finish()

    def _corrupt_event(self, ev: KVEvent, opts: ListOptions, exc: Exception) -> WatchEvent | None:
        """The event for a value that cannot be decoded: the last good state, if any,
        disappears; otherwise a bookmark, so the watcher's revision still moves on."""
        key = ev.kv.key if ev.kv is not None else ev.prev_kv.key if ev.prev_kv else ""
        _report_corrupt(key, exc)
        if ev.type is KVEventType.PUT and ev.prev_kv is not None:
            try:
                prev = self._decode(ev.prev_kv, ev.revision)[0]
            except Exception:
                prev = None
            if prev is not None and opts.predicate.matches(prev):
                return WatchEvent(EventType.DELETED, prev, key)
        return bookmark(ev.revision) if _bookmarks(opts) else None

    def _translate(self, ev: KVEvent, opts: ListOptions) -> WatchEvent | None:
        pred = opts.predicate
        if ev.type is KVEventType.PROGRESS:
            return bookmark(ev.revision) if _bookmarks(opts) else None
        assert ev.kv is not None
        key = ev.kv.key
        created = ev.type is KVEventType.PUT and ev.kv.create_revision == ev.kv.mod_revision
        if ev.prev_kv is None and not created:
            # etcd reads the previous value when it sends the event; if that revision was
            # compacted meanwhile the event comes without it, and a DELETE could not be
            # delivered nor a MODIFIED told from an ADDED. As Kubernetes does: end the
            # watch with 410, and the client re-lists.
            raise GoneError(
                f"watch event at revision {ev.revision} lost its previous state to compaction",
                resource_version=ev.revision,
            )
        prev = self._decode(ev.prev_kv, ev.revision)[0] if ev.prev_kv is not None else None
        if ev.type is KVEventType.DELETE:
            if prev is not None and pred.matches(prev):
                return WatchEvent(EventType.DELETED, prev, key)
            return None
        cur = self._decode(ev.kv)[0]
        cur_ok = pred.matches(cur)
        if prev is None:
            return WatchEvent(EventType.ADDED, cur, key) if cur_ok else None
        prev_ok = pred.matches(prev)
        if cur_ok and prev_ok:
            return WatchEvent(EventType.MODIFIED, cur, key)
        if cur_ok:
            return WatchEvent(EventType.ADDED, cur, key)
        if prev_ok:
            return WatchEvent(EventType.DELETED, prev, key)
        return None


CORRUPT_VALUES = Counter(
    "tenantstore_storage_corrupt_values_total",
    "Stored values that could not be decoded and were left out of a cache",
)


def _report_corrupt(key: str, exc: Exception) -> None:
    CORRUPT_VALUES.inc()
    log.error("stored value under %s cannot be decoded, left out: %s", key, exc)


def _unreadable(key: str, exc: Exception) -> InternalError:
    if isinstance(exc, InternalError) and exc.key == key:
        return exc
    log.error("stored value under %s cannot be transformed or decoded: %r", key, exc)
    return InternalError(f'unable to transform or decode the value of key "{key}"', key=key)


def _too_large(requested: int, current: int) -> TooLargeResourceVersionError:
    return TooLargeResourceVersionError(
        f"Too large resource version: {requested}, current: {current}", resource_version=requested
    )


def _deep_copy(obj: Object) -> Object:
    copied: Object = orjson.loads(orjson.dumps(obj))
    return copied


if TYPE_CHECKING:
    # mypy proves the protocol is implemented (Go's `var _ storage.Interface = ...`).
    from ..storage.interface import Storage

    _: Storage = KVStorage.__new__(KVStorage)


def _bookmarks(opts: ListOptions) -> bool:
    """Whether a watch gets BOOKMARK events: asking for progress notifications is asking
    for bookmarks, as upstream's etcd3 watcher turns them into (upstream's
    `RunOptionalTestProgressNotify`), whether or not `allow_watch_bookmarks` is set."""
    return opts.allow_watch_bookmarks or opts.progress_notify
