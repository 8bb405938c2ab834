"""Deletion tracker and reconciler keep the tenant map equal to the live set; repair."""

from __future__ import annotations

import asyncio
import random

from tenantstore.backends.kv import KV
from tenantstore.storage import ListOptions
from tenantstore.tenancy import UNMAPPED_PREFIX, SharedStorageFactory, project_scope

from .conftest import obj, wait_until

SCOPES = ["p1", "p2", "p3", None]


async def _batched(coros: list, size: int = 50) -> None:  # type: ignore[type-arg]
    for i in range(0, len(coros), size):
        await asyncio.gather(*coros[i : i + size])


async def test_churn_keeps_map_equal_to_live_set(kv: KV, prefix: str) -> None:
    factory = SharedStorageFactory(
        kv, [prefix], bookmark_interval=0.2, reconcile_interval=0.3, reconcile_grace=0.1
    )
    await factory.start()
    try:
        store = factory.storage(prefix)
        tmap = factory.tenant_map(prefix)
        tracker = factory.tracker(prefix)
        rng = random.Random(7)
        created: list[tuple[str | None, str]] = []

        async def create(scope: str | None, name: str) -> None:
            with project_scope(scope):
                await store.create(f"{prefix}/ns/{name}", obj(name))

        async def delete(scope: str | None, name: str) -> None:
            with project_scope(scope):
                await store.delete(f"{prefix}/ns/{name}")

        for rnd in range(3):
            batch = [(rng.choice(SCOPES), f"o{rnd}-{i}") for i in range(700)]
            await _batched([create(s, n) for s, n in batch])
            created.extend(batch)
            rng.shuffle(created)
            doomed, created = created[: len(created) * 2 // 3], created[len(created) * 2 // 3 :]
            await _batched([delete(s, n) for s, n in doomed])
        # Reads served by the backend at an old revision decode objects that are gone by now:
        # their entries are only removed by the reconciler.
        with project_scope("p1"):
            page = await store.get_list(prefix, ListOptions(recursive=True, limit=5))
        await _batched([delete(s, n) for s, n in created[:50]])
        created = created[50:]
        with project_scope("p1"):
            if page.continue_:
                factory.cacher(prefix)._snapshots.clear()  # force the backend fallback
                await store.get_list(
                    prefix, ListOptions(recursive=True, limit=500, continue_=page.continue_)
                )

        def settled() -> bool:
            return tmap.uids() == tracker.live_uids() and len(tmap) == len(created)

        await wait_until(settled, within=30)
        deleted = 2100 - len(created)
        assert tracker.forgotten > deleted // 2
        assert tracker.forgotten + tracker.pruned >= deleted
        assert factory.stats().tenant_map_entries == len(created)
        assert factory.cacher(prefix).index.keys(UNMAPPED_PREFIX) == []
        for scope in SCOPES:
            with project_scope(scope):
                assert await store.count(prefix) == sum(1 for s, _ in created if s == scope)
    finally:
        await factory.stop()


async def test_reconcile_prunes_only_dead_and_old(
    factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    tmap = factory.tenant_map(prefix)
    tracker = factory.tracker(prefix)
    with project_scope("p1"):
        await store.create(f"{prefix}/ns/live", obj("live", uid="live"))
    await wait_until(lambda: "live" in tracker.live_uids())
    tmap.record(f"{prefix}/clusters/p1/ns/ghost", obj("ghost", uid="ghost-old"))
    tmap.begin_grace()
    tmap.record(f"{prefix}/clusters/p1/ns/ghost2", obj("ghost2", uid="ghost-young"))
    assert tracker.reconcile() == 1
    assert tmap.uids() == {"live", "ghost-young"}
    assert tracker.reconcile() == 1
    assert tmap.uids() == {"live"}


async def test_lost_mapping_repaired_by_next_event(
    factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    tmap = factory.tenant_map(prefix)
    cacher = factory.cacher(prefix)
    with project_scope("p1"):
        created = await store.create(f"{prefix}/ns/a", obj("a", uid="ua", v="1"))
        w = await store.watch(
            f"{prefix}/ns/a", ListOptions(resource_version=created["metadata"]["resourceVersion"])
        )
    await wait_until(lambda: "ua" in tmap and len(cacher.index) == 1)
    # Lost for any reason (here: forgotten as if deleted, then pruned).
    assert tmap.forget("ua")
    tmap.prune(set())
    assert "ua" not in tmap
    with project_scope("p1"):
        # Still served from the cache at its scoped key meanwhile.
        got = await store.get(f"{prefix}/ns/a")
        assert got is not None and got["data"]["v"] == "1"

        def bump(cur: dict) -> dict:  # type: ignore[type-arg]
            cur["data"]["v"] = "2"
            return cur

        await store.guaranteed_update(f"{prefix}/ns/a", bump)
        ev = await asyncio.wait_for(w.__anext__(), 5)
        assert ev.object["data"]["v"] == "2"
        w.stop()
        got = await store.get(f"{prefix}/ns/a")
        assert got is not None and got["data"]["v"] == "2"
    assert tmap.owner("ua") == "p1"
    assert cacher.index.keys() == [f"{prefix}/clusters/p1/ns/a"]
    # The deletion's event goes through the codec too: the entry is re-recorded, then forgotten.
    tmap.forget("ua")
    with project_scope("p1"):
        await store.delete(f"{prefix}/ns/a")
    await wait_until(lambda: len(cacher.index) == 0)
    assert "ua" not in tmap


async def test_tracker_stops_with_factory(kv: KV, prefix: str) -> None:
    factory = SharedStorageFactory(kv, [prefix], reconcile_interval=0.05, reconcile_grace=0.01)
    await factory.start()
    tracker = factory.tracker(prefix)
    await wait_until(lambda: tracker.reconciles >= 2)
    assert factory.stats().tasks >= 3
    await factory.stop()
    assert tracker.tasks == 0
    assert factory.stats().tasks == 0
