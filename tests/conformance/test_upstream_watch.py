"""Conformance: upstream Kubernetes' `watcher_tests.go`, ported, and the cacher's
consistency checker (`pkg/storage/cacher/consistency`), as a test.

Each test names the upstream function it ports (`RunTestWatch`, ...) and runs on every
stack of `conftest.py`; upstream's table-driven sub-cases are pytest parameters. The
watch-list functions (`RunWatchSemantics`, `RunWatchSemanticInitialEventsExtended`,
`RunSendInitialEventsBackwardCompatibility`) and `RunTestWatchWithUnsafeDelete` are
ported with those features, elsewhere.

Deliberate differences, all listed in the README next to the `Storage` protocol:

* Field selectors are `metadata.name` and `metadata.namespace` only: upstream's tests
  select `spec.nodeName` through a per-resource `GetAttrs`, which is a registry feature,
  not a storage one. The ports mirror `spec.nodeName` into the label `node` and select on
  that; the storage semantics under test (an object entering or leaving the selection is
  ADDED or DELETED) are the same.
* No test measures time (upstream's `RunTestWatcherTimeout` bounds the elapsed time);
  every wait is bounded by `helpers.TIMEOUT`, and "nothing more is delivered" is checked
  with a fence (a later write that must be the next event).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tenantstore.storage import (
    EventType,
    ListOptions,
    Predicate,
    ResourceVersionMatch,
    Storage,
    Watch,
    WatchEvent,
)

from .conftest import Stack
from .helpers import TIMEOUT, expect_end, name_of, next_event, rv

ADDED, MODIFIED, DELETED = EventType.ADDED, EventType.MODIFIED, EventType.DELETED
BOOKMARK, ERROR = EventType.BOOKMARK, EventType.ERROR
EXACT = ResourceVersionMatch.EXACT
NOT_OLDER = ResourceVersionMatch.NOT_OLDER_THAN

# =======================================================================================
# upstream's pods and helpers


def upod(
    name: str,
    namespace: str = "",
    *,
    node: str = "",
    phase: str = "",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Upstream's `example.Pod`, with no resourceVersion, `spec.nodeName` mirrored into the
    label `node` (see the module docstring) and an empty namespace left out. It has a uid,
    derived from the namespace and name, as the API server would have set one: the shared
    cache keys objects by uid."""
    meta: dict[str, Any] = {
        "name": name,
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}")),
    }
    if namespace:
        meta["namespace"] = namespace
    all_labels = dict(labels or {})
    if node:
        all_labels["node"] = node
    if all_labels:
        meta["labels"] = all_labels
    if annotations:
        meta["annotations"] = dict(annotations)
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {}}
    if node:
        obj["spec"]["nodeName"] = node
    if phase:
        obj["status"] = {"phase": phase}
    return obj


def node_selector(field: str) -> str:
    """Upstream's `spec.nodeName` field terms as terms on the mirroring label."""
    return ",".join(
        term.strip().replace("spec.nodeName", "node") for term in field.split(",") if term
    )


def pred(label: str = "", field: str = "") -> Predicate:
    """A predicate from upstream's selectors; `spec.nodeName` terms become label terms."""
    terms = [t.strip() for t in field.split(",") if t.strip()]
    node_terms = [t for t in terms if t.startswith("spec.nodeName")]
    other = [t for t in terms if not t.startswith("spec.nodeName")]
    labels = ",".join(x for x in [label, node_selector(",".join(node_terms))] if x)
    return Predicate.parse(labels, ",".join(other))


def put(obj: dict[str, Any]) -> Any:
    """`storage.SimpleUpdate` returning a fixed object, whatever is stored."""

    def fn(_cur: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(obj)

    return fn


async def upsert(store: Storage, key: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Upstream's `GuaranteedUpdate(..., ignoreNotFound=true, SimpleUpdate(obj))`."""
    return await store.guaranteed_update(key, put(obj), ignore_not_found=True)


async def propagate(stack: Stack, obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Upstream's `testPropagateStore`: a fresh copy of `obj` at its key."""
    key = stack.key(obj["metadata"]["namespace"], obj["metadata"]["name"])
    if await stack.store.get(key, ignore_not_found=True) is not None:
        await stack.store.delete(key)
    return key, await stack.store.create(key, copy.deepcopy(obj))


async def expect_event(w: Watch, etype: EventType, obj: dict[str, Any]) -> WatchEvent:
    """Upstream's `testCheckResult`: the next event (bookmarks included, since none was
    asked for) is `etype` carrying exactly `obj`."""
    ev = await next_event(w, bookmarks=True)
    assert (ev.type, ev.object) == (etype, obj), f"expected {etype} {obj}, got {ev}"
    return ev


async def expect_stop(w: Watch) -> None:
    """Upstream's `testCheckStop`: after `stop()`, the stream ends with nothing more."""
    w.stop()
    assert await expect_end(w) == []


def deleted_as(prev: dict[str, Any], at: dict[str, Any]) -> dict[str, Any]:
    """A DELETED event's object: the last state, at the revision of the deleting write."""
    out = copy.deepcopy(prev)
    out["metadata"]["resourceVersion"] = at["metadata"]["resourceVersion"]
    return out


def is_bookmark_stub(obj: dict[str, Any]) -> bool:
    """A bookmark carries type information and `metadata.resourceVersion`, nothing else."""
    rest = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
    return set(rest) == {"metadata"} and set(rest["metadata"]) == {"resourceVersion"}


def skip_on_cache(stack: Stack, upstream: str, reason: str) -> None:
    if stack.cached:
        pytest.skip(f"{upstream}: {reason}")


# =======================================================================================
# RunTestWatch (testWatch, recursive and not)


@dataclass(frozen=True)
class Step:
    obj: dict[str, Any] | None  # None: delete
    expect: EventType | None


BASE = upod("foo")
ASSIGNED = upod("foo", node="bar")


def selected(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("labels", {})["select"] = "true"
    return out


WATCH_CASES: dict[str, tuple[Predicate, list[Step]]] = {
    "create a key": (pred(), [Step(BASE, ADDED)]),
    "key updated to match predicate": (
        pred(field="spec.nodeName=bar"),
        [Step(BASE, None), Step(ASSIGNED, ADDED)],
    ),
    "update": (pred(), [Step(BASE, ADDED), Step(ASSIGNED, MODIFIED)]),
    "delete because of being filtered": (
        pred(field="spec.nodeName!=bar"),
        [Step(BASE, ADDED), Step(ASSIGNED, DELETED)],
    ),
    "filtering": (
        pred(label="select=true"),
        [
            Step(selected(BASE), ADDED),
            Step(BASE, DELETED),
            Step(selected(BASE), ADDED),
            Step(selected(ASSIGNED), MODIFIED),
            Step(None, DELETED),
        ],
    ),
}


@pytest.mark.parametrize("recursive", [False, True], ids=["single", "recursive"])
@pytest.mark.parametrize("case", list(WATCH_CASES))
async def test_run_test_watch(stack: Stack, case: str, recursive: bool) -> None:
    """`RunTestWatch`: a first write is ADDED, an update MODIFIED, an update leaving the
    predicate DELETED (at the update's revision) and one entering it ADDED; a write in
    a sibling namespace is never delivered."""
    predicate, steps = WATCH_CASES[case]
    ns = f"test-ns-{list(WATCH_CASES).index(case) + 1}-{str(recursive).lower()}"
    key = stack.key(ns, "foo")
    watch_key = stack.ns_key(ns) if recursive else key
    listed = await stack.store.get_list(
        watch_key, ListOptions(predicate=predicate, recursive=recursive)
    )
    w = await stack.store.watch(
        watch_key,
        ListOptions(
            resource_version=str(listed.resource_version), predicate=predicate, recursive=recursive
        ),
    )
    bad = copy.deepcopy(BASE)
    bad["metadata"]["namespace"] = f"{ns}-bad"
    await upsert(stack.store, stack.key(f"{ns}-bad", "foo"), bad)
    prev: dict[str, Any] | None = None
    for step in steps:
        if step.obj is not None:
            obj = copy.deepcopy(step.obj)
            obj["metadata"]["namespace"] = ns
            out = await upsert(stack.store, key, obj)
        else:
            out = await stack.store.delete(key)
        if step.expect is not None:
            if step.expect is DELETED:
                assert prev is not None
                await expect_event(w, DELETED, deleted_as(prev, out))
            else:
                await expect_event(w, step.expect, out)
        prev = out
    await expect_stop(w)


# =======================================================================================
# single-key watches


async def test_run_test_watch_from_zero(stack: Stack) -> None:
    """`RunTestWatchFromZero`: a watch from "0" starts with the current object as ADDED,
    also after compaction; a watch from a compacted revision is 410 Gone.

    Upstream accepts an InternalError from etcd here as well (a TODO to unify); every
    backend answers 410 Expired here. Upstream passes no compaction to the cacher (its
    window still holds the compacted revisions), so the cached stacks stop before it.
    """
    key, stored = await propagate(stack, upod("foo", "test-ns"))
    w = await stack.store.watch(key, ListOptions(resource_version="0"))
    await expect_event(w, ADDED, stored)
    out = await upsert(stack.store, key, upod("foo", "test-ns", annotations={"a": "1"}))
    await expect_event(w, MODIFIED, out)
    w.stop()

    async with await stack.store.watch(key, ListOptions(resource_version="0")) as w:
        await expect_event(w, ADDED, out)

    skip_on_cache(stack, "RunTestWatchFromZero", "upstream passes no compaction to the cacher")
    new_out = await upsert(stack.store, key, upod("foo", "test-ns"))
    await stack.kv.compact(rv(new_out))
    async with await stack.store.watch(key, ListOptions(resource_version="0")) as w:
        await expect_event(w, ADDED, new_out)
    async with await stack.store.watch(key, ListOptions(resource_version=str(rv(out)))) as old:
        ev = await next_event(old, bookmarks=True)
        assert ev.type == ERROR, ev
        assert (ev.object.get("kind"), ev.object.get("code"), ev.object.get("reason")) == (
            "Status",
            410,
            "Expired",
        ), ev.object
        assert await expect_end(old) == []


async def test_run_test_delete_trigger_watch(stack: Stack) -> None:
    """`RunTestDeleteTriggerWatch`: deleting the watched object is a DELETED event."""
    key, stored = await propagate(stack, upod("foo", "test-ns"))
    async with await stack.store.watch(key, ListOptions(resource_version=str(rv(stored)))) as w:
        await stack.store.delete(key)
        assert (await next_event(w, bookmarks=True)).type == DELETED


async def test_run_test_watch_from_non_zero(stack: Stack) -> None:
    """`RunTestWatchFromNonZero`: a watch from the object's revision sees the update."""
    key, stored = await propagate(stack, upod("foo", "test-ns"))
    async with await stack.store.watch(key, ListOptions(resource_version=str(rv(stored)))) as w:
        new = copy.deepcopy(stored)
        new["metadata"]["annotations"] = {"version": "2"}
        out = await stack.store.guaranteed_update(key, put(new), ignore_not_found=True)
        await expect_event(w, MODIFIED, out)


async def test_run_test_watch_delete_event_object_have_latest_rv(stack: Stack) -> None:
    """`RunTestWatchDeleteEventObjectHaveLatestRV`: the DELETED event carries the object
    as the delete returned it, at the delete's revision."""
    key, stored = await propagate(stack, upod("foo", "test-ns"))
    async with await stack.store.watch(key, ListOptions(resource_version=str(rv(stored)))) as w:
        deleted = await stack.store.delete(key)
        assert rv(deleted) != rv(stored)
        await expect_event(w, DELETED, deleted)


# =======================================================================================
# delivery, errors, stopping


async def test_run_test_delayed_watch_delivery(stack: Stack) -> None:
    """`RunTestDelayedWatchDelivery`: events already queued for a consumer that has not
    read them are still delivered, in order, after it stops the watch (upstream expects
    at least 10 of 21, the cacher's output buffer)."""
    _key, stored = await propagate(stack, upod("foo", "test-ns"))
    w = await stack.store.watch(
        stack.ns_key("test-ns"), ListOptions(resource_version=str(rv(stored)), recursive=True)
    )
    total = 21
    for i in range(total):
        await upsert(stack.store, stack.key("test-ns", f"foo-{i}"), upod(f"foo-{i}", "test-ns"))
    w.stop()
    watched = [name_of(ev.object) for ev in await expect_end(w)]
    assert watched == [f"foo-{i}" for i in range(len(watched))]
    assert len(watched) >= 10, watched


async def test_run_test_watch_error(stack: Stack) -> None:
    """`RunTestWatchError`: a value that cannot be decoded ends the watch with an ERROR.

    Upstream injects a failing transformer into the etcd3 store; here the stored value
    itself is undecodable, written behind the store's back.
    """
    skip_on_cache(
        stack,
        "RunTestWatchError",
        "upstream runs it on the etcd3 store only; a cache's reflector, not its watchers, "
        "decodes values",
    )
    listed = await stack.store.get_list(
        stack.prefix, ListOptions(resource_version="0", recursive=True)
    )
    key = stack.key("test-ns", "foo")
    res = await stack.kv.create(stack.bottom_key(key), b"\x00not an object")
    assert res.succeeded
    async with await stack.store.watch(
        key, ListOptions(resource_version=str(listed.resource_version))
    ) as w:
        ev = await next_event(w, bookmarks=True)
        assert ev.type == ERROR, ev
        assert ev.object.get("kind") == "Status" and ev.object.get("code") == 500
        assert "not an object" not in str(ev.object)


async def test_run_test_watch_context_cancel(stack: Stack) -> None:
    """`RunTestWatchContextCancel`: a watch whose consumer is cancelled (Go: a cancelled
    context) is closed, not an error: its stream ends with no event."""
    watches: list[Watch] = []

    async def consume() -> None:
        async with await stack.store.watch(
            stack.key("not-existing", "x"), ListOptions(resource_version="0")
        ) as w:
            watches.append(w)
            async for _ev in w:
                pass

    task = asyncio.ensure_future(consume())
    for _ in range(1000):
        if watches:
            break
        await asyncio.sleep(0.01)
    assert watches, "the watch was not established"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await expect_end(watches[0]) == []


async def test_run_test_watcher_timeout(stack: Stack) -> None:
    """`RunTestWatcherTimeout`: 50 watchers that never read do not hold up one that does.

    Upstream also bounds the elapsed time; no test here measures time, and every event
    must arrive within the suite's bounded wait instead.
    """
    listed = await stack.store.get_list(stack.prefix, ListOptions(recursive=True))
    opts = ListOptions(resource_version=str(listed.resource_version), recursive=True)
    idle = [await stack.store.watch(stack.ns_key("test-ns"), opts) for _ in range(50)]
    try:
        async with await stack.store.watch(stack.ns_key("test-ns"), opts) as reading:
            for i in range(22):
                out = await stack.store.create(
                    stack.key("test-ns", f"foo-{i}"), upod(f"foo-{i}", "test-ns")
                )
                await expect_event(reading, ADDED, out)
    finally:
        for w in idle:
            w.stop()


async def test_run_test_watch_initialization_signal(stack: Stack) -> None:
    """`RunTestWatchInitializationSignal`: Go-specific. Upstream checks that `Watch`
    signals API Priority and Fairness (through the request context) once the watch is
    initialized; here `watch()` returns only once the watch is registered, which the
    fence below shows: the first write after it returns is delivered."""
    key, stored = await propagate(stack, upod("foo", "test-ns"))
    async with await stack.store.watch(key, ListOptions(resource_version=str(rv(stored)))) as w:
        out = await upsert(stack.store, key, upod("foo", "test-ns", phase="Running"))
        await expect_event(w, MODIFIED, out)


# =======================================================================================
# bookmarks and progress


async def test_run_optional_test_progress_notify(stack: Stack) -> None:
    """`RunOptionalTestProgressNotify`: `progress_notify` alone (no
    `allow_watch_bookmarks`) makes an idle watch get a BOOKMARK, not older than where it
    started, carrying nothing but its `resourceVersion`."""
    key = stack.key("test-ns", "name")
    out = await stack.store.create(key, upod("name", "test-ns"))
    # Upstream's `increaseRV`: a write elsewhere, so the watch is not from the future.
    await stack.store.create(stack.key("test-ns", "other"), upod("other", "test-ns"))
    async with await stack.store.watch(
        key, ListOptions(resource_version=str(rv(out)), progress_notify=True)
    ) as w:
        ev = await next_event(w, bookmarks=True)
        assert ev.type == BOOKMARK, ev
        assert rv(ev.object) >= rv(out)
        assert is_bookmark_stub(ev.object), ev.object


@pytest.mark.parametrize("allow", [False, True], ids=["allowWatchBookmarks=false", "true"])
async def test_run_test_watch_dispatch_bookmark_events(stack: Stack, allow: bool) -> None:
    """`RunTestWatchDispatchBookmarkEvents`: a watch allowing bookmarks gets one while
    the writes are elsewhere; one not allowing them never does.

    Upstream expects bookmarks from the cacher only (`expectedWatchBookmarks`); every
    stack sends them here, since the store asks its backend for progress notifications.
    Upstream checks nothing when bookmarks are not allowed; here a progress request and
    then a fence write must not be preceded by a BOOKMARK.
    """
    key, stored = await propagate(stack, upod("foo", "test-ns"))
    async with await stack.store.watch(
        key, ListOptions(resource_version=str(rv(stored)), allow_watch_bookmarks=allow)
    ) as w:
        other_ns = f"other-ns-{int(allow)}"
        await stack.store.create(stack.key(other_ns, "foo"), upod("foo", other_ns))
        if allow:
            ev = await next_event(w, bookmarks=True)
            assert ev.type == BOOKMARK, ev
            assert rv(ev.object) >= rv(stored)
        else:
            await stack.store.request_watch_progress()
            out = await upsert(stack.store, key, upod("foo", "test-ns", phase="Running"))
            await expect_event(w, MODIFIED, out)


async def test_run_test_optional_watch_bookmarks_with_correct_resource_version(
    stack: Stack,
) -> None:
    """`RunTestOptionalWatchBookmarksWithCorrectResourceVersion`: while 100 objects are
    created, every event's revision is above the last one seen, every bookmark's at
    least the last one, and at least one bookmark comes."""
    listed = await stack.store.get_list(stack.prefix, ListOptions(recursive=True))
    total = 100

    async def writer() -> None:
        for i in range(total):
            await stack.store.create(stack.key("test-ns", f"foo-{i}"), upod(f"foo-{i}", "test-ns"))
            await asyncio.sleep(0.01)

    async with await stack.store.watch(
        stack.ns_key("test-ns"),
        ListOptions(
            resource_version=str(listed.resource_version),
            allow_watch_bookmarks=True,
            recursive=True,
        ),
    ) as w:
        task = asyncio.ensure_future(writer())
        try:
            last, added, bookmarks = 0, 0, 0
            while added < total or bookmarks == 0:
                ev = await next_event(w, within=3 * TIMEOUT, bookmarks=True)
                if ev.type == BOOKMARK:
                    bookmarks += 1
                    assert rv(ev.object) >= last, (rv(ev.object), last)
                else:
                    assert ev.type == ADDED, ev
                    added += 1
                    assert rv(ev.object) > last, (rv(ev.object), last)
                last = rv(ev.object)
            await task
        finally:
            task.cancel()


# =======================================================================================
# RunTestClusterScopedWatch / RunTestNamespaceScopedWatch


@dataclass(frozen=True)
class ScopedCase:
    field: str
    steps: list[tuple[dict[str, Any], EventType | None]]
    name: str = ""
    namespace: str = ""
    recursive: bool = True


def _p(name: str, ns: str = "") -> dict[str, Any]:
    return upod(name, ns)


def _upd(name: str, ns: str = "") -> dict[str, Any]:
    return upod(name, ns, phase="Running")


def _asg(name: str, ns: str, node: str) -> dict[str, Any]:
    return upod(name, ns, node=node)


CLUSTER_CASES: dict[str, ScopedCase] = {
    "request without name, without field selector": ScopedCase(
        "",
        [
            (_p("t1-foo1"), ADDED),
            (_upd("t1-foo1"), MODIFIED),
            (_asg("t1-foo2", "", "t1-bar1"), ADDED),
        ],
    ),
    "request without name, field selector with spec.nodeName": ScopedCase(
        "spec.nodeName=t2-bar1", [(_p("t2-foo1"), None), (_asg("t2-foo1", "", "t2-bar1"), ADDED)]
    ),
    "request without name, field selector with spec.nodeName to filter out watch": ScopedCase(
        "spec.nodeName!=t3-bar1",
        [
            (_p("t3-foo1"), ADDED),
            (_p("t3-foo2"), ADDED),
            (_upd("t3-foo1"), MODIFIED),
            (_asg("t3-foo1", "", "t3-bar1"), DELETED),
        ],
    ),
    "request with name, field selector with metadata.name": ScopedCase(
        "metadata.name=t4-foo1",
        [
            (_p("t4-foo1"), ADDED),
            (_p("t4-foo2"), None),
            (_upd("t4-foo1"), MODIFIED),
            (_upd("t4-foo2"), None),
        ],
        name="t4-foo1",
        recursive=False,
    ),
    "request with name, field selector with metadata.name and spec.nodeName": ScopedCase(
        "metadata.name=t5-foo1,spec.nodeName=t5-bar1",
        [
            (_p("t5-foo1"), None),
            (_p("t5-foo2"), None),
            (_upd("t5-foo1"), None),
            (_upd("t5-foo2"), None),
            (_asg("t5-foo1", "", "t5-bar1"), ADDED),
        ],
        name="t5-foo1",
        recursive=False,
    ),
    "request with name, metadata.name, spec.nodeName to filter out watch": ScopedCase(
        "spec.nodeName!=t6-bar1,metadata.name=t6-foo1",
        [
            (_p("t6-foo1"), ADDED),
            (_p("t6-foo2"), None),
            (_upd("t6-foo1"), MODIFIED),
            (_asg("t6-foo1", "", "t6-bar1"), DELETED),
            (_asg("t6-foo2", "", "t6-bar1"), None),
        ],
        name="t6-foo1",
        recursive=False,
    ),
}

NAMESPACED_CASES: dict[str, ScopedCase] = {
    "t1 without name, without namespace, without field selector": ScopedCase(
        "",
        [
            (_p("t1-foo1", "t1-ns1"), ADDED),
            (_p("t1-foo2", "t1-ns2"), ADDED),
            (_upd("t1-foo1", "t1-ns1"), MODIFIED),
            (_upd("t1-foo2", "t1-ns2"), MODIFIED),
        ],
    ),
    "t2 without name, without namespace, field selector with metadata.namespace": ScopedCase(
        "metadata.namespace=t2-ns1",
        [
            (_p("t2-foo1", "t2-ns1"), ADDED),
            (_p("t2-foo1", "t2-ns2"), None),
            (_upd("t2-foo1", "t2-ns1"), MODIFIED),
            (_upd("t2-foo1", "t2-ns2"), None),
        ],
    ),
    "t3 without name, without namespace, field selector with spec.nodename": ScopedCase(
        "spec.nodeName=t3-bar1",
        [
            (_p("t3-foo1", "t3-ns1"), None),
            (_p("t3-foo2", "t3-ns2"), None),
            (_asg("t3-foo1", "t3-ns1", "t3-bar1"), ADDED),
            (_asg("t3-foo2", "t3-ns2", "t3-bar1"), ADDED),
        ],
    ),
    "t4 without name, without namespace, spec.nodename filtering out": ScopedCase(
        "spec.nodeName!=t4-bar1",
        [
            (_p("t4-foo1", "t4-ns1"), ADDED),
            (_p("t4-foo2", "t4-ns1"), ADDED),
            (_upd("t4-foo1", "t4-ns1"), MODIFIED),
            (_asg("t4-foo1", "t4-ns1", "t4-bar1"), DELETED),
        ],
    ),
    "t5 without name, with namespace, without field selector": ScopedCase(
        "",
        [
            (_p("t5-foo1", "t5-ns1"), ADDED),
            (_p("t5-foo1", "t5-ns2"), None),
            (_p("t5-foo2", "t5-ns1"), ADDED),
            (_upd("t5-foo1", "t5-ns1"), MODIFIED),
            (_upd("t5-foo1", "t5-ns2"), None),
        ],
        namespace="t5-ns1",
    ),
    "t6 without name, with namespace, matching metadata.namespace": ScopedCase(
        "metadata.namespace=t6-ns1",
        [
            (_p("t6-foo1", "t6-ns1"), ADDED),
            (_p("t6-foo1", "t6-ns2"), None),
            (_upd("t6-foo1", "t6-ns1"), MODIFIED),
        ],
        namespace="t6-ns1",
    ),
    "t7 without name, with namespace, non-matching metadata.namespace": ScopedCase(
        "metadata.namespace=t7-ns2",
        [
            (_p("t7-foo1", "t7-ns1"), None),
            (_p("t7-foo1", "t7-ns2"), None),
            (_upd("t7-foo1", "t7-ns1"), None),
            (_upd("t7-foo1", "t7-ns2"), None),
        ],
        namespace="t7-ns1",
    ),
    "t8 without name, with namespace, field selector with spec.nodename": ScopedCase(
        "spec.nodeName=t8-bar2",
        [
            (_p("t8-foo1", "t8-ns1"), None),
            (_asg("t8-foo1", "t8-ns1", "t8-bar1"), None),
            (_asg("t8-foo1", "t8-ns2", "t8-bar2"), None),
            (_asg("t8-foo1", "t8-ns1", "t8-bar2"), ADDED),
        ],
        namespace="t8-ns1",
    ),
    "t9 without name, with namespace, spec.nodename filtering out": ScopedCase(
        "spec.nodeName!=t9-bar1",
        [
            (_p("t9-foo1", "t9-ns1"), None),
            (_p("t9-foo1", "t9-ns2"), ADDED),
            (_asg("t9-foo1", "t9-ns2", "t9-bar1"), DELETED),
            (_asg("t9-foo1", "t9-ns2", "t9-bar2"), ADDED),
        ],
        namespace="t9-ns2",
    ),
    "t10 with name, without namespace, field selector with metadata.name": ScopedCase(
        "metadata.name=t10-foo1",
        [
            (_p("t10-foo1", "t10-ns1"), ADDED),
            (_p("t10-foo1", "t10-ns2"), ADDED),
            (_p("t10-foo2", "t10-ns1"), None),
            (_upd("t10-foo1", "t10-ns1"), MODIFIED),
            (_asg("t10-foo1", "t10-ns1", "t10-bar1"), MODIFIED),
        ],
        name="t10-foo1",
    ),
    "t11 with name, without namespace, metadata.name and metadata.namespace": ScopedCase(
        "metadata.name=t11-foo1,metadata.namespace=t11-ns1",
        [
            (_p("t11-foo1", "t11-ns1"), ADDED),
            (_p("t11-foo2", "t11-ns1"), None),
            (_p("t11-foo1", "t11-ns2"), None),
            (_upd("t11-foo1", "t11-ns1"), MODIFIED),
            (_asg("t11-foo1", "t11-ns1", "t11-bar1"), MODIFIED),
        ],
        name="t11-foo1",
    ),
    "t12 with name, without namespace, metadata.name and spec.nodeName": ScopedCase(
        "metadata.name=t12-foo1,spec.nodeName=t12-bar1",
        [
            (_p("t12-foo1", "t12-ns1"), None),
            (_upd("t12-foo1", "t12-ns1"), None),
            (_asg("t12-foo1", "t12-ns1", "t12-bar1"), ADDED),
        ],
        name="t12-foo1",
    ),
    "t15 with name, without namespace, metadata.name, spec.nodeName filtering out": ScopedCase(
        "spec.nodeName!=t15-bar1,metadata.name=t15-foo1",
        [
            (_p("t15-foo1", "t15-ns1"), ADDED),
            (_p("t15-foo2", "t15-ns1"), None),
            (_upd("t15-foo1", "t15-ns1"), MODIFIED),
            (_asg("t15-foo1", "t15-ns1", "t15-bar1"), DELETED),
            (_asg("t15-foo1", "t15-ns1", "t15-bar2"), ADDED),
        ],
        name="t15-foo1",
    ),
    "t16 with name, with namespace, metadata.name": ScopedCase(
        "metadata.name=t16-foo1",
        [
            (_p("t16-foo1", "t16-ns1"), ADDED),
            (_p("t16-foo2", "t16-ns1"), None),
            (_upd("t16-foo1", "t16-ns1"), MODIFIED),
            (_asg("t16-foo1", "t16-ns1", "t16-bar1"), MODIFIED),
        ],
        name="t16-foo1",
        namespace="t16-ns1",
        recursive=False,
    ),
    "t17 with name, with namespace, metadata.name and metadata.namespace": ScopedCase(
        "metadata.name=t17-foo2,metadata.namespace=t17-ns1",
        [
            (_p("t17-foo1", "t17-ns1"), None),
            (_p("t17-foo2", "t17-ns1"), ADDED),
            (_upd("t17-foo1", "t17-ns1"), None),
            (_asg("t17-foo2", "t17-ns1", "t17-bar1"), MODIFIED),
        ],
        name="t17-foo2",
        namespace="t17-ns1",
        recursive=False,
    ),
    "t18 with name, with namespace, metadata.name, metadata.namespace, spec.nodename": ScopedCase(
        "metadata.name=t18-foo1,metadata.namespace=t18-ns1,spec.nodeName=t18-bar1",
        [
            (_p("t18-foo1", "t18-ns1"), None),
            (_p("t18-foo2", "t18-ns1"), None),
            (_p("t18-foo1", "t18-ns2"), None),
            (_upd("t18-foo1", "t18-ns1"), None),
            (_asg("t18-foo1", "t18-ns1", "t18-bar1"), ADDED),
        ],
        name="t18-foo1",
        namespace="t18-ns1",
        recursive=False,
    ),
    "t19 with name, with namespace, spec.nodename filtering out": ScopedCase(
        "spec.nodeName!=t19-bar1,metadata.name=t19-foo2,metadata.namespace=t19-ns1",
        [
            (_p("t19-foo1", "t19-ns1"), None),
            (_p("t19-foo2", "t19-ns2"), None),
            (_p("t19-foo2", "t19-ns1"), ADDED),
            (_upd("t19-foo2", "t19-ns1"), MODIFIED),
            (_asg("t19-foo2", "t19-ns1", "t19-bar1"), DELETED),
        ],
        name="t19-foo2",
        namespace="t19-ns1",
        recursive=False,
    ),
}


async def run_scoped_case(stack: Stack, case: ScopedCase, *, namespaced: bool) -> None:
    """The body both upstream functions share: list for a revision, watch the requested
    key from it, write each step and check the event it must (or must not) cause."""
    predicate = pred(field=case.field)
    watch_key = stack.prefix
    if namespaced and case.namespace:
        watch_key += f"/{case.namespace}"
        if case.name:
            watch_key += f"/{case.name}"
    elif not namespaced and case.name:
        watch_key += f"/{case.name}"
    listed = await stack.store.get_list(
        stack.prefix, ListOptions(predicate=predicate, recursive=True)
    )
    w = await stack.store.watch(
        watch_key,
        ListOptions(
            resource_version=str(listed.resource_version),
            predicate=predicate,
            recursive=case.recursive,
        ),
    )
    current: dict[str, dict[str, Any]] = {}
    for obj, expect in case.steps:
        meta = obj["metadata"]
        ident = f"{meta.get('namespace', '')}/{meta['name']}"
        key = stack.key(meta["namespace"], meta["name"]) if namespaced else None
        out = await upsert(stack.store, key or f"{stack.prefix}/{meta['name']}", obj)
        expected = out
        if expect is DELETED:
            expected = deleted_as(current.pop(ident), out)
        else:
            current[ident] = out
        if expect is not None:
            await expect_event(w, expect, expected)
    await expect_stop(w)


@pytest.mark.parametrize("case", list(CLUSTER_CASES))
async def test_run_test_cluster_scoped_watch(stack: Stack, case: str) -> None:
    """`RunTestClusterScopedWatch`: watches of a cluster-scoped resource (keys
    `<prefix>/<name>`), all of it or one name, with field selectors."""
    await run_scoped_case(stack, CLUSTER_CASES[case], namespaced=False)


@pytest.mark.parametrize("case", list(NAMESPACED_CASES))
async def test_run_test_namespace_scoped_watch(stack: Stack, case: str) -> None:
    """`RunTestNamespaceScopedWatch`: watches of a namespaced resource, across
    namespaces, one namespace or one object, with field selectors."""
    await run_scoped_case(stack, NAMESPACED_CASES[case], namespaced=True)


# =======================================================================================
# the cacher's consistency checker (pkg/storage/cacher/consistency)


async def digest_of(
    store: Storage, prefix: str, resource_version: str, limit: int
) -> tuple[str, int, list[tuple[str, str, str]]]:
    """(digest, revision, items) of a full list of `prefix`, as upstream's
    `calculateStoreDigest`: at "0" (NotOlderThan) for the cache, Exact at the cache's
    revision for the store, paginated by `limit`, hashing namespace/name/resourceVersion
    in list order."""
    opts = ListOptions(
        resource_version=resource_version,
        resource_version_match=NOT_OLDER if resource_version == "0" else EXACT,
        recursive=True,
        limit=limit,
    )
    h = hashlib.sha256()
    items: list[tuple[str, str, str]] = []
    revision = 0
    while True:
        page = await store.get_list(prefix, opts)
        revision = revision or page.resource_version
        for obj in page.items:
            meta = obj["metadata"]
            item = (meta.get("namespace", ""), meta["name"], meta["resourceVersion"])
            items.append(item)
            h.update("/".join(item).encode() + b"\n")
        if not page.continue_:
            return h.hexdigest(), revision, items
        opts = ListOptions(continue_=page.continue_, recursive=True, limit=limit)


async def test_cacher_consistency_checker(stack: Stack) -> None:
    """The cacher's consistency checker (upstream `consistency.Checker.CalculateDigests`):
    the cache's content at its revision equals the store's at exactly that revision,
    item for item (namespace, name, resourceVersion), also after updates, deletes and
    writes made behind the cache's back."""
    if not stack.cached:
        pytest.skip("consistency.Checker: compares a cache with its store; no cache here")
    for i in range(7):
        await stack.store.create(stack.key(f"ns-{i % 3}", f"p{i}"), upod(f"p{i}", f"ns-{i % 3}"))
    await upsert(stack.store, stack.key("ns-1", "p1"), upod("p1", "ns-1", phase="Running"))
    await stack.store.delete(stack.key("ns-2", "p2"))
    behind = await stack.bottom.create(
        stack.bottom_key(stack.key("ns-0", "late")), upod("late", "ns-0")
    )
    # The checker runs on a live cache; a cache that has not yet reached the last write
    # is still consistent at its own revision, so wait for it only to make the check
    # cover the write made behind its back.
    for _ in range(int(TIMEOUT / 0.1)):
        cache = await digest_of(stack.store, stack.prefix, "0", 0)
        if cache[1] >= rv(behind):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the cache never reached the write made behind its back")
    cache_digest, cache_rv, cache_items = cache
    bottom_prefix = stack.bottom_key(stack.prefix)
    store_digest, store_rv, store_items = await digest_of(
        stack.bottom, bottom_prefix, str(cache_rv), 3
    )
    assert store_rv == cache_rv
    assert store_items == cache_items
    assert store_digest == cache_digest
    assert ("ns-0", "late", str(rv(behind))) in cache_items
    assert not any(name == "p2" for _ns, name, _rv in cache_items)
