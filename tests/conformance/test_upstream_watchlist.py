"""Conformance: watch-list streaming, ported from upstream's `watcher_tests.go`.

Upstream functions ported here (`k8s.io/apiserver/pkg/storage/testing/watcher_tests.go`):
`RunWatchSemantics`, `RunWatchSemanticInitialEventsExtended`,
`RunSendInitialEventsBackwardCompatibility` and `RunWatchListMatchSingle`, each over
every stack (`stack` fixture). A watch-list (`send_initial_events=True`) sends the state
as ADDED events, then (bookmarks allowed) one BOOKMARK annotated
`k8s.io/initial-events-end: "true"` at the revision the state is consistent at, then the
changes after it.

Where the port differs from the Go test, a comment says why. The one difference shared
by every case: upstream runs on a fresh store, so its `RV=1` is "a revision before every
write of the test"; the stacks here share one etcd across the session (revision 1 is
long compacted), so `RV=1` is the store's revision just before the scenario's writes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tenantstore.storage import (
    EventType,
    ListOptions,
    ResourceVersionMatch,
    TooLargeResourceVersionError,
    Watch,
    WatchEvent,
)
from tenantstore.storage.events import INITIAL_EVENTS_END_ANNOTATION

from .conftest import Stack
from .helpers import TIMEOUT, expect_end, fence, name_of, next_event, pod, rv

ADDED, BOOKMARK = EventType.ADDED, EventType.BOOKMARK


def make_pod(suffix: str, namespace: str) -> dict[str, Any]:
    """Upstream's `makePod`: a pod named `pod-<suffix>`."""
    return pod(f"pod-{suffix}", namespace)


def is_initial_events_end(ev: WatchEvent) -> bool:
    annotations = ev.object.get("metadata", {}).get("annotations") or {}
    return ev.type is BOOKMARK and annotations.get(INITIAL_EVENTS_END_ANNOTATION) == "true"


def assert_initial_events_end(ev: WatchEvent, min_rv: int, exact_rv: int | None = None) -> None:
    """`ev` is the closing bookmark: annotated, at least `min_rv` (or exactly `exact_rv`),
    and carrying nothing else (no object data, nothing naming a scope or a storage key)."""
    assert is_initial_events_end(ev), f"expected the initial-events-end bookmark, got {ev}"
    got = rv(ev.object)
    assert got >= min_rv, f"initial-events-end bookmark at {got}, before {min_rv}"
    if exact_rv is not None:
        assert got == exact_rv, f"initial-events-end bookmark at {got}, want {exact_rv}"
    assert set(ev.object) <= {"metadata", "kind", "apiVersion"}, ev.object
    assert ev.object["metadata"] == {
        "resourceVersion": str(got),
        "annotations": {INITIAL_EVENTS_END_ANNOTATION: "true"},
    }


async def next_any(w: Watch, *, skip_plain_bookmarks: bool) -> WatchEvent:
    """The next event; plain (unannotated) bookmarks skipped if asked, the closing one
    never, so a misplaced initial-events-end bookmark always shows."""
    while True:
        ev = await next_event(w, bookmarks=True)
        if skip_plain_bookmarks and ev.type is BOOKMARK and not is_initial_events_end(ev):
            continue
        return ev


async def expect_added_in_order(
    w: Watch, created: list[dict[str, Any]], *, skip_plain_bookmarks: bool
) -> None:
    """Upstream's `TestCheckResultsInStrictOrder` for ADDED events of `created`."""
    for obj in created:
        ev = await next_any(w, skip_plain_bookmarks=skip_plain_bookmarks)
        assert ev.type is ADDED, f"expected ADDED {name_of(obj)}, got {ev.type} {ev.object}"
        assert ev.object == obj, f"expected {obj}, got {ev.object}"


async def expect_no_more(stack: Stack, w: Watch, namespace: str) -> None:
    """Upstream's `TestCheckNoMoreResultsWithIgnoreFunc` (bookmarks ignored), as a fence:
    the next non-bookmark event must be a write made now, so nothing else was pending;
    no bookmark in between may claim to end the initial events again."""
    key = stack.key(namespace, "pod-fence")
    created = await stack.store.create(key, make_pod("fence", namespace))
    ev = await next_any(w, skip_plain_bookmarks=True)
    assert ev.type is ADDED and ev.object == created, f"expected the fence, got {ev}"


# =======================================================================================
# RunWatchSemantics


def _semantics() -> list[Any]:
    """Upstream's scenario table, in its order: for each resourceVersion (unset, "0", "1",
    the current one) the four (allowWatchBookmarks, sendInitialEvents) pairs, then the two
    legacy watches. Initial events come with `sendInitialEvents=true` (the state) or from
    "1" (the history after it); the closing bookmark only with both flags true."""
    starts = [("unset", ""), ("0", "0"), ("1", "before"), ("useCurrentRV", "current")]
    flags = [(True, True), (True, False), (False, False), (False, True)]
    cases = []
    for label, start in starts:
        for bookmarks, send in flags:
            name = (
                f"allowWatchBookmarks={str(bookmarks).lower()}, "
                f"sendInitialEvents={str(send).lower()}, RV={label}"
            )
            initial = send or start == "before"
            cases.append(pytest.param(bookmarks, send, start, initial, send and bookmarks, id=name))
    cases.append(pytest.param(False, None, "0", True, False, id="legacy, RV=0"))
    cases.append(pytest.param(False, None, "", True, False, id="legacy, RV=unset"))
    return cases


@pytest.mark.parametrize(
    ("bookmarks", "send", "start", "expect_initial", "expect_bookmark"),
    _semantics(),
)
async def test_run_watch_semantics(
    stack: Stack,
    bookmarks: bool,
    send: bool | None,
    start: str,
    expect_initial: bool,
    expect_bookmark: bool,
) -> None:
    """Upstream `RunWatchSemantics`: every (resourceVersion, allowWatchBookmarks,
    sendInitialEvents) combination, the initial events in strict order, the closing
    bookmark at least at the last initial pod, then only the live changes."""
    ns = "ns-semantics"
    # A write outside the watched namespace first, so that "before" is a real revision
    # (a fresh SQLite store is at 0, which would mean "any state" instead).
    await stack.store.create(stack.key("ns-other", "pod-0"), make_pod("0", "ns-other"))
    before = await stack.store.current_resource_version()
    created = [
        await stack.store.create(stack.key(ns, f"pod-{i}"), make_pod(str(i), ns)) for i in (1, 2, 3)
    ]
    # As upstream: a list not older than the last write, so a cache has seen the pods
    # and the watch below is deterministic.
    listed = await stack.store.get_list(
        stack.ns_key(ns),
        ListOptions(
            resource_version=str(rv(created[-1])),
            resource_version_match=ResourceVersionMatch.NOT_OLDER_THAN,
            recursive=True,
        ),
    )
    assert len(listed.items) == len(created)
    if start == "before":
        start = str(before)
    elif start == "current":
        start = str(await stack.store.current_resource_version())

    opts = ListOptions(
        resource_version=start,
        recursive=True,
        allow_watch_bookmarks=bookmarks,
        send_initial_events=send,
    )
    async with await stack.store.watch(stack.ns_key(ns), opts) as w:
        # Periodic bookmarks may arrive at any time once the initial events are out; the
        # initial events themselves come first and in key order.
        if expect_initial:
            await expect_added_in_order(w, created, skip_plain_bookmarks=not expect_bookmark)
        if expect_bookmark:
            ev = await next_event(w, bookmarks=True)
            assert_initial_events_end(ev, rv(created[-1]))

        later = [
            await stack.store.create(stack.key(ns, f"pod-{i}"), make_pod(str(i), ns))
            for i in (4, 5)
        ]
        await expect_added_in_order(w, later, skip_plain_bookmarks=True)
        await expect_no_more(stack, w, ns)


# =======================================================================================
# RunWatchSemanticInitialEventsExtended


async def test_run_watch_semantic_initial_events_extended(stack: Stack) -> None:
    """Upstream `RunWatchSemanticInitialEventsExtended`: the closing bookmark of a
    consistent watch-list carries the store's revision, moved here by a write to another
    namespace that the watch does not see."""
    ns = "ns-foo"
    initial = [
        await stack.store.create(stack.key(ns, f"pod-{i}"), make_pod(str(i), ns))
        for i in range(1, 6)
    ]
    other = await stack.store.create(
        stack.key("other-ns-foo", "pod-1"), make_pod("1", "other-ns-foo")
    )
    opts = ListOptions(recursive=True, allow_watch_bookmarks=True, send_initial_events=True)
    async with await stack.store.watch(stack.ns_key(ns), opts) as w:
        await expect_added_in_order(w, initial, skip_plain_bookmarks=False)
        ev = await next_event(w, bookmarks=True)
        assert_initial_events_end(ev, rv(other), exact_rv=rv(other))
        await expect_no_more(stack, w, ns)


# =======================================================================================
# RunWatchListMatchSingle


async def test_run_watch_list_match_single(stack: Stack) -> None:
    """Upstream `RunWatchListMatchSingle`: a field selector narrows the initial events to
    the one matching pod; the closing bookmark still carries the revision of the last
    write under the watched prefix, matching or not."""
    ns = "ns-foo"
    wanted = await stack.store.create(stack.key(ns, "pod-1"), make_pod("1", ns))
    last: dict[str, Any] = {}
    for i in range(2, 6):
        last = await stack.store.create(stack.key(ns, f"pod-{i}"), make_pod(str(i), ns))
    opts = ListOptions(
        recursive=True,
        allow_watch_bookmarks=True,
        send_initial_events=True,
        predicate=_name_selector("pod-1"),
    )
    async with await stack.store.watch(stack.prefix, opts) as w:
        await expect_added_in_order(w, [wanted], skip_plain_bookmarks=False)
        ev = await next_event(w, bookmarks=True)
        assert_initial_events_end(ev, rv(last), exact_rv=rv(last))
        # Upstream's "no more results": a fence that matches the selector.
        await stack.store.guaranteed_update(
            stack.key(ns, "pod-2"), lambda cur: {**cur, "spec": {"nodeName": "n2"}}
        )
        updated = await stack.store.guaranteed_update(
            stack.key(ns, "pod-1"), lambda cur: {**cur, "spec": {"nodeName": "n1"}}
        )
        ev = await next_any(w, skip_plain_bookmarks=True)
        assert ev.type is EventType.MODIFIED and ev.object == updated, ev


def _name_selector(name: str) -> Any:
    from tenantstore.storage import Predicate

    return Predicate.parse("", f"metadata.name={name}")


# =======================================================================================
# RunSendInitialEventsBackwardCompatibility


@pytest.mark.parametrize("recursive", [False, True], ids=["single-key", "recursive"])
async def test_run_send_initial_events_backward_compatibility(
    stack: Stack, recursive: bool
) -> None:
    """Upstream `RunSendInitialEventsBackwardCompatibility`: `send_initial_events=True`
    with `resource_version` "" and no bookmarks (no match either, as an old caller of the
    storage would send) still establishes a watch. Upstream only watches the resource
    prefix as a single key; the recursive case also proves the stream is live."""
    opts = ListOptions(send_initial_events=True, recursive=recursive)
    w = await stack.store.watch(stack.prefix, opts)
    try:
        if recursive:
            await fence(stack.store, w, stack.key("ns", "compat"), pod("compat"))
    finally:
        w.stop()


# =======================================================================================
# beyond upstream: what the watch-list promises that the ports above do not check


async def test_watch_list_not_older_than_survives_compaction(stack: Stack) -> None:
    """A watch-list is "not older than N": an `N` the store has compacted away is not a
    410, unlike a legacy watch from `N` (the state sent is the current one)."""
    old = await stack.store.create(stack.key("ns", "old"), pod("old"))
    newer = await stack.store.create(stack.key("ns", "newer"), pod("newer"))
    await stack.compact()
    opts = ListOptions(
        resource_version=str(rv(old)),
        resource_version_match=ResourceVersionMatch.NOT_OLDER_THAN,
        recursive=True,
        allow_watch_bookmarks=True,
        send_initial_events=True,
    )
    async with await stack.store.watch(stack.ns_key("ns"), opts) as w:
        await expect_added_in_order(w, [newer, old], skip_plain_bookmarks=False)
        assert_initial_events_end(await next_event(w, bookmarks=True), rv(newer))
        await expect_no_more(stack, w, "ns")


async def test_watch_list_empty_state_still_ends(stack: Stack) -> None:
    """An empty range still gets its closing bookmark: a client-go reflector waits for it
    to declare the (empty) list complete."""
    opts = ListOptions(recursive=True, allow_watch_bookmarks=True, send_initial_events=True)
    async with await stack.store.watch(stack.ns_key("empty"), opts) as w:
        ev = await next_event(w, bookmarks=True)
        assert_initial_events_end(ev, 0)
        await expect_no_more(stack, w, "empty")


async def test_watch_list_stop_ends_stream(stack: Stack) -> None:
    """Stopping a watch-list mid-stream ends it (nothing keeps it registered). What was
    already queued is still delivered, as any stopped watch's (`RunTestDelayedWatchDelivery`):
    at most the rest of the initial state and its closing bookmark, never a later change."""
    for i in range(3):
        await stack.store.create(stack.key("ns", f"s{i}"), pod(f"s{i}"))
    opts = ListOptions(recursive=True, allow_watch_bookmarks=True, send_initial_events=True)
    w = await stack.store.watch(stack.ns_key("ns"), opts)
    first = await next_event(w, bookmarks=True)
    w.stop()
    await stack.store.create(stack.key("ns", "after-stop"), pod("after-stop"))
    rest = await expect_end(w, TIMEOUT)
    added = [name_of(ev.object) for ev in [first, *rest] if ev.type == EventType.ADDED]
    assert added == ["s0", "s1", "s2"][: len(added)]
    assert all(ev.type in (EventType.ADDED, EventType.BOOKMARK) for ev in rest)


async def test_watch_list_from_the_future_is_too_large(stack: Stack) -> None:
    """A watch-list not older than a revision the store has not reached is a typed 504
    (retry later), raised before any event, as a list at that revision would be."""
    current = await stack.store.current_resource_version()
    opts = ListOptions(
        resource_version=str(current + 1000),
        resource_version_match=ResourceVersionMatch.NOT_OLDER_THAN,
        recursive=True,
        allow_watch_bookmarks=True,
        send_initial_events=True,
    )
    with pytest.raises(TooLargeResourceVersionError) as err:
        await stack.store.watch(stack.ns_key("ns"), opts)
    assert err.value.code == 504
