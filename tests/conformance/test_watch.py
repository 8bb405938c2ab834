"""Conformance: watch semantics (Kubernetes watcher_tests.go).

Every test runs once per registered stack and KV backend (see conftest.py). Negative
checks ("this event must not be delivered") use a *fence*: a later write the watch must
deliver next, so no test waits for silence or measures time.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from tenantstore.storage import (
    BadRequestError,
    EventType,
    ListOptions,
    StorageError,
    Watch,
    WatchEvent,
)

from .conftest import Stack
from .helpers import (
    collect,
    expect_end,
    fence,
    name_of,
    next_event,
    pod,
    rv,
    selector,
    set_labels,
    set_spec,
    summary,
)

ADDED, MODIFIED, DELETED = EventType.ADDED, EventType.MODIFIED, EventType.DELETED
BOOKMARK, ERROR = EventType.BOOKMARK, EventType.ERROR


async def watch_ns(
    stack: Stack, namespace: str = "ns", resource_version: str | int = "", **kwargs: Any
) -> Watch:
    return await stack.store.watch(
        stack.ns_key(namespace),
        ListOptions(resource_version=str(resource_version), recursive=True, **kwargs),
    )


async def outside(stack: Stack, key: str) -> None:
    """A write to a key outside the stack's resource (a sibling resource), straight to the
    KV: no storage built for one resource accepts another's keys."""
    await stack.kv.create(key, b'{"metadata":{"name":"outside"}}')


async def now(stack: Stack) -> int:
    """The current RV, never 0: a watch from "0" means "current state first", so on a
    fresh store one write (outside every watched prefix) makes the RV a real revision."""
    current = await stack.store.current_resource_version()
    if current == 0:
        await outside(stack, f"{stack.prefix}-init/ns/init")
        current = await stack.store.current_resource_version()
    return current


# =======================================================================================
# initial state and history


@pytest.mark.parametrize("start", ["0", ""])
async def test_watch_initial_state_then_changes(stack: Stack, start: str) -> None:
    a = await stack.store.create(stack.key("ns", "a"), pod("a"))
    b = await stack.store.create(stack.key("ns", "b"), pod("b"))
    await stack.store.create(stack.key("other", "x"), pod("x", "other"))
    async with await watch_ns(stack, resource_version=start) as w:
        initial = await collect(w, 2)
        assert {summary(e) for e in initial} == {("ADDED", "a", rv(a)), ("ADDED", "b", rv(b))}
        updated = await stack.store.guaranteed_update(stack.key("ns", "a"), set_spec(v=2))
        ev = await next_event(w)
        assert summary(ev) == ("MODIFIED", "a", rv(updated))
        assert ev.object["spec"]["v"] == 2
        c = await stack.store.create(stack.key("ns", "c"), pod("c"))
        assert summary(await next_event(w)) == ("ADDED", "c", rv(c))


async def test_watch_initial_state_empty(stack: Stack) -> None:
    async with await watch_ns(stack, resource_version="0") as w:
        await fence(stack.store, w, stack.key("ns", "first"), pod("first"))


async def test_watch_from_resource_version_replays_history(stack: Stack) -> None:
    start = await now(stack)
    s = stack.store
    a1 = await s.create(stack.key("ns", "a"), pod("a", spec={"v": 1}))
    a2 = await s.guaranteed_update(stack.key("ns", "a"), set_spec(v=2))
    b1 = await s.create(stack.key("ns", "b"), pod("b"))
    await s.create(stack.key("elsewhere", "z"), pod("z", "elsewhere"))
    a3 = await s.delete(stack.key("ns", "a"))
    deleted_rv = await now(stack)
    b2 = await s.guaranteed_update(stack.key("ns", "b"), set_labels({"x": "y"}))
    async with await watch_ns(stack, resource_version=start) as w:
        events = [await next_event(w, bookmarks=True) for _ in range(5)]
        assert [summary(e) for e in events] == [
            ("ADDED", "a", rv(a1)),
            ("MODIFIED", "a", rv(a2)),
            ("ADDED", "b", rv(b1)),
            ("DELETED", "a", deleted_rv),
            ("MODIFIED", "b", rv(b2)),
        ]
        assert events[1].object["spec"]["v"] == 2
        assert events[3].object["spec"]["v"] == 2  # the last state of "a"
        assert a3["spec"]["v"] == 2
        assert events[4].object["metadata"]["labels"] == {"x": "y"}
        # Then live events continue the same stream.
        c = await s.create(stack.key("ns", "c"), pod("c"))
        assert summary(await next_event(w, bookmarks=True)) == ("ADDED", "c", rv(c))


async def test_watch_from_middle_of_history(stack: Stack) -> None:
    s = stack.store
    await s.create(stack.key("ns", "a"), pod("a"))
    a2 = await s.guaranteed_update(stack.key("ns", "a"), set_spec(v=2))
    b = await s.create(stack.key("ns", "b"), pod("b"))
    a3 = await s.guaranteed_update(stack.key("ns", "a"), set_spec(v=3))
    async with await watch_ns(stack, resource_version=rv(a2)) as w:
        events = await collect(w, 2)
        assert [summary(e) for e in events] == [("ADDED", "b", rv(b)), ("MODIFIED", "a", rv(a3))]


async def test_watch_from_current_resource_version_has_no_initial_events(stack: Stack) -> None:
    await stack.store.create(stack.key("ns", "existing"), pod("existing"))
    current = await now(stack)
    async with await watch_ns(stack, resource_version=current) as w:
        await fence(stack.store, w, stack.key("ns", "new"), pod("new"))


async def test_watch_deleted_carries_last_state(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    await stack.store.create(key, pod("foo", labels={"app": "web"}))
    last = await stack.store.guaranteed_update(key, set_spec(final=True))
    async with await watch_ns(stack, resource_version=rv(last)) as w:
        await stack.store.delete(key)
        delete_rv = await now(stack)
        ev = await next_event(w)
        assert ev.type == DELETED
        assert name_of(ev.object) == "foo"
        assert ev.object["spec"]["final"] is True
        assert ev.object["metadata"]["labels"] == {"app": "web"}
        assert rv(ev.object) == delete_rv > rv(last)


async def test_watch_event_order_matches_resource_versions(stack: Stack) -> None:
    start = await now(stack)
    written = []
    for i in range(5):
        written.append(await stack.store.create(stack.key("ns", f"p{i}"), pod(f"p{i}")))
        written.append(
            await stack.store.guaranteed_update(stack.key("ns", f"p{i}"), set_spec(step=i))
        )
    async with await watch_ns(stack, resource_version=start) as w:
        events = await collect(w, len(written))
    assert [rv(e.object) for e in events] == [rv(o) for o in written]
    assert [e.type for e in events] == [ADDED, MODIFIED] * 5


async def test_watch_invalid_resource_version_bad_request(stack: Stack) -> None:
    with pytest.raises(BadRequestError):
        w = await watch_ns(stack, resource_version="abc")
        w.stop()


# =======================================================================================
# scoping by key


async def test_watch_single_key(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    start = await now(stack)
    w = await stack.store.watch(key, ListOptions(resource_version=str(start), recursive=False))
    async with w:
        for other in ("fo", "foo-bar", "foobar", "foo.x"):
            await stack.store.create(stack.key("ns", other), pod(other))
        await stack.store.create(stack.key("ns2", "foo"), pod("foo", "ns2"))
        created = await stack.store.create(key, pod("foo"))
        assert summary(await next_event(w)) == ("ADDED", "foo", rv(created))
        await stack.store.guaranteed_update(stack.key("ns", "foobar"), set_spec(v=1))
        updated = await stack.store.guaranteed_update(key, set_spec(v=1))
        assert summary(await next_event(w)) == ("MODIFIED", "foo", rv(updated))


async def test_watch_single_key_initial_state(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))
    await stack.store.create(stack.key("ns", "foobar"), pod("foobar"))
    w = await stack.store.watch(key, ListOptions(resource_version="0", recursive=False))
    async with w:
        assert summary(await next_event(w)) == ("ADDED", "foo", rv(created))
        await stack.store.create(stack.key("ns", "foo-2"), pod("foo-2"))
        await stack.store.delete(key)
        delete_rv = await now(stack)
        ev = await next_event(w)
        assert ev.type == DELETED and name_of(ev.object) == "foo"
        assert rv(ev.object) == delete_rv > rv(created)


async def test_watch_prefix_excludes_other_prefixes(stack: Stack) -> None:
    async with await watch_ns(stack, "ns", resource_version=await now(stack)) as w:
        await stack.store.create(stack.key("ns2", "a"), pod("a", "ns2"))
        await stack.store.create(stack.key("ns-x", "a"), pod("a", "ns-x"))
        await stack.store.create(stack.key("n", "a"), pod("a", "n"))
        # A sibling resource whose prefix merely extends ours as a string.
        await outside(stack, f"{stack.prefix}x/ns/a")
        await outside(stack, f"{stack.prefix}-other/ns/a")
        await fence(stack.store, w, stack.key("ns", "mine"), pod("mine"))


async def test_watch_all_namespaces(stack: Stack) -> None:
    w = await stack.store.watch(
        stack.prefix, ListOptions(resource_version=str(await now(stack)), recursive=True)
    )
    async with w:
        a = await stack.store.create(stack.key("ns1", "a"), pod("a", "ns1"))
        b = await stack.store.create(stack.key("ns2", "b"), pod("b", "ns2"))
        await outside(stack, f"{stack.prefix}x/ns1/c")
        d = await stack.store.create(stack.key("ns3", "d"), pod("d", "ns3"))
        events = await collect(w, 3)
        assert [summary(e) for e in events] == [
            ("ADDED", "a", rv(a)),
            ("ADDED", "b", rv(b)),
            ("ADDED", "d", rv(d)),
        ]
        assert [e.object["metadata"]["namespace"] for e in events] == ["ns1", "ns2", "ns3"]


# =======================================================================================
# predicates


async def test_watch_label_selector_transitions(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    s = stack.store
    start = await now(stack)
    async with await watch_ns(stack, resource_version=start, predicate=selector("app=web")) as w:
        created = await s.create(key, pod("foo", labels={"app": "web"}))
        assert summary(await next_event(w)) == ("ADDED", "foo", rv(created))

        away = await s.guaranteed_update(key, set_labels({"app": "db"}))
        ev = await next_event(w)
        # Leaving the selection is a DELETED of the last matching state, at the update's RV.
        assert summary(ev) == ("DELETED", "foo", rv(away))
        assert ev.object["metadata"]["labels"] == {"app": "web"}

        await s.guaranteed_update(key, set_spec(v=1))  # still not matching: nothing
        back = await s.guaranteed_update(key, set_labels({"app": "web"}))
        ev = await next_event(w)
        assert summary(ev) == ("ADDED", "foo", rv(back))
        assert ev.object["spec"]["v"] == 1

        changed = await s.guaranteed_update(key, set_spec(v=2))
        assert summary(await next_event(w)) == ("MODIFIED", "foo", rv(changed))

        await s.create(stack.key("ns", "other"), pod("other", labels={"app": "db"}))
        await s.delete(stack.key("ns", "other"))
        await s.delete(key)
        ev = await next_event(w)
        assert ev.type == DELETED and name_of(ev.object) == "foo"
        assert ev.object["spec"]["v"] == 2
        await fence(s, w, stack.key("ns", "fence"), pod("fence", labels={"app": "web"}))


async def test_watch_label_selector_initial_state(stack: Stack) -> None:
    web = await stack.store.create(stack.key("ns", "a"), pod("a", labels={"app": "web"}))
    await stack.store.create(stack.key("ns", "b"), pod("b", labels={"app": "db"}))
    await stack.store.create(stack.key("ns", "c"), pod("c"))
    async with await watch_ns(stack, resource_version="0", predicate=selector("app in (web)")) as w:
        assert summary(await next_event(w)) == ("ADDED", "a", rv(web))
        await fence(stack.store, w, stack.key("ns", "d"), pod("d", labels={"app": "web"}))


async def test_watch_field_selector(stack: Stack) -> None:
    w = await stack.store.watch(
        stack.prefix,
        ListOptions(
            resource_version=str(await now(stack)),
            recursive=True,
            predicate=selector(field="metadata.name=target"),
        ),
    )
    async with w:
        await stack.store.create(stack.key("ns", "decoy"), pod("decoy"))
        t1 = await stack.store.create(stack.key("ns", "target"), pod("target"))
        await stack.store.create(stack.key("ns", "target2"), pod("target2"))
        t2 = await stack.store.create(stack.key("other", "target"), pod("target", "other"))
        events = await collect(w, 2)
        assert [summary(e) for e in events] == [
            ("ADDED", "target", rv(t1)),
            ("ADDED", "target", rv(t2)),
        ]


# =======================================================================================
# writes that produce events (or not)


async def test_watch_noop_update_produces_no_event(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))
    async with await watch_ns(stack, resource_version=rv(created)) as w:
        await stack.store.guaranteed_update(key, lambda cur: copy.deepcopy(cur))
        await fence(stack.store, w, stack.key("ns", "fence"), pod("fence"))


async def test_watch_sees_update_created_object(stack: Stack) -> None:
    key = stack.key("ns", "made")
    async with await watch_ns(stack, resource_version=await now(stack)) as w:
        out = await stack.store.guaranteed_update(
            key, lambda cur: pod("made"), ignore_not_found=True
        )
        assert summary(await next_event(w)) == ("ADDED", "made", rv(out))


async def test_watch_ttl_expiry_is_a_delete(stack: Stack) -> None:
    if not stack.supports_ttl:
        pytest.skip("stack has no TTL support")
    key = stack.key("ns", "ephemeral")
    async with await watch_ns(stack, resource_version=await now(stack)) as w:
        created = await stack.store.create(key, pod("ephemeral"), ttl=1)
        assert summary(await next_event(w)) == ("ADDED", "ephemeral", rv(created))
        ev = await next_event(w, within=20)
        assert ev.type == DELETED and name_of(ev.object) == "ephemeral"
        assert rv(ev.object) > rv(created)


# =======================================================================================
# compaction, bookmarks


async def assert_watch_gone(stack: Stack, opts: ListOptions, key: str) -> None:
    """The watch fails with 410: either watch() raises a 410 error, or the stream yields
    one ERROR event carrying a 410 Status (reason Expired) and then ends."""
    try:
        w = await stack.store.watch(key, opts)
    except StorageError as exc:
        assert exc.code == 410, exc
        return
    async with w:
        ev = await next_event(w, bookmarks=True)
        assert ev.type == ERROR, f"expected a 410 ERROR event, got {ev}"
        assert ev.object.get("kind") == "Status"
        assert ev.object.get("code") == 410
        assert ev.object.get("reason") == "Expired"
        assert await expect_end(w) == []


@pytest.mark.not_cached("a watch cache may still hold compacted revisions in its window")
async def test_watch_from_compacted_resource_version_gone(stack: Stack) -> None:
    a = await stack.store.create(stack.key("ns", "a"), pod("a"))
    await stack.store.create(stack.key("ns", "b"), pod("b"))
    await stack.store.create(stack.key("ns", "c"), pod("c"))
    await stack.compact()
    await assert_watch_gone(
        stack, ListOptions(resource_version=str(rv(a)), recursive=True), stack.ns_key("ns")
    )


@pytest.mark.not_cached(
    "a watch cache that started before the compaction still holds those revisions in its window"
)
async def test_watch_from_very_old_resource_version_gone(stack: Stack) -> None:
    """A watch from RV 1 after compaction is gone on every stack."""
    for i in range(3):
        await stack.store.create(stack.key("ns", f"p{i}"), pod(f"p{i}"))
    compacted = await stack.compact()
    assert compacted > 2
    await assert_watch_gone(
        stack, ListOptions(resource_version="1", recursive=True), stack.ns_key("ns")
    )


async def test_watch_bookmarks(stack: Stack) -> None:
    async with await watch_ns(
        stack,
        resource_version=await now(stack),
        allow_watch_bookmarks=True,
        progress_notify=True,
    ) as w:
        created = await stack.store.create(stack.key("ns", "a"), pod("a"))
        await stack.store.create(stack.key("other", "b"), pod("b", "other"))
        last = await now(stack)
        ev = await next_event(w, bookmarks=True)
        assert summary(ev) == ("ADDED", "a", rv(created))

        async def until_bookmark() -> WatchEvent:
            while True:
                ev = await next_event(w, within=15, bookmarks=True)
                assert ev.type == BOOKMARK, f"unexpected event {ev}"
                if rv(ev.object) >= last:
                    return ev

        bm = await asyncio.wait_for(until_bookmark(), 20)
        assert set(bm.object["metadata"]) == {"resourceVersion"}


async def test_watch_without_bookmarks_never_sends_them(stack: Stack) -> None:
    async with await watch_ns(stack, resource_version=await now(stack)) as w:
        for i in range(3):
            await stack.store.create(stack.key("ns", f"p{i}"), pod(f"p{i}"))
        for _ in range(3):
            ev = await next_event(w, bookmarks=True)
            assert ev.type == ADDED


# =======================================================================================
# concurrency, fan-out, closing


async def test_watch_concurrent_writers_exactly_once_in_order(stack: Stack) -> None:
    writers, per_writer = 4, 8
    async with await watch_ns(stack, resource_version=await now(stack)) as w:

        async def writer(i: int) -> list[dict[str, Any]]:
            out = []
            key = stack.key("ns", f"w{i}")
            out.append(await stack.store.create(key, pod(f"w{i}", spec={"n": 0})))
            for n in range(1, per_writer):
                await asyncio.sleep(0)
                out.append(await stack.store.guaranteed_update(key, set_spec(n=n)))
            return out

        results = await asyncio.gather(*(writer(i) for i in range(writers)))
        written = {(name_of(o), rv(o)) for r in results for o in r}
        events = await collect(w, writers * per_writer)
        rvs = [rv(e.object) for e in events]
        assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs), "events out of order or repeated"
        assert {(name_of(e.object), rv(e.object)) for e in events} == written
        for i in range(writers):
            mine = [e for e in events if name_of(e.object) == f"w{i}"]
            assert [e.type for e in mine] == [ADDED] + [MODIFIED] * (per_writer - 1)
            assert [e.object["spec"]["n"] for e in mine] == list(range(per_writer))
        await fence(stack.store, w, stack.key("ns", "fence"), pod("fence"))


async def test_watch_stop_ends_iteration(stack: Stack) -> None:
    w = await watch_ns(stack, resource_version=await now(stack))
    await stack.store.create(stack.key("ns", "a"), pod("a"))
    assert (await next_event(w)).type == ADDED
    w.stop()
    await stack.store.create(stack.key("ns", "b"), pod("b"))
    assert await expect_end(w) == []
    w.stop()  # idempotent
    await stack.store.guaranteed_update(stack.key("ns", "b"), set_spec(v=1))


async def test_watch_stop_while_waiting(stack: Stack) -> None:
    w = await watch_ns(stack, resource_version=await now(stack))
    waiter = asyncio.ensure_future(expect_end(w))
    await asyncio.sleep(0.05)
    w.stop()
    assert await asyncio.wait_for(waiter, 10) == []


async def test_watch_async_with_closes(stack: Stack) -> None:
    async with await watch_ns(stack, resource_version=await now(stack)) as w:
        await fence(stack.store, w, stack.key("ns", "a"), pod("a"))
    await stack.store.create(stack.key("ns", "b"), pod("b"))
    assert await expect_end(w) == []
    # The store keeps working, and new watches are unaffected.
    async with await watch_ns(stack, resource_version=await now(stack)) as w2:
        await fence(stack.store, w2, stack.key("ns", "c"), pod("c"))


async def test_many_watchers_get_every_event(stack: Stack) -> None:
    start = await now(stack)
    watches = [await watch_ns(stack, resource_version=start) for _ in range(6)]
    try:
        written = []
        for i in range(4):
            written.append(await stack.store.create(stack.key("ns", f"p{i}"), pod(f"p{i}")))
        written.append(await stack.store.guaranteed_update(stack.key("ns", "p0"), set_spec(v=1)))
        written.append(await stack.store.delete(stack.key("ns", "p1")))
        expected_types = ["ADDED"] * 4 + ["MODIFIED", "DELETED"]
        all_events = await asyncio.gather(*(collect(w, len(written)) for w in watches))
        for events in all_events:
            assert [str(e.type) for e in events] == expected_types
            assert [name_of(e.object) for e in events] == ["p0", "p1", "p2", "p3", "p0", "p1"]
            assert [rv(e.object) for e in events[:5]] == [rv(o) for o in written[:5]]
        # Stopping one watcher does not disturb the others.
        watches[0].stop()
        created = await stack.store.create(stack.key("ns", "late"), pod("late"))
        for w in watches[1:]:
            assert summary(await next_event(w)) == ("ADDED", "late", rv(created))
    finally:
        for w in watches:
            w.stop()


async def test_watchers_with_different_start_points(stack: Stack) -> None:
    r0 = await now(stack)
    a = await stack.store.create(stack.key("ns", "a"), pod("a"))
    b = await stack.store.create(stack.key("ns", "b"), pod("b"))
    async with (
        await watch_ns(stack, resource_version=r0) as w0,
        await watch_ns(stack, resource_version=rv(a)) as w1,
    ):
        c = await stack.store.create(stack.key("ns", "c"), pod("c"))
        assert [summary(e) for e in await collect(w0, 3)] == [
            ("ADDED", "a", rv(a)),
            ("ADDED", "b", rv(b)),
            ("ADDED", "c", rv(c)),
        ]
        assert [summary(e) for e in await collect(w1, 2)] == [
            ("ADDED", "b", rv(b)),
            ("ADDED", "c", rv(c)),
        ]


async def test_watch_initial_state_then_no_duplicates(stack: Stack) -> None:
    """Objects reported in the initial state are not reported again as later events."""
    for i in range(5):
        await stack.store.create(stack.key("ns", f"p{i}"), pod(f"p{i}"))
    async with await watch_ns(stack, resource_version="0") as w:
        initial = await collect(w, 5)
        assert sorted(name_of(e.object) for e in initial) == [f"p{i}" for i in range(5)]
        assert all(e.type == ADDED for e in initial)
        await fence(stack.store, w, stack.key("ns", "fence"), pod("fence"))


@pytest.mark.not_cached("a watch cache's reflector, not its watchers, sees undecodable values")
async def test_watch_corrupt_value_ends_with_error(stack: Stack) -> None:
    """An event whose value cannot be decoded ends the watch with an ERROR (500) event."""
    async with await watch_ns(stack, resource_version=await now(stack)) as w:
        await fence(stack.store, w, stack.key("ns", "ok"), pod("ok"))
        res = await stack.kv.create(stack.bottom_key(stack.key("ns", "broken")), b"\x00garbage")
        assert res.succeeded
        ev = await next_event(w, bookmarks=True)
        assert ev.type == ERROR, ev
        assert ev.object.get("kind") == "Status" and ev.object.get("code") == 500
        assert await expect_end(w) == []


async def test_watch_delayed_delivery(stack: Stack) -> None:
    """Many writes made before the consumer reads anything are all delivered, in order."""
    key = stack.key("ns", "busy")
    async with await watch_ns(stack, resource_version=await now(stack)) as w:
        written = [await stack.store.create(key, pod("busy", spec={"n": 0}))]
        for n in range(1, 150):
            written.append(await stack.store.guaranteed_update(key, set_spec(n=n)))
        events = await collect(w, len(written))
    assert [rv(e.object) for e in events] == [rv(o) for o in written]
    assert [e.object["spec"]["n"] for e in events] == list(range(150))
    assert [e.type for e in events] == [ADDED] + [MODIFIED] * 149
