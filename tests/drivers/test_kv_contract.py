"""The `KV` contract (tenantstore.backends.kv), run against every backend.

The `kv` fixture gives a fresh SQLite file or a client of the session's shared etcd, so
every test works under its own `key_prefix` and only reasons about revisions relative
to the ones its own writes return.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tenantstore.backends.kv import (
    CompactedError,
    KVEvent,
    KVEventType,
    prefix_end,
)
from tenantstore.storage.errors import InvalidError

WAIT = 15.0  # upper bound for anything asynchronous; never a timing assertion


async def take(it: AsyncIterator[KVEvent], n: int, *, skip_progress: bool = True) -> list[KVEvent]:
    """The next `n` events (PROGRESS skipped), failing after WAIT seconds."""
    out: list[KVEvent] = []

    async def run() -> None:
        while len(out) < n:
            ev = await it.__anext__()
            if skip_progress and ev.type is KVEventType.PROGRESS:
                continue
            out.append(ev)

    await asyncio.wait_for(run(), WAIT)
    return out


async def no_more(it: AsyncIterator[KVEvent], wait: float = 0.7) -> None:
    """Assert that no key event arrives within `wait` seconds."""
    try:
        ev = await asyncio.wait_for(_next_key_event(it), wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected event {ev}")


async def _next_key_event(it: AsyncIterator[KVEvent]) -> KVEvent:
    while True:
        ev = await it.__anext__()
        if ev.type is not KVEventType.PROGRESS:
            return ev


async def test_create_get_and_create_conflict(kv: Any, key_prefix: str) -> None:
    key = f"{key_prefix}/pods/a"
    res = await kv.create(key, b"v1")
    assert res.succeeded
    got, rev = await kv.get(key)
    assert got is not None
    assert got.key == key and got.value == b"v1"
    assert got.create_revision == got.mod_revision == res.revision
    assert rev >= res.revision

    again = await kv.create(key, b"v2")
    assert not again.succeeded
    assert again.current is not None
    assert again.current.value == b"v1" and again.current.mod_revision == res.revision
    assert again.revision >= res.revision
    got2, _ = await kv.get(key)
    assert got2 is not None and got2.value == b"v1"

    missing, rev2 = await kv.get(f"{key_prefix}/pods/missing")
    assert missing is None
    assert rev2 >= res.revision


async def test_update_compare_and_swap(kv: Any, key_prefix: str) -> None:
    key = f"{key_prefix}/cm/x"
    c = await kv.create(key, b"one")
    ok = await kv.update(key, b"two", expected_mod_revision=c.revision)
    assert ok.succeeded
    assert ok.revision == c.revision + 1
    got, _ = await kv.get(key)
    assert got is not None
    assert got.value == b"two"
    assert got.mod_revision == ok.revision and got.create_revision == c.revision

    stale = await kv.update(key, b"three", expected_mod_revision=c.revision)
    assert not stale.succeeded
    assert stale.current is not None
    assert stale.current.value == b"two" and stale.current.mod_revision == ok.revision
    got, _ = await kv.get(key)
    assert got is not None and got.value == b"two"

    absent = await kv.update(f"{key_prefix}/cm/none", b"x", expected_mod_revision=c.revision)
    assert not absent.succeeded
    assert absent.current is None


async def test_delete_compare_and_swap(kv: Any, key_prefix: str) -> None:
    key = f"{key_prefix}/s/d"
    c = await kv.create(key, b"v")
    u = await kv.update(key, b"w", expected_mod_revision=c.revision)

    stale = await kv.delete(key, expected_mod_revision=c.revision)
    assert not stale.succeeded
    assert stale.current is not None and stale.current.mod_revision == u.revision
    assert (await kv.get(key))[0] is not None

    ok = await kv.delete(key, expected_mod_revision=u.revision)
    assert ok.succeeded
    assert ok.revision == u.revision + 1
    assert (await kv.get(key))[0] is None

    gone = await kv.delete(key, expected_mod_revision=0)
    assert not gone.succeeded
    assert gone.current is None

    # Unconditional delete, and re-creation gets a fresh create_revision.
    c2 = await kv.create(key, b"again")
    assert c2.succeeded
    got, _ = await kv.get(key)
    assert got is not None and got.create_revision == c2.revision > c.revision
    any_rev = await kv.delete(key, expected_mod_revision=0)
    assert any_rev.succeeded
    assert (await kv.get(key))[0] is None


async def test_range_limit_more_count(kv: Any, key_prefix: str) -> None:
    prefix = f"{key_prefix}/items/"
    names = [f"{prefix}{c}" for c in "edcba"]
    for name in names:
        assert (await kv.create(name, name.encode())).succeeded
    # A sibling whose name extends the prefix string but is outside the "/" prefix.
    await kv.create(f"{key_prefix}/itemsX", b"no")
    end = prefix_end(prefix)

    full = await kv.range(prefix, end)
    assert [x.key for x in full.kvs] == sorted(names)
    assert [x.value for x in full.kvs] == [n.encode() for n in sorted(names)]
    assert not full.more and full.count == 5

    page = await kv.range(prefix, end, limit=2)
    assert [x.key for x in page.kvs] == sorted(names)[:2]
    assert page.more and page.count == 5

    # Continue from after the last key, as a paginated list does.
    rest = await kv.range(page.kvs[-1].key + "\x00", end, limit=10)
    assert [x.key for x in rest.kvs] == sorted(names)[2:]
    assert not rest.more and rest.count == 3

    exact = await kv.range(prefix, end, limit=5)
    assert len(exact.kvs) == 5 and not exact.more

    # Empty range end: just the start key.
    single = await kv.range(names[0], "")
    assert [x.key for x in single.kvs] == [names[0]]
    assert single.count == 1

    assert await kv.count(prefix, end) == 5
    await kv.delete(names[0], expected_mod_revision=0)
    assert await kv.count(prefix, end) == 4
    assert (await kv.range(prefix, end)).count == 4


async def test_range_at_old_revision(kv: Any, key_prefix: str) -> None:
    prefix = f"{key_prefix}/hist/"
    a = await kv.create(f"{prefix}a", b"a1")
    b = await kv.create(f"{prefix}b", b"b1")
    ua = await kv.update(f"{prefix}a", b"a2", expected_mod_revision=a.revision)
    db = await kv.delete(f"{prefix}b", expected_mod_revision=0)
    end = prefix_end(prefix)

    at_a = await kv.range(prefix, end, revision=a.revision)
    assert [(x.key, x.value) for x in at_a.kvs] == [(f"{prefix}a", b"a1")]
    assert at_a.revision >= db.revision

    at_b = await kv.range(prefix, end, revision=b.revision)
    assert [(x.key, x.value, x.mod_revision) for x in at_b.kvs] == [
        (f"{prefix}a", b"a1", a.revision),
        (f"{prefix}b", b"b1", b.revision),
    ]
    at_ua = await kv.range(prefix, end, revision=ua.revision)
    assert [x.value for x in at_ua.kvs] == [b"a2", b"b1"]
    now = await kv.range(prefix, end)
    assert [x.value for x in now.kvs] == [b"a2"]
    assert now.count == 1


async def test_revisions_increase_by_one_per_write(kv: Any, key_prefix: str) -> None:
    start = await kv.current_revision()
    revs = []
    k = f"{key_prefix}/r/k"
    c = await kv.create(k, b"0")
    revs.append(c.revision)
    last = c.revision
    for i in range(5):
        u = await kv.update(k, str(i).encode(), expected_mod_revision=last)
        assert u.succeeded
        revs.append(u.revision)
        last = u.revision
    d = await kv.delete(k, expected_mod_revision=last)
    revs.append(d.revision)
    # Failed writes do not consume a revision.
    failed = await kv.update(k, b"x", expected_mod_revision=last)
    assert not failed.succeeded
    assert revs[0] > start
    assert revs == list(range(revs[0], revs[0] + 7))
    assert await kv.current_revision() >= revs[-1]


async def test_compaction(kv: Any, key_prefix: str) -> None:
    k = f"{key_prefix}/comp/k"
    c = await kv.create(k, b"1")
    u1 = await kv.update(k, b"2", expected_mod_revision=c.revision)
    u2 = await kv.update(k, b"3", expected_mod_revision=u1.revision)
    end = prefix_end(f"{key_prefix}/comp/")
    await kv.compact(u1.revision)

    with pytest.raises(CompactedError) as info:
        await kv.range(k, "", revision=c.revision)
    assert info.value.requested == c.revision
    assert info.value.compact_revision >= u1.revision

    # The compaction revision itself stays readable; so does everything after it.
    at = await kv.range(k, "", revision=u1.revision)
    assert [x.value for x in at.kvs] == [b"2"]
    assert [x.value for x in (await kv.range(k, "")).kvs] == [b"3"]

    # Watching from a compacted revision fails; from the compact revision works.
    w = kv.watch(f"{key_prefix}/comp/", end, start_revision=c.revision)
    try:
        with pytest.raises(CompactedError):
            await take(w.__aiter__(), 1)
    finally:
        await w.close()
    w2 = kv.watch(f"{key_prefix}/comp/", end, start_revision=u1.revision)
    try:
        evs = await take(w2.__aiter__(), 2)
        assert [e.revision for e in evs] == [u1.revision, u2.revision]
        assert evs[1].prev_kv is not None and evs[1].prev_kv.value == b"2"
    finally:
        await w2.close()

    # Compacting again below the compaction point is a no-op.
    await kv.compact(c.revision)
    assert [x.value for x in (await kv.range(k, "", revision=u1.revision)).kvs] == [b"2"]


async def test_watch_from_revision_exact_events(kv: Any, key_prefix: str) -> None:
    prefix = f"{key_prefix}/w/"
    a = await kv.create(f"{prefix}a", b"a1")
    ua = await kv.update(f"{prefix}a", b"a2", expected_mod_revision=a.revision)
    b = await kv.create(f"{prefix}b", b"b1")
    da = await kv.delete(f"{prefix}a", expected_mod_revision=ua.revision)

    w = kv.watch(prefix, prefix_end(prefix), start_revision=ua.revision)
    try:
        it = w.__aiter__()
        evs = await take(it, 3)
        assert [(e.type, e.revision) for e in evs] == [
            (KVEventType.PUT, ua.revision),
            (KVEventType.PUT, b.revision),
            (KVEventType.DELETE, da.revision),
        ]
        upd, create, dele = evs
        assert upd.kv is not None and upd.kv.value == b"a2" and upd.kv.mod_revision == ua.revision
        assert upd.prev_kv is not None
        assert upd.prev_kv.value == b"a1" and upd.prev_kv.mod_revision == a.revision
        assert create.kv is not None and create.kv.create_revision == b.revision
        assert create.prev_kv is None
        assert dele.kv is not None
        assert dele.kv.key == f"{prefix}a" and dele.kv.mod_revision == da.revision
        assert dele.prev_kv is not None and dele.prev_kv.value == b"a2"

        # Live events follow the backlog without a gap or a duplicate.
        c = await kv.create(f"{prefix}c", b"c1")
        live = await take(it, 1)
        assert [(e.type, e.revision) for e in live] == [(KVEventType.PUT, c.revision)]
        await no_more(it)
    finally:
        await w.close()


async def test_watch_prefix_excludes_other_keys(kv: Any, key_prefix: str) -> None:
    prefix = f"{key_prefix}/ns1/"
    rev = await kv.current_revision()
    await kv.create(f"{key_prefix}/ns0/backlog", b"outside, before the watch starts")
    w = kv.watch(prefix, prefix_end(prefix), start_revision=rev + 1)
    seen: list[KVEvent] = []
    first_seen = asyncio.Event()

    async def consume() -> None:
        async for ev in w:
            if ev.type is not KVEventType.PROGRESS:
                seen.append(ev)
                first_seen.set()

    task = asyncio.create_task(consume())
    try:
        first = await kv.create(f"{prefix}first", b"1")
        await asyncio.wait_for(first_seen.wait(), WAIT)  # the watch is now on its live feed
        await kv.create(f"{key_prefix}/ns0/x", b"before")
        await kv.create(f"{key_prefix}/ns1x", b"sibling")
        mine = await kv.create(f"{prefix}x", b"mine")
        await kv.create(f"{key_prefix}/ns2/x", b"after")
        last = await kv.create(f"{prefix}y", b"mine2")
        for _ in range(int(WAIT * 20)):  # bounded wait for the last event
            if any(e.revision >= last.revision for e in seen):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # room for a wrong extra event to show up
        assert [e.kv.key for e in seen if e.kv] == [f"{prefix}first", f"{prefix}x", f"{prefix}y"]
        assert [e.revision for e in seen] == [first.revision, mine.revision, last.revision]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await w.close()


async def test_watch_single_key_and_delete_events(kv: Any, key_prefix: str) -> None:
    key = f"{key_prefix}/one/k"
    rev = await kv.current_revision()
    w = kv.watch(key, "", start_revision=rev + 1)
    try:
        c = await kv.create(key, b"1")
        await kv.create(key + "2", b"other key, same prefix")
        d = await kv.delete(key, expected_mod_revision=c.revision)
        evs = await take(w.__aiter__(), 2)
        assert [(e.type, e.revision) for e in evs] == [
            (KVEventType.PUT, c.revision),
            (KVEventType.DELETE, d.revision),
        ]
        assert evs[1].kv is not None and evs[1].kv.value == b""
        assert evs[1].prev_kv is not None and evs[1].prev_kv.value == b"1"
    finally:
        await w.close()


async def test_ttl_expiry_produces_delete(kv: Any, key_prefix: str) -> None:
    key = f"{key_prefix}/events/e1"
    c = await kv.create(key, b"short-lived", ttl=1)
    assert c.succeeded
    w = kv.watch(key, "", start_revision=c.revision)
    try:
        evs = await take(w.__aiter__(), 2)
        assert evs[0].type is KVEventType.PUT and evs[0].revision == c.revision
        assert evs[1].type is KVEventType.DELETE
        assert evs[1].revision > c.revision
        assert evs[1].prev_kv is not None and evs[1].prev_kv.value == b"short-lived"
    finally:
        await w.close()
    assert (await kv.get(key))[0] is None


async def test_progress_notify(kv: Any, key_prefix: str) -> None:
    prefix = f"{key_prefix}/quiet/"
    c = await kv.create(f"{key_prefix}/loud/x", b"x")
    w = kv.watch(prefix, prefix_end(prefix), start_revision=c.revision + 1, progress_notify=True)
    try:
        it = w.__aiter__()

        async def first_progress() -> KVEvent:
            while True:
                ev = await it.__anext__()
                if ev.type is KVEventType.PROGRESS:
                    return ev
                raise AssertionError(f"unexpected event {ev}")

        ev = await asyncio.wait_for(first_progress(), WAIT)
        assert ev.kv is None and ev.prev_kv is None
        assert ev.revision >= c.revision
    finally:
        await w.close()


async def test_concurrent_writers_and_watcher_see_every_revision_once(
    kv: Any, key_prefix: str
) -> None:
    prefix = f"{key_prefix}/conc/"
    rev0 = await kv.current_revision()
    w = kv.watch(prefix, prefix_end(prefix), start_revision=rev0 + 1)
    writers, per_writer = 4, 15

    async def writer(i: int) -> list[int]:
        key = f"{prefix}w{i}"
        revs = []
        res = await kv.create(key, b"0")
        assert res.succeeded
        revs.append(res.revision)
        for n in range(1, per_writer):
            res = await kv.update(key, str(n).encode(), expected_mod_revision=res.revision)
            assert res.succeeded
            revs.append(res.revision)
        return revs

    it = w.__aiter__()
    # The watcher consumes while the writers run (it is on the live feed).
    consumer = asyncio.create_task(take(it, writers * per_writer))
    try:
        results = await asyncio.gather(*(writer(i) for i in range(writers)))
        all_revs = sorted(r for revs in results for r in revs)
        assert len(set(all_revs)) == writers * per_writer
        evs = await asyncio.wait_for(consumer, WAIT)
        assert [e.revision for e in evs] == all_revs
        # Per key, values arrive in write order and each prev_kv is the previous event.
        last: dict[str, KVEvent] = {}
        for e in evs:
            assert e.kv is not None
            prev = last.get(e.kv.key)
            if prev is None:
                assert e.prev_kv is None and e.kv.value == b"0"
            else:
                assert e.prev_kv is not None and prev.kv is not None
                assert e.prev_kv.mod_revision == prev.kv.mod_revision
                assert int(e.kv.value) == int(prev.kv.value) + 1
            last[e.kv.key] = e
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await consumer
        await w.close()


async def test_watch_close_ends_iteration(kv: Any, key_prefix: str) -> None:
    rev = await kv.current_revision()
    w = kv.watch(f"{key_prefix}/c/", prefix_end(f"{key_prefix}/c/"), start_revision=rev + 1)
    it = w.__aiter__()
    first = asyncio.ensure_future(_next_key_event(it))
    c = await kv.create(f"{key_prefix}/c/x", b"x")
    ev = await asyncio.wait_for(first, WAIT)
    assert ev.revision == c.revision
    await w.close()
    deadline = time.monotonic() + WAIT
    ended = False
    while time.monotonic() < deadline:
        try:
            await asyncio.wait_for(it.__anext__(), WAIT)
        except StopAsyncIteration:
            ended = True
            break
        except Exception:  # a backend may end a closed stream with an error instead
            ended = True
            break
    assert ended


@pytest.mark.parametrize("bad_key", ["", None, 5])
async def test_bad_keys_rejected(kv: Any, bad_key: Any) -> None:
    with pytest.raises((ValueError, TypeError, InvalidError)):
        await kv.create(bad_key, b"v")
