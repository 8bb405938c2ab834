"""The reflector when its store's watch keeps failing: readiness sees it, the back-off
grows (with jitter) instead of spinning, the log says so once, and it recovers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tenantstore.cacher import Cacher
from tenantstore.storage import ListOptions, UnavailableError, Watch
from tenantstore.store import KVStorage
from tests.breakable import BreakableKV

from .test_cacher import pod


class FlakyStore(KVStorage):
    """The real store, whose watch can be made to fail (a deliberate test double)."""

    broken = False
    attempts = 0

    async def watch(self, key: str, opts: ListOptions) -> Watch:
        if self.broken:
            self.attempts += 1
            raise UnavailableError("the backend is down")
        return await super().watch(key, opts)


async def _until(cond: Any, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met")
        await asyncio.sleep(0.02)


async def test_a_broken_watch_is_reported_retried_with_back_off_and_logged_once(
    kv: Any, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"{key_prefix}/pods"
    bkv = BreakableKV(kv)
    store = FlakyStore(bkv, owns_kv=False)
    cacher = Cacher(store, prefix, bookmark_interval=0)
    await cacher.start()
    try:
        await asyncio.wait_for(cacher.wait_ready(), 30)
        await _until(lambda: cacher.health() is None)
        caplog.set_level(logging.INFO, logger="tenantstore.cacher")
        store.broken = True
        # End the open watch: the reflector must re-watch, and cannot.
        bkv.break_all(UnavailableError("connection reset"))
        await _until(lambda: store.attempts >= 4)
        assert cacher.health() == "watch broken, retrying"
        broken_lines = [r for r in caplog.records if "watch broken" in r.getMessage()]
        assert len(broken_lines) == 1
        # Retrying on demand (what readiness does when the backend answers again).
        before = store.attempts
        cacher.retry_now()
        await _until(lambda: store.attempts > before)
        store.broken = False
        cacher.retry_now()
        await _until(lambda: cacher.health() is None)
        recovered = [r for r in caplog.records if "recovered" in r.getMessage()]
        assert len(recovered) == 1
        # Everything written meanwhile reaches the cache.
        made = await store.create(f"{prefix}/ns/after", pod("after"))
        rv = made["metadata"]["resourceVersion"]
        got = await cacher.get(f"{prefix}/ns/after", resource_version=rv)
        assert got is not None
    finally:
        await cacher.stop()
        await store.close()
