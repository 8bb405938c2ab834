"""The shared watch cache, measured side by side (pytest-benchmark).

Run::

    pytest benches/bench_cacher.py --benchmark-only -o timeout=0 --benchmark-group-by=group \
        --benchmark-columns=min,median,mean,rounds

Groups:
- ``dispatch-cpu``: CPU of offering one event to the watchers, with 10 vs 10,000 watchers
  on distinct project prefixes, by scope index (ours) and by scanning every watcher (the
  upstream cacher's strategy), one matching watcher each time.
- ``dispatch-latency``: a write through the real SQLite backend until its delivery to the
  one matching watcher, 10 vs 10,000 open watchers.
- ``list-500``: 500 objects under one prefix, from a cache of ``TENANTSTORE_BENCH_OBJECTS``
  objects (default 1,000,000) vs the same list from the backend.
- memory per cached object is printed by ``test_memory_per_cached_object`` (tracemalloc).
"""

from __future__ import annotations

import asyncio
import os
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tenantstore.backends.sqlite import SqliteKV
from tenantstore.cacher import CacheEvent, Cacher, ScanningWatcherTable, WatcherTable
from tenantstore.cacher.watchers import CacheWatcher
from tenantstore.index import CachedObject, Index
from tenantstore.storage import EventType, ListOptions, QueueWatch
from tenantstore.storage.selectors import EVERYTHING
from tenantstore.store import KVStorage

PREFIX = "/registry/configmaps"


def configmap(namespace: str, name: str, size: int = 400) -> dict[str, Any]:
    """A ConfigMap; the benches use one namespace per simulated tenant, so the cacher's
    default key function (`<prefix>/<namespace>/<name>`) gives the storage key."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "labels": {"app": "bench"},
            "creationTimestamp": "2026-11-25T12:00:00Z",
        },
        "data": {"payload": "x" * size},
    }


# -- dispatch CPU ---------------------------------------------------------------------------
def _table(kind: type[WatcherTable], n: int) -> tuple[WatcherTable, list[CacheWatcher]]:
    table = kind(lambda w: None)
    watchers = []
    for i in range(n):
        q = QueueWatch(1 << 30)
        w = CacheWatcher(q, f"{PREFIX}/clusters/p{i}/", False, EVERYTHING, False, 0)
        table.add(w)
        watchers.append(w)
    return table, watchers


@pytest.mark.parametrize("n", [10, 10_000])
@pytest.mark.parametrize("kind", [WatcherTable, ScanningWatcherTable], ids=["indexed", "scanning"])
def test_dispatch_cpu(benchmark: Any, kind: type[WatcherTable], n: int) -> None:
    benchmark.group = f"dispatch-cpu {kind.__name__}"
    table, watchers = _table(kind, n)
    target = watchers[n // 2]
    obj = configmap(f"p{n // 2}", "x")
    ev = CacheEvent(EventType.MODIFIED, f"{PREFIX}/clusters/p{n // 2}/default/x", obj, obj, 1, 0.0)

    def one() -> None:
        assert table.dispatch(ev) == 1
        target.queue._buf.clear()

    benchmark(one)


# -- dispatch latency, end to end -------------------------------------------------------
@pytest.mark.parametrize("n", [10, 10_000])
@pytest.mark.parametrize("kind", [WatcherTable, ScanningWatcherTable], ids=["indexed", "scanning"])
def test_dispatch_latency(benchmark: Any, tmp_path: Path, kind: type[WatcherTable], n: int) -> None:
    benchmark.group = f"dispatch-latency {kind.__name__}"
    loop = asyncio.new_event_loop()

    async def setup() -> tuple[Any, Any, Any]:
        kv = await SqliteKV.open(str(tmp_path / "lat.db"))
        store = KVStorage(kv)
        cacher = Cacher(store, PREFIX, watcher_table=kind, bookmark_interval=0)
        await cacher.start()
        await cacher.wait_ready()
        watches = [
            await cacher.watch(f"{PREFIX}/p{i}", ListOptions(recursive=True)) for i in range(n)
        ]
        return store, cacher, watches

    store, cacher, watches = loop.run_until_complete(setup())
    target = watches[n // 2]
    counter = iter(range(10**9))

    async def write_and_receive() -> None:
        i = next(counter)
        await store.create(f"{PREFIX}/p{n // 2}/o{i}", configmap(f"p{n // 2}", f"o{i}"))
        ev = await asyncio.wait_for(target.__anext__(), 10)
        assert ev.object["metadata"]["name"] == f"o{i}"

    benchmark.pedantic(lambda: loop.run_until_complete(write_and_receive()), rounds=200)

    async def teardown() -> None:
        for w in watches:
            w.stop()
        await cacher.stop()
        await store.close()

    loop.run_until_complete(teardown())
    loop.close()


# -- list 500 of N ----------------------------------------------------------------------------
N_OBJECTS = int(os.environ.get("TENANTSTORE_BENCH_OBJECTS", "1000000"))


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, KVStorage, Cacher]]:
    loop = asyncio.new_event_loop()
    path = tmp_path_factory.mktemp("big") / "big.db"

    async def setup() -> tuple[KVStorage, Cacher]:
        kv = await SqliteKV.open(str(path))
        store = KVStorage(kv)
        projects = N_OBJECTS // 500
        sem = asyncio.Semaphore(512)

        async def put(p: int, j: int) -> None:
            async with sem:
                await store.create(
                    f"{PREFIX}/p{p:05d}/cm{j:03d}", configmap(f"p{p:05d}", f"cm{j:03d}", 200)
                )

        for p in range(projects):
            await asyncio.gather(*(put(p, j) for j in range(500)))
        cacher = Cacher(store, PREFIX, bookmark_interval=0)
        await cacher.start()
        await cacher.wait_ready()
        return store, cacher

    store, cacher = loop.run_until_complete(setup())
    yield loop, store, cacher
    loop.run_until_complete(cacher.stop())
    loop.run_until_complete(store.close())
    loop.close()


@pytest.mark.parametrize("source", ["cacher", "backend"])
def test_list_500(benchmark: Any, big: tuple[Any, KVStorage, Cacher], source: str) -> None:
    benchmark.group = f"list-500 of {N_OBJECTS:,}"
    loop, store, cacher = big
    target: Any = cacher if source == "cacher" else store
    key = f"{PREFIX}/p00007"
    opts = ListOptions(recursive=True, resource_version="0")

    def one() -> None:
        got = loop.run_until_complete(target.get_list(key, opts))
        assert len(got.items) == 500

    benchmark(one)


# -- memory per cached object ------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_memory_per_cached_object(benchmark: Any) -> None:
    """Python heap (tracemalloc) and RSS (which also sees the Rust index nodes) per object."""
    n = 100_000
    objs = [orjson.dumps(configmap(f"p{i % 100}", f"cm{i}")) for i in range(n)]
    encoded = sum(len(b) for b in objs) / n
    index = Index(PREFIX + "/")  # as a cacher builds it: keys held without the prefix
    rss_before = _rss()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, data in enumerate(objs):
        # As the reflector keeps it: the bytes (without resourceVersion), no dict.
        index.put(f"{PREFIX}/clusters/p{i % 100}/default/cm{i}", CachedObject(data, i + 1))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss_after = _rss()
    heap = (after - before) / n
    rss = (rss_after - rss_before) / n
    benchmark.extra_info.update(
        {
            "heap_bytes_per_object": round(heap),
            "rss_bytes_per_object": round(rss),
            "encoded_json_bytes": round(encoded),
        }
    )
    print(
        f"\nper cached object: Python heap {heap:.0f} B, RSS {rss:.0f} B (with tracemalloc's "
        f"own overhead); encoded JSON {encoded:.0f} B; heap/JSON {heap / encoded:.2f}x "
        f"({n:,} objects)"
    )
    benchmark.group = "memory"
    benchmark.pedantic(lambda: None, rounds=1)
