"""etcd member failures under load, through the whole tenancy stack.

A 3-member etcd cluster on loopback; tenantstore connects to all three endpoints
(`EtcdKV.connect("h1:p1,h2:p2,h3:p3")`) and serves two resources for three projects from one
`SharedStorageFactory`. While one writer per (resource, project) scope creates, updates and
deletes as fast as the store answers, and watches are open in every scope (through the key
rewriter and shared cacher, from RV "0"; and directly on a bare `KVStorage` for some scopes):

1. a non-leader member is killed (quorum holds), then restarted;
2. the leader is killed (quorum holds: the first member is back), then restarted;
3. every member is killed and the whole cluster started again (watches still open).

Then: every acknowledged write is in etcd (the last acknowledged state of each key is what a
consistent read returns; a key whose last write failed with `UnavailableError` may hold either
state), every watch stretch is gapless and duplicate-free with every acknowledged write of its
scope in it (a watch that ended with an ERROR / end of stream was re-listed and re-watched,
and each stretch is checked on its own), every watcher's state converged to etcd's, and the
cache of each scope equals a fresh consistent list of the scope prefix from etcd.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tenantstore.backends.etcd import EtcdKV
from tenantstore.keys import scope_prefix
from tenantstore.storage import Storage
from tenantstore.store import KVStorage
from tenantstore.tenancy import SharedStorageFactory
from tests.etcd_server import EtcdCluster
from tests.reliability.conftest import needs_etcd
from tests.reliability.helpers import (
    SOAK,
    ScopeLog,
    WatchClient,
    Writer,
    cacher_state,
    cancel_all,
    eventually_equal,
    make_obj,
    rv_of,
    scoped_list_fn,
    soak_only,
    store_state,
    watch_fn,
)
from tests.tenancy.stack import ScopedStorage

pytestmark = [needs_etcd, pytest.mark.etcd]

RESOURCES = ["configmaps", "secrets"]
PROJECTS = ["p1", "p2", "p3"]


async def _faults(cluster: EtcdCluster, phase: float, rounds: int, log: list[str]) -> None:
    """The fault schedule; each step waits `phase` seconds of load."""
    for r in range(rounds):
        await asyncio.sleep(phase)
        leader = await asyncio.to_thread(cluster.leader_index)
        follower = (leader + 1) % len(cluster.members)
        log.append(f"round {r}: kill follower m{follower} (leader m{leader})")
        await asyncio.to_thread(cluster.kill, follower)
        await asyncio.sleep(phase)
        await asyncio.to_thread(cluster.restart, follower)
        log.append(f"round {r}: follower m{follower} back")
        await asyncio.sleep(phase)
        leader = await asyncio.to_thread(cluster.leader_index)
        log.append(f"round {r}: kill leader m{leader}")
        await asyncio.to_thread(cluster.kill, leader)
        await asyncio.sleep(phase)
        await asyncio.to_thread(cluster.restart, leader)
        log.append(f"round {r}: old leader m{leader} back, leader now m{cluster.leader_index()}")
        await asyncio.sleep(phase)
        log.append(f"round {r}: kill every member")
        await asyncio.to_thread(cluster.kill_all)
        await asyncio.sleep(min(phase, 1.0))
        await asyncio.to_thread(cluster.start)
        log.append(f"round {r}: cluster restarted")
    await asyncio.sleep(phase)


async def run_faults(cluster: EtcdCluster, key_prefix: str, phase: float, rounds: int) -> None:
    kv = await EtcdKV.connect(cluster.endpoint, timeout=10, request_timeout=3)
    prefixes = {r: f"{key_prefix}/{r}" for r in RESOURCES}
    factory = SharedStorageFactory(kv, list(prefixes.values()), bookmark_interval=0.2)
    await factory.start()
    kv_store = KVStorage(kv, owns_kv=False)
    errors: list[str] = []
    fault_log: list[str] = []
    tasks: list[asyncio.Task[Any]] = []
    scopes = [(r, p) for r in RESOURCES for p in PROJECTS]
    try:
        logs = {(r, p): ScopeLog(r, p) for r, p in scopes}
        stores: dict[tuple[str, str], Storage] = {
            (r, p): ScopedStorage(factory.storage(prefixes[r]), p) for r, p in scopes
        }
        for r, p in scopes:
            for i in range(2):
                made = await stores[(r, p)].create(
                    f"{prefixes[r]}/ns/k{i}", make_obj(f"k{i}", f"{p}-0{i}")
                )
                logs[(r, p)].ack(rv_of(made), f"ns/k{i}", f"{p}-0{i}")
        top = max(a.rv for log in logs.values() for a in log.acked)
        async with asyncio.timeout(10):
            for r in RESOURCES:
                while factory.cacher(prefixes[r]).resource_version < top:
                    await asyncio.sleep(0.02)

        watchers: list[tuple[WatchClient, tuple[str, str]]] = []
        for r, p in scopes:
            store = stores[(r, p)]
            w = WatchClient(
                f"cacher watch {r} {p}",
                scoped_list_fn(store, prefixes[r]),
                watch_fn(store, prefixes[r]),
                errors,
            )
            await w.open_initial(logs[(r, p)].state_at(top))
            watchers.append((w, (r, p)))
            if p == "p1":  # straight to etcd: these see the stream breaks and re-list
                sp = scope_prefix(prefixes[r], p).rstrip("/")
                d = WatchClient(
                    f"kvstorage watch {r} {p}",
                    scoped_list_fn(kv_store, sp),
                    watch_fn(kv_store, sp),
                    errors,
                )
                await d.open_initial(logs[(r, p)].state_at(top))
                watchers.append((d, (r, p)))

        stop_load = asyncio.Event()
        stop_watch = asyncio.Event()
        writers = [
            Writer(stores[s], prefixes[s[0]], logs[s], errors, names=6, allow_unknown=True, seed=i)
            for i, s in enumerate(scopes)
        ]
        load = [asyncio.create_task(w.run(stop_load)) for w in writers]
        tasks = [asyncio.create_task(w.run(stop_watch)) for w, _ in watchers] + load
        await _faults(cluster, phase, rounds, fault_log)
        stop_load.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*load)

        finals = {s: await store_state(kv_store, prefixes[s[0]], s[1]) for s in scopes}
        for w, s in watchers:
            got, want = await eventually_equal(lambda w=w: w.state, lambda s=s: finals[s], 30)
            if got != want:
                errors.append(f"{w.name}: final state {got} != etcd {want}")
        stop_watch.set()
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)

        for s in scopes:
            logs[s].check_final(finals[s], errors)
            cacher = factory.cacher(prefixes[s[0]])
            got, want = await eventually_equal(
                lambda c=cacher, s=s: cacher_state(c, prefixes[s[0]], s[1]),
                lambda s=s: finals[s],
            )
            if got != want:
                errors.append(f"cache of {s}: {got} != etcd {want}")
        for w, s in watchers:
            w.check(logs[s].acked)
        summary = {
            "acknowledged writes": sum(len(log.acked) for log in logs.values()),
            "unknown outcome": sum(log.unknown for log in logs.values()),
            "failed attempts": sum(w.failed for w in writers),
            "watch events": sum(len(g.events) for w, _ in watchers for g in w.segments),
            "watch ERRORs (cacher)": [
                c for w, _ in watchers if "cacher" in w.name for c in w.error_codes
            ],
            "watch ERRORs (kvstorage)": [
                c for w, _ in watchers if "kvstorage" in w.name for c in w.error_codes
            ],
            "re-lists": sum(w.relists for w, _ in watchers),
        }
        print("\n".join(fault_log))
        print(f"etcd faults ({rounds} round(s), phase {phase}s): {summary}")
        assert not errors, "\n".join(errors[:40])
        assert all(w.ops > 0 for w in writers)
    finally:
        await cancel_all(tasks)
        await factory.stop()
        await kv_store.close()
        await kv.close()


async def test_etcd_member_failures_under_load(etcd_cluster: EtcdCluster, key_prefix: str) -> None:
    await run_faults(etcd_cluster, key_prefix, phase=1.5, rounds=1)


@soak_only
@pytest.mark.timeout(1200)
async def test_etcd_member_failures_under_load_soak(
    etcd_cluster: EtcdCluster, key_prefix: str
) -> None:
    assert SOAK
    await run_faults(etcd_cluster, key_prefix, phase=5.0, rounds=2)
