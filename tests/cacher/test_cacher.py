"""Cacher-specific behaviour, on real backends (SQLite files and etcd)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tenantstore.backends.kv import CompactedError
from tenantstore.cacher import Cacher, ScanningWatcherTable
from tenantstore.storage import (
    EventType,
    GoneError,
    ListOptions,
    TooLargeResourceVersionError,
    UnavailableError,
    WatchEvent,
)
from tenantstore.store import KVStorage
from tests.breakable import BreakableKV


def pod(name: str, ns: str = "ns", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "labels": labels},
        "spec": {"n": 0},
    }


async def next_event(w: Any, timeout: float = 10.0) -> WatchEvent:
    ev: WatchEvent = await asyncio.wait_for(w.__anext__(), timeout)
    return ev


async def drain(w: Any, n: int, *, skip_bookmarks: bool = True) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    while len(out) < n:
        ev = await next_event(w)
        if skip_bookmarks and ev.type is EventType.BOOKMARK:
            continue
        out.append(ev)
    return out


@pytest.fixture
async def kv_store(kv: Any) -> AsyncIterator[KVStorage]:
    store = KVStorage(kv, owns_kv=False)
    yield store
    await store.close()


async def started(kv_store: Any, prefix: str, **kw: Any) -> Cacher:
    cacher = Cacher(kv_store, prefix, **kw)
    await cacher.start()
    await asyncio.wait_for(cacher.wait_ready(), 10)
    return cacher


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


async def test_watch_replays_from_inside_window_and_410s_outside(
    kv_store: KVStorage, key_prefix: str
) -> None:
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix, window_max_events=5)
    try:
        created = [await kv_store.create(f"{prefix}/ns/p{i}", pod(f"p{i}")) for i in range(10)]
        await cacher.get(f"{prefix}/ns/p9")  # consistent read: cache has all ten events
        # Inside the window: the last three creates are replayed, in order.
        async with await cacher.watch(
            prefix, ListOptions(resource_version=str(rv(created[6])), recursive=True)
        ) as w:
            got = await drain(w, 3)
        assert [e.object["metadata"]["name"] for e in got] == ["p7", "p8", "p9"]
        assert all(e.type is EventType.ADDED for e in got)
        # Outside: the window kept only five events, so the first RVs are gone.
        async with await cacher.watch(
            prefix, ListOptions(resource_version=str(rv(created[1])), recursive=True)
        ) as w:
            ev = await next_event(w)
        assert ev.type is EventType.ERROR
        assert ev.object["code"] == 410
    finally:
        await cacher.stop()


async def test_consistent_read_sees_write_made_directly_on_backend(
    kv_store: KVStorage, key_prefix: str
) -> None:
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix)
    try:
        for i in range(5):
            made = await kv_store.create(f"{prefix}/ns/d{i}", pod(f"d{i}"))
            got = await cacher.get(f"{prefix}/ns/d{i}", resource_version="")
            assert (
                got is not None
                and got["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
            )
            listed = await cacher.get_list(prefix, ListOptions(recursive=True))
            assert len(listed.items) == i + 1
            assert listed.resource_version >= rv(made)
    finally:
        await cacher.stop()


async def test_too_large_resource_version(kv_store: KVStorage, key_prefix: str) -> None:
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix, wait_timeout=0.3)
    try:
        made = await kv_store.create(f"{prefix}/ns/a", pod("a"))
        future = str(rv(made) + 1000)
        with pytest.raises(TooLargeResourceVersionError) as err:
            await cacher.get(f"{prefix}/ns/a", resource_version=future)
        assert err.value.code == 504 and err.value.retry_after_seconds
        with pytest.raises(TooLargeResourceVersionError):
            await cacher.get_list(prefix, ListOptions(resource_version=future, recursive=True))
        # A reachable RV is served.
        got = await cacher.get(f"{prefix}/ns/a", resource_version=str(rv(made)))
        assert got is not None
    finally:
        await cacher.stop()


async def test_slow_watcher_is_terminated_and_others_get_everything(
    kv_store: KVStorage, key_prefix: str
) -> None:
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix, watcher_capacity=8, bookmark_interval=0)
    try:
        slow = await cacher.watch(prefix, ListOptions(resource_version="0", recursive=True))
        fast = await cacher.watch(prefix, ListOptions(resource_version="0", recursive=True))
        n = 40
        received: list[WatchEvent] = []

        async def consume() -> None:
            while len(received) < n:
                received.append(await next_event(fast))

        consumer = asyncio.create_task(consume())

        async def caught_up(count: int) -> None:
            while len(received) < count and not consumer.done():
                await asyncio.sleep(0.001)

        for i in range(n):
            await kv_store.create(f"{prefix}/ns/s{i}", pod(f"s{i}"))
            # The fast watcher reads each event as it comes; the slow one never reads.
            await asyncio.wait_for(caught_up(i + 1), 20)
        await asyncio.wait_for(consumer, 20)
        assert [e.object["metadata"]["name"] for e in received] == [f"s{i}" for i in range(n)]
        # The slow one got at most its capacity, then an ERROR telling it to re-list.
        slow_events = [ev async for ev in slow]
        assert len(slow_events) <= 9
        assert slow_events[-1].type is EventType.ERROR
        assert slow_events[-1].object["code"] == 410
        assert len(cacher.watchers) == 1
        fast.stop()
        assert len(cacher.watchers) == 0
    finally:
        await cacher.stop()


@pytest.fixture
async def breakable(kv: Any) -> AsyncIterator[tuple[BreakableKV, KVStorage]]:
    bkv = BreakableKV(kv)
    store = KVStorage(bkv, owns_kv=False)  # type: ignore[arg-type]
    yield bkv, store
    await store.close()


async def test_reflector_rewatches_after_broken_stream_without_gap_or_duplicate(
    breakable: tuple[BreakableKV, KVStorage], key_prefix: str
) -> None:
    bkv, kv_store = breakable
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix, bookmark_interval=0)
    try:
        w = await cacher.watch(prefix, ListOptions(resource_version="0", recursive=True))
        await kv_store.create(f"{prefix}/ns/a", pod("a"))
        await kv_store.create(f"{prefix}/ns/b", pod("b"))
        first = await drain(w, 2)
        bkv.break_all(UnavailableError("backend went away"))
        await kv_store.create(f"{prefix}/ns/c", pod("c"))
        await kv_store.guaranteed_update(f"{prefix}/ns/a", lambda o: {**o, "spec": {"n": 1}})
        rest = await drain(w, 2)
        seen = [(e.type, e.object["metadata"]["name"]) for e in first + rest]
        assert seen == [
            (EventType.ADDED, "a"),
            (EventType.ADDED, "b"),
            (EventType.ADDED, "c"),
            (EventType.MODIFIED, "a"),
        ]
        rvs = [rv(e.object) for e in first + rest]
        assert rvs == sorted(rvs) and len(set(rvs)) == 4
        w.stop()
    finally:
        await cacher.stop()


async def test_reflector_relists_after_410_and_ends_watchers_with_410(
    breakable: tuple[BreakableKV, KVStorage], key_prefix: str
) -> None:
    """After a 410 the cache re-lists; history it missed cannot be replayed, so every
    watcher ends with 410 (no gap delivered) and a re-list shows the backend's state."""
    bkv, kv_store = breakable
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix, bookmark_interval=0)
    try:
        await kv_store.create(f"{prefix}/ns/a", pod("a"))
        await kv_store.create(f"{prefix}/ns/b", pod("b"))
        await cacher.get(f"{prefix}/ns/b")
        w = await cacher.watch(prefix, ListOptions(resource_version="0", recursive=True))
        assert len(await drain(w, 2)) == 2
        # The reflector stops seeing events, changes happen, then its stream 410s.
        bkv.pause()
        await kv_store.guaranteed_update(f"{prefix}/ns/a", lambda o: {**o, "spec": {"n": 7}})
        await kv_store.delete(f"{prefix}/ns/b")
        last = await kv_store.create(f"{prefix}/ns/c", pod("c"))
        bkv.break_all(CompactedError(1, 2))
        rest = [ev async for ev in w]
        assert [e.type for e in rest] == [EventType.ERROR]
        assert rest[0].object["code"] == 410
        # The cache equals a fresh list from the store, and a new watch from the
        # re-list's revision gets what follows.
        await cacher.get(f"{prefix}/ns/c", resource_version=str(rv(last)))
        fresh = await kv_store.get_list(prefix, ListOptions(recursive=True))
        cached = await cacher.get_list(prefix, ListOptions(recursive=True))
        assert cached.items == fresh.items
        assert [o["metadata"]["name"] for o in cached.items] == ["a", "c"]
        w2 = await cacher.watch(
            prefix, ListOptions(resource_version=str(cached.resource_version), recursive=True)
        )
        await kv_store.create(f"{prefix}/ns/d", pod("d"))
        got = await drain(w2, 1)
        assert [(e.type, e.object["metadata"]["name"]) for e in got] == [(EventType.ADDED, "d")]
        w2.stop()
    finally:
        await cacher.stop()


async def test_pagination_is_consistent_while_writes_continue(
    kv_store: KVStorage, key_prefix: str
) -> None:
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix)
    try:
        names = [f"p{i:03d}" for i in range(35)]
        for n in names:
            await kv_store.create(f"{prefix}/ns/{n}", pod(n))
        page = await cacher.get_list(prefix, ListOptions(recursive=True, limit=10))
        list_rv = page.resource_version
        seen = [o["metadata"]["name"] for o in page.items]
        assert page.remaining_item_count == 25
        i = 0
        while page.continue_:
            # Churn between pages: none of it may show up in this list.
            await kv_store.delete(f"{prefix}/ns/{names[-1 - i]}")
            await kv_store.create(f"{prefix}/ns/zz{i}", pod(f"zz{i}"))
            await kv_store.guaranteed_update(
                f"{prefix}/ns/{names[i]}", lambda o: {**o, "spec": {"n": 99}}
            )
            await cacher.get(f"{prefix}/ns/zz{i}")  # the cache has moved on
            page = await cacher.get_list(
                prefix, ListOptions(recursive=True, limit=10, continue_=page.continue_)
            )
            assert page.resource_version == list_rv
            seen.extend(o["metadata"]["name"] for o in page.items)
            assert all(o["spec"]["n"] == 0 for o in page.items)
            i += 1
        assert seen == names
    finally:
        await cacher.stop()


async def test_dispatch_offers_events_only_to_watchers_of_the_key_scope(
    kv_store: KVStorage, key_prefix: str
) -> None:
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix, bookmark_interval=0)
    scanning = await started(
        kv_store, prefix, bookmark_interval=0, watcher_table=ScanningWatcherTable
    )
    try:
        watches = []
        for c in (cacher, scanning):
            for ns in ("a", "b", "c", "ab"):
                watches.append(await c.watch(f"{prefix}/{ns}", ListOptions(recursive=True)))
            watches.append(await c.watch(f"{prefix}/a/x", ListOptions(recursive=False)))
        # Both tables agree on who is interested; the indexed one only visits those.
        for key in (f"{prefix}/a/x", f"{prefix}/ab/y", f"{prefix}/b/z", f"{prefix}/zz/q"):
            ours = sorted(w.prefix for w in cacher.watchers.interested(key))
            theirs = sorted(w.prefix for w in scanning.watchers.interested(key))
            assert ours == theirs
        assert sorted(w.prefix for w in cacher.watchers.interested(f"{prefix}/a/x")) == [
            f"{prefix}/a/",
            f"{prefix}/a/x",
        ]
        await kv_store.create(f"{prefix}/ab/y", pod("y", "ab"))
        ev = await next_event(watches[3])
        assert ev.object["metadata"]["namespace"] == "ab"
        for w in watches:
            w.stop()
    finally:
        await cacher.stop()
        await scanning.stop()


async def test_predicate_watch_and_bookmarks(kv_store: KVStorage, key_prefix: str) -> None:
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix, bookmark_interval=0.2)
    try:
        from tenantstore.storage import Predicate

        opts = ListOptions(
            recursive=True, predicate=Predicate.parse("app=web"), allow_watch_bookmarks=True
        )
        w = await cacher.watch(prefix, opts)
        await kv_store.create(f"{prefix}/ns/a", pod("a", app="db"))
        await kv_store.guaranteed_update(
            f"{prefix}/ns/a",
            lambda o: {**o, "metadata": {**o["metadata"], "labels": {"app": "web"}}},
        )
        last = await kv_store.guaranteed_update(
            f"{prefix}/ns/a",
            lambda o: {**o, "metadata": {**o["metadata"], "labels": {"app": "db"}}},
        )
        got = await drain(w, 2)
        assert [e.type for e in got] == [EventType.ADDED, EventType.DELETED]
        assert rv(got[1].object) == rv(last)
        while True:
            ev = await next_event(w)
            if ev.type is EventType.BOOKMARK and rv(ev.object) >= rv(last):
                break
        w.stop()
    finally:
        await cacher.stop()


async def test_stop_ends_watchers(kv_store: KVStorage, key_prefix: str) -> None:
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix)
    w = await cacher.watch(prefix, ListOptions(recursive=True))
    await cacher.stop()
    assert [ev async for ev in w] == []


async def test_consistent_read_after_writes_elsewhere_asks_for_progress(
    kv_store: KVStorage, key_prefix: str
) -> None:
    """Writes to another resource move the backend revision past the cache's; a
    consistent read then asks the backend for a progress notification instead of
    waiting for the periodic one (which comes only every second here, later than the
    0.8 s this cacher may wait)."""
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix, wait_timeout=0.8)
    try:
        for i in range(3):
            await kv_store.create(f"{key_prefix}/other/ns/o{i}", pod(f"o{i}"))
            listed = await cacher.get_list(prefix, ListOptions(recursive=True))
            assert listed.items == []
            assert listed.resource_version >= await kv_store.current_resource_version()
    finally:
        await cacher.stop()


async def test_continue_after_snapshot_eviction_falls_back_to_backend_and_410s(
    kv_store: KVStorage, key_prefix: str, kv: Any
) -> None:
    from tenantstore.cacher.cacher import MAX_SNAPSHOTS

    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix)
    try:
        for i in range(4):
            await kv_store.create(f"{prefix}/ns/p{i}", pod(f"p{i}"))
        first = await cacher.get_list(prefix, ListOptions(recursive=True, limit=2))
        assert first.continue_
        # Later paginated lists at newer revisions push the first one's snapshot out.
        for i in range(MAX_SNAPSHOTS):
            await kv_store.create(f"{prefix}/ns/q{i}", pod(f"q{i}"))
            page = await cacher.get_list(prefix, ListOptions(recursive=True, limit=2))
            assert page.continue_ and page.resource_version > first.resource_version
        # Served by the store at the list's revision while it still has it...
        second = await cacher.get_list(
            prefix, ListOptions(recursive=True, limit=2, continue_=first.continue_)
        )
        assert [o["metadata"]["name"] for o in second.items] == ["p2", "p3"]
        assert second.resource_version == first.resource_version
        # ...and 410 once the backend has compacted it.
        await kv.compact(await kv.current_revision())
        with pytest.raises(GoneError) as err:
            await cacher.get_list(
                prefix, ListOptions(recursive=True, limit=2, continue_=first.continue_)
            )
        assert err.value.code == 410
    finally:
        await cacher.stop()


async def test_undecodable_value_is_left_out_and_does_not_stall_the_cache(
    kv: Any, key_prefix: str
) -> None:
    """A corrupt value under the prefix must not stop the reflector (one shared cache
    serves every tenant): the object disappears, everything else keeps flowing."""
    kv_store = KVStorage(kv, owns_kv=False, skip_corrupt=True)
    prefix = f"{key_prefix}/pods"
    await kv_store.create(f"{prefix}/ns/bad-at-start", pod("bad-at-start"))
    await kv.update(
        f"{prefix}/ns/bad-at-start",
        b"\x7fgarbage",
        expected_mod_revision=(await kv.get(f"{prefix}/ns/bad-at-start"))[0].mod_revision,
    )
    cacher = await started(kv_store, prefix)
    try:
        # The cache's own view (rv "0"): a consistent get may read through to the store,
        # which reports the corrupt value to its caller instead of hiding it.
        cached = await cacher.get(
            f"{prefix}/ns/bad-at-start", resource_version="0", ignore_not_found=True
        )
        assert cached is None
        w = await cacher.watch(prefix, ListOptions(recursive=True))
        made = await kv_store.create(f"{prefix}/ns/a", pod("a"))
        current, _ = await kv.get(f"{prefix}/ns/a")
        await kv.update(f"{prefix}/ns/a", b"{not json", expected_mod_revision=current.mod_revision)
        await kv_store.create(f"{prefix}/ns/b", pod("b"))
        got = await drain(w, 3)
        assert [(e.type, e.object["metadata"]["name"]) for e in got] == [
            (EventType.ADDED, "a"),
            (EventType.DELETED, "a"),
            (EventType.ADDED, "b"),
        ]
        assert rv(got[1].object) > rv(made)
        listed = await cacher.get_list(prefix, ListOptions(recursive=True, resource_version="0"))
        assert [o["metadata"]["name"] for o in listed.items] == ["b"]
        w.stop()
    finally:
        await cacher.stop()
        await kv_store.close()


async def test_watch_from_a_revision_the_cache_has_not_reached(
    breakable: tuple[BreakableKV, KVStorage], key_prefix: str
) -> None:
    """A client watches from the revision of a list the backend served; the cache lags.
    The watch starts at once and skips the events the client already has."""
    bkv, kv_store = breakable
    prefix = f"{key_prefix}/pods"
    cacher = await started(kv_store, prefix, bookmark_interval=0, wait_timeout=0.5)
    try:
        while not bkv.watches:  # the reflector opens its watch just after the first list
            await asyncio.sleep(0.01)
        bkv.pause()
        a = await kv_store.create(f"{prefix}/ns/a", pod("a"))
        await kv_store.create(f"{prefix}/ns/b", pod("b"))
        assert cacher.resource_version < rv(a)
        w = await cacher.watch(prefix, ListOptions(resource_version=str(rv(a)), recursive=True))
        with pytest.raises(TooLargeResourceVersionError):
            await cacher.watch(prefix, ListOptions(resource_version=str(rv(a) + 1000)))
        for bw in bkv.watches:
            bw.running.set()
        got = await drain(w, 1)
        assert [(e.type, e.object["metadata"]["name"]) for e in got] == [(EventType.ADDED, "b")]
        w.stop()
    finally:
        await cacher.stop()
