"""Watch-list through the tenancy layer: the initial state is the caller's scope only.

One shared cache holds every project's objects; a watch-list's initial events are read
from it, so they must be confined exactly as a list is: same-named objects in other
projects and in root never appear, and the closing bookmark says nothing about scopes.
"""

from __future__ import annotations

import asyncio

import pytest

from tenantstore.storage import EventType, ListOptions, Storage, WatchEvent
from tenantstore.storage.events import INITIAL_EVENTS_END_ANNOTATION
from tenantstore.tenancy import SharedStorageFactory, all_projects, project_scope

from .conftest import obj

SCOPES: list[str | None] = ["p1", "p2", None]


def _who(scope: str | None) -> str:
    return scope or "<root>"


async def _initial(
    store: Storage, key: str, opts: ListOptions
) -> tuple[list[WatchEvent], WatchEvent]:
    """The initial events and the closing bookmark of a watch-list (then stopped)."""
    events: list[WatchEvent] = []
    async with await store.watch(key, opts) as w:
        async with asyncio.timeout(10):
            async for ev in w:
                if ev.type is EventType.BOOKMARK:
                    annotations = ev.object["metadata"].get("annotations") or {}
                    if annotations.get(INITIAL_EVENTS_END_ANNOTATION) == "true":
                        return events, ev
                    continue
                events.append(ev)
    raise AssertionError(f"the watch ended before its initial events did: {events}")


@pytest.mark.parametrize("start", ["", "0"])
async def test_watch_list_initial_events_confined_to_scope(
    factory: SharedStorageFactory, prefix: str, start: str
) -> None:
    store = factory.storage(prefix)
    last_rv = 0
    for scope in SCOPES:
        with project_scope(scope):
            for name in ("a", "b"):
                created = await store.create(f"{prefix}/ns/{name}", obj(name, who=_who(scope)))
                last_rv = int(created["metadata"]["resourceVersion"])
    # A read not older than the last write, so the shared cache has every object.
    with project_scope("p1"):
        await store.get_list(prefix, ListOptions(resource_version=str(last_rv), recursive=True))
    opts = ListOptions(
        resource_version=start, recursive=True, allow_watch_bookmarks=True, send_initial_events=True
    )
    for scope in SCOPES:
        with project_scope(scope):
            events, end = await _initial(store, prefix, opts)
        assert [e.type for e in events] == [EventType.ADDED, EventType.ADDED]
        assert [e.object["data"]["who"] for e in events] == [_who(scope)] * 2, scope
        assert [e.object["metadata"]["name"] for e in events] == ["a", "b"]
        # The closing bookmark: a revision and the annotation, nothing naming a scope.
        assert end.object["metadata"] == {
            "resourceVersion": end.object["metadata"]["resourceVersion"],
            "annotations": {INITIAL_EVENTS_END_ANNOTATION: "true"},
        }
        assert int(end.object["metadata"]["resourceVersion"]) >= last_rv
        assert "/clusters/" not in str(end.object) and "/root" not in str(end.object)
    # A project that has nothing sees nothing, and still gets its bookmark.
    with project_scope("p9"):
        events, _end = await _initial(store, prefix, opts)
    assert events == []
    # The all-projects scope (read-only) sees every scope's objects.
    with all_projects():
        events, _end = await _initial(store, prefix, opts)
    assert sorted(e.object["data"]["who"] for e in events) == sorted(
        [_who(s) for s in SCOPES for _ in ("a", "b")]
    )
