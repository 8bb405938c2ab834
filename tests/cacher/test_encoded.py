"""The cache's byte path against its dict path, on real backends (SQLite files and etcd).

`get_encoded`, `get_list_encoded` and the watch events' `encode_line` assemble responses
from the cached bytes; each must give, byte for byte, what the server made before from the
dicts the cache returns (`typed`, then `orjson.dumps`), for gets, lists (pages, continue
tokens, selectors) and watch events (selector transitions included), and a watch event
is encoded once however many watchers receive it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tenantstore.cacher import Cacher
from tenantstore.index import CachedWatchEvent, event_encodes
from tenantstore.storage import EventType, ListOptions, ObjectList, Predicate, WatchEvent
from tenantstore.storage.encoded import EncodedList
from tenantstore.store import KVStorage

KIND, API_VERSION = "Widget", "example.com/v1"


def typed(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("kind") == KIND and obj.get("apiVersion") == API_VERSION:
        return obj
    return {**obj, "kind": KIND, "apiVersion": API_VERSION}


def widget(name: str, ns: str, i: int, **labels: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "labels": labels},
        "spec": {"i": i, "text": f'é\U0001f600 "q" \\ \n\t\x01 {i}', "deep": [[{"a": [i]}]]},
    }
    if i % 3 == 0:  # some typed as the server types them, some not, some wrongly
        obj = {"apiVersion": API_VERSION, "kind": KIND, **obj}
    elif i % 3 == 1:
        obj["kind"] = "Stale"
    return obj


@pytest.fixture
async def cacher(kv: Any, key_prefix: str) -> AsyncIterator[tuple[KVStorage, Cacher, str]]:
    store = KVStorage(kv, owns_kv=False)
    prefix = f"{key_prefix}/widgets"
    cacher = Cacher(store, prefix, bookmark_interval=0)
    await cacher.start()
    await asyncio.wait_for(cacher.wait_ready(), 10)
    try:
        yield store, cacher, prefix
    finally:
        await cacher.stop()
        await store.close()


async def filled(store: KVStorage, cacher: Cacher, prefix: str, n: int = 12) -> None:
    last = ""
    for i in range(n):
        ns = "ns1" if i % 2 else "ns2"
        labels = {"tier": "a" if i % 3 else "b", "n": str(i)}
        made = await store.create(f"{prefix}/{ns}/w{i:02}", widget(f"w{i:02}", ns, i, **labels))
        last = made["metadata"]["resourceVersion"]
    # Not older than the last create: waits for the cache to have applied it.
    await cacher.get_list(prefix, ListOptions(resource_version=last, recursive=True))
    assert cacher.resource_version >= int(last)


def list_bytes(listed: ObjectList) -> bytes:
    return orjson.dumps([typed(o) for o in listed.items])


async def test_get_encoded_equals_dict_path(cacher: tuple[KVStorage, Cacher, str]) -> None:
    store, c, prefix = cacher
    await filled(store, c, prefix, 6)
    for i in range(6):
        key = f"{prefix}/{'ns1' if i % 2 else 'ns2'}/w{i:02}"
        got = await c.get_encoded(key, resource_version="0", kind=KIND, api_version=API_VERSION)
        assert isinstance(got, bytes)  # served from the cache's bytes
        obj = await c.get(key, resource_version="0")
        assert obj is not None
        assert got == orjson.dumps(typed(obj))
        # ... which is also what the store itself returns for the object.
        assert got == orjson.dumps(typed(await store.get(key)))  # type: ignore[arg-type]
    # A consistent get is the store's: a dict, as before.
    key = f"{prefix}/ns2/w00"
    assert isinstance(await c.get_encoded(key, kind=KIND, api_version=API_VERSION), dict), (
        "consistent GETs are delegated to the store"
    )


@pytest.mark.parametrize(
    ("label", "field", "limit"),
    [
        ("", "", 0),
        ("", "", 5),
        ("tier=a", "", 0),
        ("tier=a", "", 3),
        ("tier in (b),n!=3", "", 2),
        ("", "metadata.namespace=ns1", 4),
        ("!missing", "metadata.name!=w04", 1),
    ],
)
async def test_list_pages_encoded_equal_dict_path(
    cacher: tuple[KVStorage, Cacher, str], label: str, field: str, limit: int
) -> None:
    store, c, prefix = cacher
    await filled(store, c, prefix)
    pred = Predicate.parse(label, field)
    token = ""
    pages = 0
    while True:
        opts = ListOptions(recursive=True, limit=limit, continue_=token, predicate=pred)
        if not token:
            opts = ListOptions(resource_version="0", recursive=True, limit=limit, predicate=pred)
        enc = await c.get_list_encoded(prefix, opts, kind=KIND, api_version=API_VERSION)
        dec = await c.get_list(prefix, opts)
        assert isinstance(enc, EncodedList)
        assert b"[" + enc.items + b"]" == list_bytes(dec)
        assert enc.count == len(dec.items)
        assert (enc.resource_version, enc.continue_, enc.remaining_item_count) == (
            dec.resource_version,
            dec.continue_,
            dec.remaining_item_count,
        )
        pages += 1
        token = enc.continue_
        if not token:
            break
    assert pages >= 1


async def test_single_object_list_encoded(cacher: tuple[KVStorage, Cacher, str]) -> None:
    store, c, prefix = cacher
    await filled(store, c, prefix, 3)
    for label in ("", "tier=b", "tier=zzz"):
        opts = ListOptions(resource_version="0", predicate=Predicate.parse(label))
        key = f"{prefix}/ns2/w00"
        enc = await c.get_list_encoded(key, opts, kind=KIND, api_version=API_VERSION)
        dec = await c.get_list(key, opts)
        assert isinstance(enc, EncodedList)
        assert b"[" + enc.items + b"]" == list_bytes(dec)


async def next_event(w: Any) -> WatchEvent:
    while True:
        ev: WatchEvent = await asyncio.wait_for(w.__anext__(), 10)
        if ev.type is not EventType.BOOKMARK:
            return ev


def dict_line(ev: WatchEvent) -> bytes:
    return orjson.dumps({"type": ev.type.value, "object": typed(ev.object)}) + b"\n"


async def test_watch_events_encoded_once_and_equal_dict_path(
    cacher: tuple[KVStorage, Cacher, str],
) -> None:
    store, c, prefix = cacher
    await filled(store, c, prefix, 2)
    everything = ListOptions(resource_version="0", recursive=True)
    selective = ListOptions(
        resource_version="0", recursive=True, predicate=Predicate.parse("tier=a")
    )
    plain = [await c.watch(prefix, everything) for _ in range(20)]
    chosen = await c.watch(prefix, selective)
    try:
        # The initial state (ADDED per object) first.
        for w in [*plain, chosen]:
            for _ in range(2 if w is not chosen else 1):
                ev = await next_event(w)
                assert isinstance(ev, CachedWatchEvent)
                assert ev.encode_line(KIND, API_VERSION) == dict_line(ev)
        key = f"{prefix}/ns1/w01"
        current = await store.get(key)
        assert current is not None
        # Matches the selector before, not after: DELETED for `chosen`, at the new revision.
        moved = {**current, "metadata": {**current["metadata"], "labels": {"tier": "b"}}}
        moved["metadata"].pop("resourceVersion")
        await store.guaranteed_update(key, lambda _cur: moved)
        before = event_encodes()
        lines = set()
        for w in plain:
            ev = await next_event(w)
            assert ev.type is EventType.MODIFIED
            lines.add(ev.encode_line(KIND, API_VERSION))
        # One event, twenty watchers: encoded once, the same bytes for all.
        assert event_encodes() - before == 1
        assert len(lines) == 1
        gone = await next_event(chosen)
        assert gone.type is EventType.DELETED
        assert gone.object["metadata"]["labels"] == {"tier": "a", "n": "1"}
        assert (
            gone.object["metadata"]["resourceVersion"] == ev.object["metadata"]["resourceVersion"]
        )
        assert isinstance(gone, CachedWatchEvent)
        assert gone.encode_line(KIND, API_VERSION) == dict_line(gone)
        assert lines == {dict_line(ev)}
        await store.delete(key)
        for w in plain:
            ev = await next_event(w)
            assert ev.type is EventType.DELETED
            assert isinstance(ev, CachedWatchEvent)
            assert ev.encode_line(KIND, API_VERSION) == dict_line(ev)
    finally:
        for w in [*plain, chosen]:
            w.stop()
