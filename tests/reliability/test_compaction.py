"""Compaction under load: the backend's history is compacted at its current revision every
~150 ms while writers, watchers and paginated lists run, through the tenancy stack (key
rewriter -> shared cacher) and directly through `KVStorage` on the scoped prefix.

What may happen to a client: a 410 (`GoneError` from a list, an ERROR event with code 410 from a
watch), after which it re-lists. Nothing else: no other error type, no write failure, no lost,
duplicated or reordered event in a watch stretch between re-lists (each watcher also reconnects
from its last RV every ~0.5 s, which is where compaction bites), every completed paginated
list equal to the model state at its RV, and in the end every watcher's state, the cache and a
fresh list agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tenantstore.backends.kv import KV
from tenantstore.backends.sqlite import SqliteKV
from tenantstore.keys import scope_prefix
from tenantstore.storage import GoneError, Storage
from tenantstore.store import KVStorage
from tenantstore.tenancy import SharedStorageFactory
from tests.reliability.conftest import NO_ETCD
from tests.reliability.helpers import (
    SOAK,
    ScopeLog,
    State,
    WatchClient,
    Writer,
    cacher_state,
    cancel_all,
    eventually_equal,
    list_pages,
    make_obj,
    rv_of,
    scoped_list_fn,
    soak_only,
    state_of,
    store_state,
    watch_fn,
)
from tests.tenancy.stack import ScopedStorage

PROJECTS = ["p1", "p2", "p3"]
COMPACT_INTERVAL = 0.15
PAGE = 2
# A slow client between pages: a list spans several compactions.
PAGE_DELAY = 0.03
# Disconnected this long before a watch resumes from its last RV.
RECONNECT_DELAY = 0.2
NAMES = 16


@pytest.fixture(params=["sqlite", "etcd"])
async def compaction_kv(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KV]:
    kv: Any
    if request.param == "sqlite":
        kv = await SqliteKV.open(str(tmp_path / "compaction.db"), poll_interval=0.1)
    else:
        if NO_ETCD:
            pytest.skip("TENANTSTORE_NO_ETCD is set")
        from tenantstore.backends.etcd import EtcdKV

        server = request.getfixturevalue("compaction_etcd")
        kv = await EtcdKV.connect(server.endpoint)
    try:
        yield kv
    finally:
        await kv.close()


async def _lister(
    name: str,
    project: str,
    store: Storage,
    prefix: str,
    stats: dict[str, int],
    completed: list[tuple[str, str, int, State]],
    errors: list[str],
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        try:
            page = await list_pages(store, prefix, limit=PAGE, page_delay=PAGE_DELAY)
        except GoneError:
            stats[f"{name} list 410"] = stats.get(f"{name} list 410", 0) + 1
            continue
        except Exception as exc:
            errors.append(f"{name} {project} list: {type(exc).__name__}: {exc}")
            return
        keys = [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in page.items]
        if keys != sorted(set(keys)):
            errors.append(f"{name} {project} list out of order or duplicated: {keys}")
        completed.append((name, project, page.resource_version, state_of(page.items)))
        stats[f"{name} lists"] = stats.get(f"{name} lists", 0) + 1
        await asyncio.sleep(0)


async def _compactor(kv: KV, stats: dict[str, int], errors: list[str], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(COMPACT_INTERVAL)
        try:
            await kv.compact(await kv.current_revision())
        except Exception as exc:
            errors.append(f"compaction failed: {type(exc).__name__}: {exc}")
            return
        stats["compactions"] = stats.get("compactions", 0) + 1


async def run_compaction_under_load(kv: KV, key_prefix: str, duration: float) -> dict[str, int]:
    prefix = f"{key_prefix}/configmaps"
    errors: list[str] = []
    stats: dict[str, int] = {}
    factory = SharedStorageFactory(kv, [prefix], bookmark_interval=0.2)
    await factory.start()
    kv_store = KVStorage(kv, owns_kv=False)
    cacher = factory.cacher(prefix)
    storage = factory.storage(prefix)
    tasks: list[asyncio.Task[Any]] = []
    try:
        logs = {p: ScopeLog(prefix, p) for p in PROJECTS}
        stores: dict[str, Storage] = {p: ScopedStorage(storage, p) for p in PROJECTS}
        for p in PROJECTS:
            for i in range(3):
                made = await stores[p].create(f"{prefix}/ns/k{i}", make_obj(f"k{i}", f"{p}-0{i}"))
                logs[p].ack(rv_of(made), f"ns/k{i}", f"{p}-0{i}")
        top = max(a.rv for log in logs.values() for a in log.acked)
        async with asyncio.timeout(10):
            while cacher.resource_version < top:
                await asyncio.sleep(0.02)

        watchers: list[WatchClient] = []
        for p in PROJECTS:
            sp = scope_prefix(prefix, p).rstrip("/")
            for name, store, wprefix, resume in (
                ("cacher", stores[p], prefix, 0.7),
                ("kvstorage", kv_store, sp, 0.5),
            ):
                w = WatchClient(
                    f"{name} watch {p}",
                    scoped_list_fn(store, wprefix, limit=PAGE),
                    watch_fn(store, wprefix),
                    errors,
                    allowed_error_codes=(410,),
                    resume_every=resume,
                    reconnect_delay=RECONNECT_DELAY,
                )
                await w.open_initial(logs[p].state_at(top))
                watchers.append(w)

        stop_load = asyncio.Event()
        stop_watch = asyncio.Event()
        writers = [
            Writer(stores[p], prefix, logs[p], errors, names=NAMES, seed=i)
            for i, p in enumerate(PROJECTS)
        ]
        completed: list[tuple[str, str, int, State]] = []
        load = [asyncio.create_task(w.run(stop_load)) for w in writers]
        for p in PROJECTS:
            sp = scope_prefix(prefix, p).rstrip("/")
            load.append(
                asyncio.create_task(
                    _lister("cacher", p, stores[p], prefix, stats, completed, errors, stop_load)
                )
            )
            load.append(
                asyncio.create_task(
                    _lister("kvstorage", p, kv_store, sp, stats, completed, errors, stop_load)
                )
            )
        load.append(asyncio.create_task(_compactor(kv, stats, errors, stop_load)))
        tasks = [asyncio.create_task(w.run(stop_watch)) for w in watchers] + load

        await asyncio.sleep(duration)
        stop_load.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*load)

        # Convergence: every watcher's state, the cache and the backend agree.
        finals = {p: await store_state(kv_store, prefix, p) for p in PROJECTS}
        for w, p in zip(watchers, [p for p in PROJECTS for _ in range(2)], strict=True):
            got, want = await eventually_equal(lambda w=w: w.state, lambda p=p: finals[p])
            if got != want:
                errors.append(f"{w.name}: final state {got} != backend {want}")
        stop_watch.set()
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)

        for p in PROJECTS:
            logs[p].check_final(finals[p], errors)
            got, want = await eventually_equal(
                lambda p=p: cacher_state(cacher, prefix, p), lambda p=p: finals[p]
            )
            if got != want:
                errors.append(f"cache of {p}: {got} != backend {want}")
        for w, p in zip(watchers, [p for p in PROJECTS for _ in range(2)], strict=True):
            w.check(logs[p].acked)
            stats[f"{w.name.split()[0]} watch 410"] = stats.get(
                f"{w.name.split()[0]} watch 410", 0
            ) + w.error_codes.count(410)
            stats["resumes"] = stats.get("resumes", 0) + w.resumes
        for name, p, rv, state in completed:
            want = logs[p].state_at(rv)
            if state != want:
                errors.append(f"{name} list of {p} at RV {rv}: {state} != model {want}")
        stats["writes"] = sum(w.ops for w in writers)
        stats["watch events"] = sum(len(s.events) for w in watchers for s in w.segments)
        print(f"compaction under load ({type(kv).__name__}, {duration}s): {stats}")
        assert not errors, "\n".join(errors[:40])
        assert stats.get("compactions", 0) > 3
        assert stats.get("kvstorage list 410", 0) + stats.get("kvstorage watch 410", 0) > 0, (
            f"compaction never reached a client: {stats}"
        )
        return stats
    finally:
        await cancel_all(tasks)
        await factory.stop()
        await kv_store.close()


async def test_compaction_under_load(compaction_kv: KV, key_prefix: str) -> None:
    await run_compaction_under_load(compaction_kv, key_prefix, 8.0)


@soak_only
@pytest.mark.timeout(900)
async def test_compaction_under_load_soak(compaction_kv: KV, key_prefix: str) -> None:
    assert SOAK
    await run_compaction_under_load(compaction_kv, key_prefix, 60.0)
