"""Idle projects cost nothing in the shared mode, and a cacher each in the per-project mode."""

from __future__ import annotations

import asyncio
import gc

from tenantstore.backends.kv import KV
from tenantstore.storage import ListOptions
from tenantstore.tenancy import make_factory, project_scope

from .conftest import obj, wait_until


def _task_names() -> list[str]:
    return sorted(
        t.get_coro().__qualname__  # type: ignore[union-attr]
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
    )


async def _touch(store: object, prefix: str, project: str) -> None:
    with project_scope(project):
        got = await store.get_list(prefix, ListOptions(recursive=True))  # type: ignore[attr-defined]
        assert got.items == []
        assert await store.count(prefix) == 0  # type: ignore[attr-defined]


async def test_shared_mode_allocates_nothing_per_project(kv: KV, prefix: str) -> None:
    factory = make_factory("shared", kv, [prefix], bookmark_interval=0.5)
    await factory.start()
    try:
        store = factory.storage(prefix)
        with project_scope(None):
            await store.create(f"{prefix}/ns/root-object", obj("root-object"))
        await _touch(store, prefix, "warmup")
        # A consistent read may be served by the store before the cache has applied the
        # write (on etcd without trusted progress notifications): let the cache catch up.
        await wait_until(lambda: len(factory.tenant_map(prefix)) == 1)
        gc.collect()
        before_stats = factory.stats()
        before_tasks = _task_names()
        before_dicts = sum(1 for o in gc.get_objects() if isinstance(o, dict))
        for i in range(1000):
            await _touch(store, prefix, f"idle-{i}")
        gc.collect()
        after_dicts = sum(1 for o in gc.get_objects() if isinstance(o, dict))
        assert factory.stats() == before_stats
        assert before_stats.cachers == 1 and before_stats.backend_watches == 1
        assert before_stats.tenant_map_entries == 1
        assert _task_names() == before_tasks, (before_tasks, _task_names())
        assert len(factory.cacher(prefix).watchers) == 0
        # No dict per project survives the requests (a few from caches/metrics may appear).
        assert after_dicts - before_dicts < 100
    finally:
        await factory.stop()


async def test_per_project_mode_allocates_per_project(kv: KV, prefix: str) -> None:
    factory = make_factory("per-project", kv, [prefix], bookmark_interval=0.5)
    await factory.start()
    try:
        store = factory.storage(prefix)
        before = factory.stats()
        before_tasks = len(asyncio.all_tasks())
        assert before.cachers == 0
        await asyncio.gather(*(_touch(store, prefix, f"idle-{i}") for i in range(50)))
        after = factory.stats()
        assert after.cachers == 50
        assert after.backend_watches == 50
        assert after.tasks >= 3 * 50
        assert len(asyncio.all_tasks()) - before_tasks >= 3 * 50
        # Same semantics through the router: isolation holds.
        with project_scope("idle-1"):
            await store.create(f"{prefix}/ns/a", obj("a", who="idle-1"))
        with project_scope("idle-2"):
            assert await store.get(f"{prefix}/ns/a", ignore_not_found=True) is None
        with project_scope("idle-1"):
            got = await store.get(f"{prefix}/ns/a")
            assert got is not None and got["data"]["who"] == "idle-1"
    finally:
        await factory.stop()
    assert factory.stats().tasks == 0
